#!/usr/bin/env bash
# README's "Install" section followed literally on a clean Debian 12: a minbase root made by
# mmdebstrap from deb.debian.org, a copy of this tree in it (the files git knows, plus new ones
# that are not ignored), and the shell block of README's "## Install" run line by line as root
# in that root, as a new sysadmin would paste it. Then what the section promises of the
# installed package, and step 2 of "First fleet" (init refuses a local directory).
#
# Opt-in: it downloads about 300 MB and builds nfsup from scratch (about 10 minutes on 2 cores),
# so scripts/test.sh runs it only with NFSUP_CLEAN_MACHINE=1. Needs root and the network.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
MIRROR=${NFSUP_MIRROR:-http://deb.debian.org/debian}

if [ -z "${NFSUP_CLEAN_MACHINE:-}" ]; then
  echo "SKIP: set NFSUP_CLEAN_MACHINE=1 to follow README's Install on a clean Debian 12 (about 10 minutes, network)"
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (chroot, mounts)"; exit 77; fi
if ! command -v mmdebstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/tmp/nfsup-apt.log 2>&1 ||
    { echo "FAIL: could not install mmdebstrap (see /tmp/nfsup-apt.log)"; exit 1; }
fi

ROOT=$(mktemp -d /var/tmp/nfsup-clean.XXXXXX)
cleanup() {
  local m
  for m in dev/pts dev proc sys; do umount -l "$ROOT/$m" 2>/dev/null; done
  rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
in_root() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /bin/bash -c "$1"; }

t0=$SECONDS
echo "--- a clean Debian 12 (mmdebstrap minbase bookworm) in $ROOT"
if ! mmdebstrap --quiet --variant=minbase --include=ca-certificates,git bookworm "$ROOT" "$MIRROR" >/tmp/nfsup-mmdebstrap.log 2>&1; then
  tail -5 /tmp/nfsup-mmdebstrap.log
  echo "FAIL could not make a clean root (network? see /tmp/nfsup-mmdebstrap.log)"
  exit 1
fi
echo "    root made in $((SECONDS - t0)) s"
mount -t proc proc "$ROOT/proc" && mount --bind /dev "$ROOT/dev" && mount --bind /dev/pts "$ROOT/dev/pts" &&
  mount --bind /sys "$ROOT/sys" || { echo "FAIL mounts in the clean root"; exit 1; }
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/root/nfsup"
(cd "$SRC" && git ls-files -z -co --exclude-standard | tar -c --null -T - 2>/dev/null) | tar -x -C "$ROOT/root/nfsup"

# The block, as README has it (comments after the commands dropped, as a shell would).
block=$(awk '/^## Install/ {inside = 1; next} inside && /^## / {exit}
             inside && /^```sh/ {code = 1; next} inside && code && /^```/ {code = 0; next}
             inside && code {print}' "$SRC/README.md")
[ -n "$block" ] || { echo "FAIL README.md has no shell block under '## Install'"; exit 1; }
echo "--- README's Install block, line by line"
n=0
while IFS= read -r line; do
  [ -n "${line// /}" ] || continue
  n=$((n + 1))
  t1=$SECONDS
  # (a prompt such as apt-get's "Do you want to continue? [Y/n]" is answered yes, as the
  # sysadmin pasting these lines would)
  out=$(in_root "cd /root/nfsup && $line" 2>&1 < <(yes 2>/dev/null)); rc=$?
  echo "    \$ $line   (rc $rc, $((SECONDS - t1)) s)"
  if [ $rc -ne 0 ]; then
    echo "$out" | tail -15 | sed 's/^/      /'
    bad "README install line $n: $line"
    exit 1
  fi
  last_out=$out
done <<<"$block"
ok "README's Install block ran as written ($n commands)"

# What the section says of the installed package.
ver=$(in_root "nfsup-install --version" 2>&1)
if grep -q "$(dpkg-parsechangelog -l "$SRC/packaging/debian/changelog" -S Version | sed 's/-.*//')" <<<"$ver" &&
  grep -qF "$ver" <<<"$last_out"; then ok "nfsup-install --version: $ver"; else bad "nfsup-install --version said: $ver"; fi
if in_root "test -x /usr/bin/nfsup-watchdog && test -x /usr/bin/nfsup-reconfig && test -f /etc/nfsup/watchdog.yaml &&
            test -d /var/lib/nfsup && ls /usr/share/man/man1/nfsup-install.1* /usr/share/man/man8/nfsup-watchdog.8* >/dev/null &&
            ls /usr/share/bash-completion/completions/nfsup* >/dev/null"; then
  ok "binaries, /etc/nfsup/watchdog.yaml, /var/lib/nfsup, man pages, completion installed"
else bad "something README lists is not installed"; fi
units=$(in_root "ls /lib/systemd/system/nfsup-* /usr/lib/systemd/system/nfsup-* 2>/dev/null | sort -u | wc -l")
enabled=$(in_root "find /etc/systemd/system -name 'nfsup*' 2>/dev/null | wc -l")
if [ "$units" -ge 3 ] && [ "$enabled" -eq 0 ]; then ok "$units systemd units shipped, none enabled"; else bad "units: $units shipped, $enabled enabled"; fi
if in_root "test -f /usr/share/doc/nfsup/examples/cron.d/nfsup-watchdog"; then ok "the cron.d example is where README says"; else bad "no /usr/share/doc/nfsup/examples/cron.d/nfsup-watchdog"; fi
v=$(in_root "nfsup-watchdog validate -c /etc/nfsup/watchdog.yaml" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "share" <<<"$v"; then ok "validate refuses the unedited config: $(head -1 <<<"$v")"; else bad "validate on the unedited config: rc $rc: $v"; fi
i=$(in_root "mkdir -p /mnt/fleet && nfsup-install init /mnt/fleet/myagent" 2>&1); rc=$?
if [ $rc -ne 0 ] && in_root "test ! -e /mnt/fleet/myagent/nfsup-share" && grep -qi "network file system\|--local" <<<"$i"; then
  ok "First fleet step 2 on a local directory is refused: $(head -1 <<<"$i")"
else bad "init on a local directory: rc $rc: $i"; fi
if in_root "nfsup-install init /mnt/fleet/myagent --local >/dev/null && nfsup-install status /mnt/fleet/myagent >/dev/null; test \$? -le 1"; then
  ok "init --local, then status, on the clean machine"
else bad "init --local / status on the clean machine"; fi
echo "took $((SECONDS - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
