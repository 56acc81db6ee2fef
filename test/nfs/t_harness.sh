#!/usr/bin/env bash
# The real-NFS harness itself: a guest that dies while it boots is booted once more (nfs_up's
# retry, needed once in ~15 boots under heavy load); the guest then mounts the export and a
# file it writes is on the server; nfs_down leaves no process, namespace or directory behind.
# Needs what t_nfs.sh needs (root, /dev/net/tun, the packages); skipped (exit 77) elsewhere.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
miss=$(nfs_missing)
if [ -n "$miss" ] || [ "$(id -u)" -ne 0 ] || [ ! -c /dev/net/tun ]; then
  echo "skipped: the real-NFS harness needs root, /dev/net/tun and: ${miss:-nothing more}"
  echo "0 passed, 0 failed"; exit 77
fi
nfs_gc
trap 'nfs_down' EXIT
trap 'exit 143' TERM INT
passed=0 failed=0
check() {  # check WHAT CMD...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}
log=$(mktemp /tmp/nfsup-harness-test.XXXXXX)
NFS_TEST_BOOT_FAIL=1 nfs_up 1 2>"$log"; rc=$?
sed 's/^/  /' "$log"
check "nfs_up succeeds although g1 died while booting" [ "$rc" -eq 0 ]
check "g1 was killed while it booted (the test's hook)" grep -q 'killed g1 while it booted' "$log"
check "nfs_up booted g1 once more" grep -q 'booting g1 again' "$log"
rm -f "$log"
if [ "$rc" -eq 0 ]; then
  nfs_mount g1 "$NFS_DIR/mnt/v4.1" 4.1
  nfs_exec g1 "echo hello >'$NFS_DIR/mnt/v4.1/from-g1'" 30
  check "a file g1 wrote through its NFS mount is on the server" grep -qx hello "$NFS_EXPORT/from-g1"
fi
ns=$NFS_NS dir=$NFS_DIR
nfs_down
trap - EXIT
check "nfs_down removed the network namespace" bash -c "! ip netns list | grep -qw '$ns'"
check "nfs_down removed the run directory" [ ! -e "$dir" ]
left=$(pgrep -f -- "$dir" | tr '\n' ' ')   # (pgrep leaves itself out)
check "no process of the run is left ($left)" [ -z "$left" ]
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
