#!/usr/bin/env bash
# Progress notes of a push: a wait that makes no progress names the hosts it still waits for;
# a small release prints no "staging: 0.0/0.0 MiB" line (on a terminal, through script(1)).
source "$(dirname "$0")/lib.sh"

check_slow_wait_names_the_hosts() {
  local d="$TMP/w" rc=0
  mkdir -p "$d/state"
  new_share "$d/share"
  make_release "$d/r1" 1.0
  cat >"$d/h1.yaml" <<EOF2
share: $d/share
host: slowhost
state_dir: $d/state
agent:
  command: [bin/agent]
EOF2
  # One tick: slowhost is live, and then never ticks again while the push waits for it.
  "$WATCHDOG" check -q -c "$d/h1.yaml" || true
  "$INSTALL" -v push "$d/share" "$d/r1" --version 1.0 --assume-accept --vote-timeout 1s --timeout 9s \
    >"$d/out" 2>"$d/err" || rc=$?
  grep -qE "stopping: 0/1 hosts; waiting for slowhost" "$d/err" || fail "no host named while waiting: $(cat "$d/err")"
}

check_small_release_prints_no_staging_line() {
  command -v script >/dev/null || skip "script(1) is not installed"
  local d="$TMP/s"
  new_share "$d/share"
  make_release "$d/r1" 1.0
  script -qec "'$INSTALL' push '$d/share' '$d/r1' --version 1.0 --no-wait --allow-empty" /dev/null >"$d/tty" 2>&1 || true
  grep -q "published\|1.0" "$d/tty" || fail "the push did not run: $(cat "$d/tty")"
  ! grep -q "staging:" "$d/tty" || fail "a staging line for a small release: $(grep -a staging "$d/tty" | head -1)"
}

run_checks
