#!/usr/bin/env bash
# Runs every test: unit (doctest), integration on a local share, and, as root with FUSE, the
# multi-host suite on separate sshfs mounts in network namespaces, and with /dev/net/tun the
# real-NFS suite (user-mode Linux NFS clients against nfs-ganesha). Installs what it needs.
# Ends with one line "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build test
# Headless Chromium checks the HTML report (skipped with a note where it cannot be installed).
scripts/deps.sh browser || echo "nfsup: chromium unavailable: the report's browser check will be skipped" >&2
if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
  scripts/deps.sh harness
else
  echo "nfsup: not root or no /dev/fuse: the multi-host sshfs suite will be skipped" >&2
fi
# Real kernel NFS clients (user-mode Linux guests) against nfs-ganesha: root and /dev/net/tun.
if [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ]; then
  scripts/deps.sh nfs || echo "nfsup: the real-NFS packages could not be installed: the nfs suite will be skipped" >&2
else
  echo "nfsup: not root or no /dev/net/tun: the real-NFS suite will be skipped" >&2
fi
scripts/build.sh
set +e
meson test -C build --print-errorlogs --num-processes 2 "$@"
rc=$?
# Every parser of untrusted input under libFuzzer + ASan + UBSan for a short fixed budget
# (NFSUP_FUZZ_SECONDS, default 5 per target; scripts/fuzz.sh 600 for a long run).
fuzz_line=""
if [ "${NFSUP_FUZZ_SECONDS:-5}" != 0 ] && [ $# -eq 0 ]; then
  scripts/fuzz.sh "${NFSUP_FUZZ_SECONDS:-5}" 2>&1 | tee build/fuzz.log | tail -n 12
  frc=${PIPESTATUS[0]}
  fuzz_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' build/fuzz.log | tail -n 1)
  [ "$frc" -eq 0 ] || rc=1
fi
set -e
# Sum the per-test counts each runner printed into meson's log.
log=build/meson-logs/testlog.txt
passed=0; failed=0
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < <(
  { grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | awk '{print $1, $3}'
    grep -E '^\[doctest\] test cases:' "$log" | sed -E 's/.*\| *([0-9]+) passed *\| *([0-9]+) failed.*/\1 \2/'; } )
if [ -n "$fuzz_line" ]; then
  passed=$((passed + $(awk '{print $1}' <<<"$fuzz_line"))); failed=$((failed + $(awk '{print $3}' <<<"$fuzz_line")))
fi
if [ $rc -ne 0 ] && [ $failed -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit $rc
