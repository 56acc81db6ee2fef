#!/usr/bin/env bash
# Per-operation NFS RPC counts and server bytes read of one nfsup host on a real Linux NFS
# client (a user-mode Linux guest against nfs-ganesha, test/nfs/lib.sh): idle for a minute
# (poll 2 s, heartbeat 10 s) and one upgrade of a 50 x 1 MiB release with one file changed.
# Runs the real-NFS suite's counting scenario and prints its table.
# Usage: scripts/bench-nfs.sh [4.1|4.2|3]   (root and /dev/net/tun; installs its packages)
set -euo pipefail
cd "$(dirname "$0")/.."
vers=${1:-4.1}
[ -x build/src/nfsup-install ] || scripts/build.sh >&2
out=$(mktemp /tmp/nfsup-bench-nfs.XXXXXX)
set +e
NFS_RUNS=$vers ONLY=rpc_counts NFSUP_BUILD=$PWD/build/src bash test/nfs/t_nfs.sh >"$out" 2>&1
rc=$?
set -e
if [ $rc -eq 77 ]; then cat "$out"; rm -f "$out"; exit 77; fi
sed -n '/^boot:/p; /^RPCs of one host/,/^  (upgrade/p' "$out"
grep -E '^(ok|FAIL) ' "$out" || true
[ $rc -eq 0 ] || { echo "bench-nfs: the counting scenario failed; its output:" >&2; cat "$out" >&2; }
rm -f "$out"
exit $rc
