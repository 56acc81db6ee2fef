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

check_targeted_push_names_the_hosts_switched() {
  # push --hosts h1: the summary names the hosts it switched, not "<current> -> X" (the fleet's
  # release did not change for the others).
  local d="$TMP/t" h pids=()
  mkdir -p "$d"
  new_share "$d/share"
  make_release "$d/r1" 1.0
  make_release "$d/r2" 2.0
  for h in h1 h2; do
    mkdir -p "$d/state-$h"
    printf 'share: %s\nhost: %s\npoll_interval: 100ms\nheartbeat_interval: 200ms\nstate_dir: %s\nagent:\n  command: [bin/agent]\n  start_grace: 100ms\n  stop_timeout: 2s\n' \
      "$d/share" "$h" "$d/state-$h" >"$d/$h.yaml"
    "$WATCHDOG" run -q -c "$d/$h.yaml" >>"$d/$h.log" 2>&1 &
    pids+=($!)
    on_exit "kill ${pids[-1]}"
  done
  "$INSTALL" -q push "$d/share" "$d/r1" --version 1.0 --allow-empty --timeout 30s >/dev/null
  wait_until 15 sh -c "'$INSTALL' status '$d/share' >/dev/null" || fail "hosts did not start 1.0"
  local out
  out=$("$INSTALL" push "$d/share" "$d/r2" --version 2.0 --hosts h1 --timeout 30s 2>/dev/null) || fail "targeted push failed: $out"
  assert_contains "$out" "push 2.0 on h1 (generation"
  assert_contains "$out" "1 host(s) ok, 0 failed"
  ! grep -q -- "1.0 -> 2.0" <<<"$out" || fail "the summary still says '1.0 -> 2.0': $out"
}

run_checks
