#!/usr/bin/env bash
# The systemd units in packaging/systemd: `systemd-analyze verify` must accept them without a
# single warning. /usr/bin/nfsup-watchdog is replaced by the built binary, and the man pages
# named in Documentation= must exist in doc/. The settings that the daemon and the packaging
# rely on are checked as well. systemd-analyze comes from the `systemd` package, which is
# installed as root when it is missing. If verify cannot run here at all (it fails on a
# trivial unit too), the verify checks are skipped and the reason is printed.
source "$(dirname "$0")/lib.sh"

UNITS_SRC="$NFSUP_SRC/packaging/systemd"
UNITS=(nfsup-watchdog.service nfsup-watchdog-check.service nfsup-watchdog-check.timer)
U="$TMP/units"

# prop FILE KEY: the value of KEY= in FILE (last assignment wins, as in systemd).
prop() { grep -E "^$2=" "$UNITS_SRC/$1" | tail -1 | cut -d= -f2-; }

# verify ARGS...: runs systemd-analyze verify. The status is non-zero on any error or warning;
# the output goes to $TMP/verify.out.
verify() {
  local rc=0
  SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$@" >"$TMP/verify.out" 2>&1 || rc=$?
  # Warnings such as "Unknown key" do not change the exit status; treat any output as failure.
  [ $rc -eq 0 ] && [ ! -s "$TMP/verify.out" ]
}

# Works out whether systemd-analyze verify can run here; prints why not and returns 1 if not.
verify_usable() {
  [ -e "$TMP/verify.usable" ] && return 0
  [ -e "$TMP/verify.unusable" ] && { cat "$TMP/verify.unusable" >&2; return 1; }
  if ! need_cmd systemd-analyze systemd; then
    echo "systemd-analyze is not installed and cannot be installed here" | tee "$TMP/verify.unusable" >&2
    return 1
  fi
  mkdir -p "$TMP/probe"
  printf '[Unit]\nDescription=probe\n[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$TMP/probe/nfsup-probe.service"
  if ! verify --man=no "$TMP/probe/nfsup-probe.service"; then
    { echo "systemd-analyze verify cannot run in this environment (it rejects a trivial unit too):"
      sed 's/^/    /' "$TMP/verify.out"; } | tee "$TMP/verify.unusable" >&2
    return 1
  fi
  touch "$TMP/verify.usable"
}

# The units with the binary path replaced, and a man tree from doc/ for Documentation=.
prepare() {
  rm -rf "$U" "$TMP/man"
  mkdir -p "$U"
  local f p
  for f in "${UNITS[@]}"; do
    [ -f "$UNITS_SRC/$f" ] || fail "missing $UNITS_SRC/$f"
    sed "s|/usr/bin/nfsup-watchdog|$WATCHDOG|g" "$UNITS_SRC/$f" >"$U/$f"
  done
  for p in "$NFSUP_SRC"/doc/*.[1-8]; do
    [ -e "$p" ] || continue
    mkdir -p "$TMP/man/man${p##*.}"
    ln -s "$p" "$TMP/man/man${p##*.}/"
  done
}

check_verify_units() {
  verify_usable || skip "systemd-analyze verify is unavailable (reason above)"
  prepare
  grep -q "$WATCHDOG" "$U/nfsup-watchdog.service" || fail "ExecStart was not pointed at the built binary"
  if command -v man >/dev/null 2>&1 && [ -d "$TMP/man" ]; then
    # With the man pages from doc/: every Documentation=man:... must resolve.
    MANPATH="$TMP/man" verify "${UNITS[@]/#/$U/}" || fail "systemd-analyze verify: $(cat "$TMP/verify.out")"
  else
    echo "    (man or doc/ pages missing: Documentation= not checked)" >&2
    verify --man=no "${UNITS[@]/#/$U/}" || fail "systemd-analyze verify: $(cat "$TMP/verify.out")"
  fi
}

check_verify_catches_mistakes() {
  # The check above would notice a broken unit: a misspelt key, and a missing binary.
  verify_usable || skip "systemd-analyze verify is unavailable (reason above)"
  prepare
  sed -i 's/^WatchdogSec=/WatchdogSecs=/' "$U/nfsup-watchdog.service"
  ! verify --man=no "$U/nfsup-watchdog.service" || fail "a misspelt key went unnoticed"
  assert_contains "$(cat "$TMP/verify.out")" "WatchdogSecs"
  prepare
  sed -i "s|$WATCHDOG|$TMP/no-such-binary|" "$U/nfsup-watchdog-check.service"
  ! verify --man=no "$U/nfsup-watchdog-check.service" || fail "a missing ExecStart binary went unnoticed"
}

check_daemon_unit_settings() {
  local f=nfsup-watchdog.service
  assert_eq "$(prop $f Type)" notify
  assert_eq "$(prop $f NotifyAccess)" main
  assert_eq "$(prop $f WatchdogSec)" 3min
  assert_eq "$(prop $f Restart)" on-failure
  assert_eq "$(prop $f KillMode)" mixed
  assert_eq "$(prop $f ExecStart)" "/usr/bin/nfsup-watchdog run --syslog -c /etc/nfsup/watchdog.yaml"
  assert_eq "$(prop $f ExecStartPre)" "/usr/bin/nfsup-watchdog validate -q -c /etc/nfsup/watchdog.yaml"
  assert_eq "$(prop $f ExecReload)" '/bin/kill -HUP $MAINPID'
  assert_eq "$(prop $f StateDirectory)" nfsup
  assert_eq "$(prop $f PrivateTmp)" yes
  assert_eq "$(prop $f NoNewPrivileges)" yes
  assert_eq "$(prop $f ProtectHome)" read-only
  # /etc must stay writable: the reconfig step renames a new agent.config into place there.
  case "$(prop $f ProtectSystem)" in yes | true) ;; *) fail "ProtectSystem must leave /etc writable (yes), got '$(prop $f ProtectSystem)'" ;; esac
  # The daemon stops the agent itself: systemd must give it stop_timeout (default 30s) and more.
  local t; t=$(prop $f TimeoutStopSec)
  [[ "$t" =~ ^([0-9]+)min$ ]] && (( BASH_REMATCH[1] >= 1 )) || [[ "$t" =~ ^([0-9]+)s?$ && ${BASH_REMATCH[1]} -ge 60 ]] \
    || fail "TimeoutStopSec=$t is too short for stop_timeout"
  # The settings every comment must justify: each one has a comment line right above it.
  local key
  for key in ProtectSystem ProtectHome PrivateTmp NoNewPrivileges KillMode WatchdogSec; do
    grep -B1 -E "^$key=" "$UNITS_SRC/$f" | head -1 | grep -q '^#' || fail "$key= has no comment above it"
  done
}

check_check_unit_and_timer_settings() {
  assert_eq "$(prop nfsup-watchdog-check.service Type)" oneshot
  assert_eq "$(prop nfsup-watchdog-check.service TimeoutStartSec)" 60
  assert_eq "$(prop nfsup-watchdog-check.service ExecStart)" \
    "/usr/bin/nfsup-watchdog check -q --syslog -c /etc/nfsup/watchdog.yaml"
  # The agent started by a tick must survive the end of the oneshot.
  assert_eq "$(prop nfsup-watchdog-check.service KillMode)" process
  assert_eq "$(prop nfsup-watchdog-check.service PrivateTmp)" ""
  assert_eq "$(prop nfsup-watchdog-check.timer OnBootSec)" 1min
  assert_eq "$(prop nfsup-watchdog-check.timer OnUnitActiveSec)" 1min
  assert_eq "$(prop nfsup-watchdog-check.timer AccuracySec)" 5s
}

# exposure UNIT: the overall exposure figure of `systemd-analyze security --offline=true`.
exposure() {
  SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --no-pager "$U/$1" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}

check_security_exposure() {
  # The units were rated 7.8 (daemon) and 8.0 (check) by systemd-analyze security; what an
  # ordinary agent cannot need is now taken away (nfsup-watchdog(8), HARDENING).
  command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
  prepare
  local f e limit
  for f in nfsup-watchdog.service:7.0 nfsup-watchdog-check.service:7.2; do
    limit=${f#*:}; f=${f%%:*}
    e=$(exposure "$f")
    [ -n "$e" ] || skip "systemd-analyze security --offline cannot rate units here"
    awk -v e="$e" -v l="$limit" 'BEGIN { exit !(e <= l) }' || fail "$f: exposure $e, expected at most $limit"
    echo "    $f: exposure $e" >&2
  done
  local key
  for key in ProtectHostname CapabilityBoundingSet SystemCallFilter SystemCallErrorNumber; do
    for f in nfsup-watchdog.service nfsup-watchdog-check.service; do
      [ -n "$(prop $f $key)" ] || fail "$f has no $key="
    done
    grep -q "$key" "$NFSUP_SRC/doc/nfsup-watchdog.8" || fail "nfsup-watchdog(8) does not document $key"
  done
}

check_exec_lines_run() {
  # ExecStartPre= of the daemon unit and the check unit's ExecStart= work with the built
  # binary: validate accepts a config, and a tick on an empty share exits 0.
  local share="$TMP/share" cmd rc=0
  new_share "$share"
  sed -e "s|^#\?share: .*|share: $share|" -e "s|^state_dir: .*|state_dir: $TMP/state|" \
    "$NFSUP_SRC/etc/watchdog.yaml" >"$TMP/watchdog.yaml"
  cmd=$(prop nfsup-watchdog.service ExecStartPre | sed -e "s|/usr/bin/nfsup-watchdog|$WATCHDOG|" -e "s|/etc/nfsup/watchdog.yaml|$TMP/watchdog.yaml|")
  [ -n "$cmd" ] || fail "no ExecStartPre= in nfsup-watchdog.service"
  $cmd || fail "ExecStartPre= failed: $cmd"
  # ... and refuses the unedited shipped file (share: left unset), with exit 2.
  rc=0; $WATCHDOG validate -q -c "$NFSUP_SRC/etc/watchdog.yaml" 2>/dev/null || rc=$?
  assert_eq "$rc" 2 "ExecStartPre= on the unedited etc/watchdog.yaml"
  rc=0
  cmd=$(prop nfsup-watchdog-check.service ExecStart | sed -e "s|/usr/bin/nfsup-watchdog|$WATCHDOG|" -e "s|/etc/nfsup/watchdog.yaml|$TMP/watchdog.yaml|")
  $cmd || rc=$?
  assert_eq "$rc" 0 "the check unit's ExecStart= on an empty share"
}

run_checks
