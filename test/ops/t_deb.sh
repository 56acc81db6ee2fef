#!/usr/bin/env bash
# The Debian package, end to end (slow: a full package build). It runs only when
# NFSUP_TEST_DEB=1 or CI=true, and only as root on a system where nfsup is not installed yet.
# Steps: scripts/build-deb.sh, `apt-get install ./nfsup_*.deb`, checks of what it installed
# (conffile, units installed but not enabled, no cron job, state dir, man pages, completion),
# a smoke test with the installed binaries (init, push, one check tick that starts the agent,
# status), then `apt-get remove` and, if /var/lib/nfsup did not exist before, `apt-get purge`.
# NFSUP_DEB=path/to.deb skips the build and tests that file instead.
source "$(dirname "$0")/lib.sh"

if [ "${NFSUP_TEST_DEB:-0}" != 1 ] && [ "${CI:-}" != true ]; then
  echo "skipped: the package test is slow; run it with NFSUP_TEST_DEB=1 (it always runs when CI=true)"
  echo "0 passed, 0 failed"
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: installing a package needs root"
  echo "0 passed, 0 failed"
  exit 77
fi
if dpkg-query -W -f='${Status}' nfsup 2>/dev/null | grep -q "install ok installed"; then
  echo "skipped: nfsup is already installed on this system; this test would replace and remove it"
  echo "0 passed, 0 failed"
  exit 77
fi

export DEBIAN_FRONTEND=noninteractive
# The suite runs beside other tests (meson is_parallel): an apt-get of another test's
# need_cmd waits for dpkg's lock instead of failing at once.
apt-get() { command apt-get -o DPkg::Lock::Timeout=600 "$@"; }
STATE_EXISTED=0
[ -e /var/lib/nfsup ] && STATE_EXISTED=1
installed() { dpkg-query -W -f='${Status}' nfsup 2>/dev/null | grep -q "install ok installed"; }
# Whatever happens, do not leave the package installed.
on_exit_script() { installed && apt-get remove -y -qq nfsup >/dev/null 2>&1; true; }
trap 'on_exit_script; _at_exit' EXIT

check_build() {
  local deb
  if [ -n "${NFSUP_DEB:-}" ]; then
    deb=$NFSUP_DEB
  else
    deb=$("$NFSUP_SRC/scripts/build-deb.sh" | tail -1) || fail "scripts/build-deb.sh failed"
  fi
  [ -f "$deb" ] || fail "no package at '$deb'"
  dpkg-deb -f "$deb" Package | grep -qx nfsup || fail "$deb is not the nfsup package"
  echo "$deb" >"$TMP/deb"
}

check_install() {
  [ -s "$TMP/deb" ] || skip "needs the build"
  local deb; deb=$(cat "$TMP/deb")
  # apt-get resolves the runtime dependencies; it needs a path with a slash.
  apt-get install -y -qq "$(realpath "$deb")" >"$TMP/apt.log" 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq "$(realpath "$deb")" >>"$TMP/apt.log" 2>&1; } \
    || { tail -20 "$TMP/apt.log" >&2; fail "apt-get install failed"; }
  installed || fail "nfsup is not installed after apt-get install"
}

check_installed_files() {
  installed || skip "needs the install"
  local f
  for f in /usr/bin/nfsup-install /usr/bin/nfsup-watchdog /usr/bin/nfsup-reconfig; do
    [ -x "$f" ] || fail "$f missing"
    # linked statically on purpose (debian/rules: the cron tick's cost before main())
    if ldd "$f" >/dev/null 2>&1; then fail "$f is dynamically linked: $(ldd "$f" | wc -l) shared objects"; fi
  done
  [ -f /etc/nfsup/watchdog.yaml ] || fail "/etc/nfsup/watchdog.yaml missing"
  dpkg-query -W -f='${Conffiles}\n' nfsup | grep -q '^ /etc/nfsup/watchdog.yaml ' \
    || fail "/etc/nfsup/watchdog.yaml is not a conffile: $(dpkg-query -W -f='${Conffiles}' nfsup)"
  [ -d /var/lib/nfsup ] || fail "postinst did not create /var/lib/nfsup"
  assert_eq "$(stat -c %a /var/lib/nfsup)" 755 "mode of /var/lib/nfsup"
  [ -f /usr/share/doc/nfsup/examples/cron.d/nfsup-watchdog ] || fail "cron.d example missing"
  [ -f /usr/share/doc/nfsup/examples/watchdog.yaml ] || fail "watchdog.yaml example missing"
  [ ! -e /etc/cron.d/nfsup-watchdog ] || fail "the package enabled cron mode (/etc/cron.d/nfsup-watchdog)"
  for f in nfsup-watchdog.service nfsup-watchdog-check.service nfsup-watchdog-check.timer; do
    dpkg -L nfsup | grep -qE "^(/usr)?/lib/systemd/system/$f\$" || fail "unit $f not installed"
  done
  # Installed, not enabled: no symlinks in any .wants directory.
  [ -z "$(find /etc/systemd/system -name 'nfsup-watchdog*' 2>/dev/null)" ] \
    || fail "units were enabled: $(find /etc/systemd/system -name 'nfsup-watchdog*')"
  # The README (possibly compressed by dh_compress) and a copyright file with a notice.
  ls /usr/share/doc/nfsup/README.md* >/dev/null 2>&1 || fail "README.md is not in /usr/share/doc/nfsup"
  grep -qE '^Copyright: [0-9]{4} ' /usr/share/doc/nfsup/copyright || fail "copyright file has no notice with a year"
  # The shipped configuration leaves share: unset: validate (the daemon's ExecStartPre=)
  # refuses it until it is edited, and accepts it once share: is set.
  local rc=0
  /usr/bin/nfsup-watchdog validate -q -c /etc/nfsup/watchdog.yaml 2>"$TMP/v.err" || rc=$?
  assert_eq "$rc" 2 "validate on the unedited /etc/nfsup/watchdog.yaml"
  assert_contains "$(cat "$TMP/v.err")" "/etc/nfsup/watchdog.yaml: missing required key 'share'"
  sed 's|^#share: .*|share: /mnt/fleet/myagent|' /etc/nfsup/watchdog.yaml >"$TMP/edited.yaml"
  /usr/bin/nfsup-watchdog validate -c "$TMP/edited.yaml" >/dev/null || fail "the shipped config with share: set does not validate"
}

check_smoke_test_installed_binaries() {
  installed || skip "needs the install"
  local share="$TMP/share" state="$TMP/state" rc=0
  /usr/bin/nfsup-install init --local "$share" >/dev/null || fail "nfsup-install init"
  make_release "$TMP/rel" 1.0
  /usr/bin/nfsup-install -q push "$share" "$TMP/rel" --version 1.0 --no-wait >/dev/null || fail "nfsup-install push"
  # The installed config, pointed at the temp share and the fixture agent.
  echo "level: one" >"$TMP/agent.yaml"
  sed -e "s|^#\?share: .*|share: $share|" -e "s|^state_dir: .*|state_dir: $state|" -e "s|^#host: .*|host: debtest|" \
    -e "s|^  command: .*|  command: [bin/agent, \"{config}\"]|" -e "s|^  config: .*|  config: $TMP/agent.yaml|" \
    /etc/nfsup/watchdog.yaml >"$TMP/watchdog.yaml"
  /usr/bin/nfsup-watchdog check -q -c "$TMP/watchdog.yaml" || rc=$?
  # The tick started the agent detached; stop it again when this check ends.
  on_exit 'p=$(sed -n "s/.*started (pid \([0-9]*\)).*/\1/p" '"$state"'/agent.log | tail -1); [ -n "$p" ] && kill $p'
  assert_eq "$rc" 0 "exit code of the check tick"
  wait_until 5 grep -q "agent 1.0 on debtest started" "$state/agent.log" || fail "the agent did not start"
  local st
  st=$(/usr/bin/nfsup-install status "$share" --json)
  assert_contains "$st" '"host":"debtest","state":"running","running":"1.0"'
  /usr/bin/nfsup-install releases "$share" | grep -qx 1.0 || fail "releases does not list 1.0"
  /usr/bin/nfsup-reconfig --help >/dev/null || fail "nfsup-reconfig --help"
}

check_man_pages() {
  installed || skip "needs the install"
  local pages
  pages=$(dpkg -L nfsup | grep '^/usr/share/man/man./' || true)
  [ -n "$pages" ] || fail "the package ships no man pages"
  # Containers often exclude /usr/share/man from installation (dpkg path-exclude).
  if [ ! -e /usr/share/man/man1/nfsup-install.1.gz ]; then
    skip "man pages are in the package but dpkg did not install them here (path-exclude)"
  fi
  command -v man >/dev/null || skip "man is not installed"
  man -w nfsup-install | grep -q '/usr/share/man/man1/nfsup-install.1' || fail "man -w nfsup-install"
  man -w 8 nfsup-watchdog | grep -q '/usr/share/man/man8/nfsup-watchdog.8' || fail "man -w 8 nfsup-watchdog"
}

check_bash_completion() {
  installed || skip "needs the install"
  local c=/usr/share/bash-completion/completions
  local f
  for f in nfsup-install nfsup-watchdog nfsup-reconfig; do
    [ -e "$c/$f" ] || fail "$c/$f missing"
  done
  # Loading it defines the completions (without bash-completion's helpers installed too).
  bash -c "source $c/nfsup-install && complete -p nfsup-install nfsup-watchdog nfsup-reconfig" >/dev/null \
    || fail "sourcing $c/nfsup-install does not define the completions"
}

check_remove() {
  installed || skip "needs the install"
  apt-get remove -y -qq nfsup >"$TMP/remove.log" 2>&1 || { tail -20 "$TMP/remove.log" >&2; fail "apt-get remove"; }
  ! installed || fail "still installed after apt-get remove"
  [ ! -e /usr/bin/nfsup-watchdog ] || fail "/usr/bin/nfsup-watchdog left after remove"
  [ -f /etc/nfsup/watchdog.yaml ] || fail "remove must keep the conffile /etc/nfsup/watchdog.yaml"
  if [ "$STATE_EXISTED" = 1 ]; then
    echo "    /var/lib/nfsup existed before the test: not purging" >&2
    return 0
  fi
  apt-get purge -y -qq nfsup >>"$TMP/remove.log" 2>&1 || { tail -20 "$TMP/remove.log" >&2; fail "apt-get purge"; }
  [ ! -e /etc/nfsup/watchdog.yaml ] || fail "purge left /etc/nfsup/watchdog.yaml"
  [ ! -e /var/lib/nfsup ] || fail "purge left /var/lib/nfsup"
}

run_checks
