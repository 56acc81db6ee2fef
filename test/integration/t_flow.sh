#!/usr/bin/env bash
# Foundation flows on a local-directory share: push, reconfig, rollback, cron mode, status.
source "$(dirname "$0")/lib.sh"

test_push_reconfig_rollback_three_daemons() {
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0 new)
  printf '#!/bin/sh\nsed -i "s/^level: .*/level: two/" "$NFSUP_CONFIG"\necho "host: $NFSUP_HOST from $NFSUP_FROM_VERSION" >> "$NFSUP_CONFIG"\n' > "$T/migrate.sh"
  chmod +x "$T/migrate.sh"
  add_host web01; add_host web02; add_host web03
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "hosts did not reach 1.0"
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --reconfig "$T/migrate.sh" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "push 1.0 -> 2.0 (generation 2): 3 host(s) ok, 0 failed"
  for h in web01 web02 web03; do
    host_runs $h 2.0 || fail "$h does not report running 2.0"
    assert_eq "$(agent_alive_version $h)" 2.0 "$h agent process version"
    assert_file_eq "$T/hosts/$h/agent.yaml" "$(printf 'level: two\nhost: %s from 1.0' $h)"
    grep -q "agent 2.0 on $h started" "$T/hosts/$h/state/agent.log" || fail "$h agent log lacks the 2.0 start"
    # Verified and the reconfig script fetched while stopped, before the unmark; the switch used it.
    grep -q "$h: 2.0 verified while stopped in .*; ready to switch" "$T/hosts/$h/watchdog.log" || fail "$h did not prepare 2.0"
    grep -q "$h: switching 1.0 -> 2.0 (generation 2; prepared while stopped)" "$T/hosts/$h/watchdog.log" \
      || fail "$h switch did not use what it prepared: $(grep switching "$T/hosts/$h/watchdog.log")"
  done
  # The agent runs from the versioned release directory, never from a path a push overwrites:
  # its local run tree (run_from: local, the default), or the release on the share.
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/web01/state/state")
  if [ "${RUN_FROM:-}" == share ]; then
    assert_eq "$(readlink /proc/$pid/cwd)" "$SHARE/releases/2.0" "agent cwd"
  else
    assert_eq "$(readlink /proc/$pid/cwd)" "$T/hosts/web01/state/cache/2.0" "agent cwd"
  fi
  out=$("$INSTALL" rollback "$SHARE" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "rollback 2.0 -> 1.0 (generation 3): 3 host(s) ok"
  for h in web01 web02 web03; do
    assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"
    assert_eq "$(agent_alive_version $h)" 1.0 "$h after rollback"
    grep -q "$h: switching 2.0 -> 1.0 (generation 3; prepared while stopped)" "$T/hosts/$h/watchdog.log" \
      || fail "$h rollback did not use what it prepared"
  done
  out=$("$INSTALL" rollback "$SHARE" --to 2.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "rollback 1.0 -> 2.0 (generation 4): 3 host(s) ok"
  json=$("$INSTALL" status "$SHARE" --json)
  assert_contains "$json" '"schema":"nfsup-status/1"'
  assert_contains "$json" '"current":{"release":"2.0","generation":4'
  [ "$(grep -o '"state":"running"' <<<"$json" | wc -l)" -eq 3 ] || fail "status --json: not 3 running hosts: $json"
  ls "$SHARE/audit" | grep -q rollback || fail "no audit event for rollback"
}

test_unchanged_config_is_backed_up_for_rollback() {
  # A switch that leaves the agent's config alone still keeps a copy of it under the version
  # it came from (a daemon writes it after the restart moment: at its next heartbeat, before
  # any later switch, on exit); a later rollback restores it.
  begin
  local r1 r2 r3; r1=$(make_release 1.0); r2=$(make_release 2.0); r3=$(make_release 3.0)
  printf '#!/bin/sh\nsed -i "s/^level: .*/level: three/" "$NFSUP_CONFIG"\n' > "$T/migrate.sh"
  chmod +x "$T/migrate.sh"
  add_host web01; add_host web02
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  stop_watchdog web02   # at once: its exit writes what is pending
  for h in web01 web02; do
    wait_until 5 test -f "$T/hosts/$h/state/backups/agent.yaml@1.0" || fail "$h: no backup of its 1.0 config"
    assert_file_eq "$T/hosts/$h/state/backups/agent.yaml@1.0" "level: one"
  done
  start_watchdog web02
  "$INSTALL" push "$SHARE" "$r3" --version 3.0 --reconfig "$T/migrate.sh" "${MASTER_OPTS[@]}" -q
  assert_file_eq "$T/hosts/web01/agent.yaml" "level: three"
  out=$("$INSTALL" rollback "$SHARE" --to 1.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "rollback 3.0 -> 1.0"
  for h in web01 web02; do assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"; done
}

test_local_copy_is_verified_against_the_manifest() {
  # After an upgrade each host keeps a local copy of its release (to restart from while the
  # share is unreachable), made at its next heartbeat and hashed against the manifest.
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  mkdir -p "$r1/lib/sub"; echo data > "$r1/lib/sub/file"; ln -s sub/file "$r1/lib/link"
  add_host web01
  [ -n "${RUN_FROM:-}" ] || echo "run_from: share" >> "$T/hosts/web01/watchdog.yaml"  # (the copy made after the start)
  sed -i "s/^heartbeat_interval: .*/heartbeat_interval: 1s/" "$T/hosts/web01/watchdog.yaml"
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  local c="$T/hosts/web01/state/cache"
  wait_until 10 test -d "$c/1.0" || fail "no local copy of 1.0"
  diff -r --exclude=.nfsup "$SHARE/releases/1.0" "$c/1.0" || fail "local copy differs from the release"
  [ -x "$c/1.0/bin/agent" ] || fail "local copy lost the agent's mode"
  assert_eq "$(readlink "$c/1.0/lib/link")" "sub/file" "symlink in the local copy"
  # A file that no longer matches its manifest is not copied: the copy is refused, not kept.
  # (VERSION: the only file 2.0 changes; the others come from the local store, unread.)
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  f="$SHARE/releases/2.0/VERSION"; chmod u+w "$f"; printf 'Z' | dd of="$f" bs=1 seek=3 conv=notrunc status=none
  wait_until 10 grep -q "no local copy of 2.0: .*sha256" "$T/hosts/web01/watchdog.log" || fail "tampered release copied"
  [ ! -e "$c/2.0" ] && [ ! -e "$c/2.0.tmp" ] || fail "a local copy of the tampered 2.0 was left"
  [ -d "$c/1.0" ] || fail "the verified local copy of 1.0 was dropped"
}

# Issue 17: unsigned hosts with run_from: local (the default) run what they fetched and
# verified, not the share: a file replaced on the share after the hosts prepared 2.0 (the
# master died after the pointer swap; the lease lapses) never runs. RUN_FROM=share skips it.
test_unsigned_local_host_never_runs_bytes_replaced_after_preparation() {
  [ "${RUN_FROM:-}" != share ] || return 0
  begin
  add_host u1; add_host u2
  start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "1.0 not running everywhere"
  master_killed_at switch-after-pointer push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}"
  for h in u1 u2; do
    wait_until 10 grep -Eq "$h: 2.0 (fetched and verified|verified while stopped)" "$T/hosts/$h/watchdog.log" \
      || fail "$h did not prepare 2.0"
  done
  { printf '#!/bin/sh\ntouch %s/pwned.$NFSUP_HOST\n' "$T"; tail -n +2 "$FIXTURES/fake-agent"; } > "$T/evil"
  chmod 555 "$T/evil"; mv "$T/evil" "$SHARE/releases/2.0/bin/agent"
  for h in u1 u2; do
    wait_until 15 alive_is $h 2.0 || fail "$h does not run 2.0: '$(agent_alive_version $h)'"
  done
  [ -z "$(ls "$T" | grep pwned)" ] || fail "replaced bytes ran on: $(ls "$T" | grep pwned | tr '\n' ' ')"
  assert_eq "$(host_field u1 run_from)" local "u1's status says where it runs from"
}

# Issue 17: a host keeps the running release's run tree, the one before (while the new one is
# on trial) and keep_releases others; store objects no kept tree links go with the rest.
test_old_local_releases_and_their_objects_are_pruned() {
  [ "${RUN_FROM:-}" != share ] || return 0
  begin
  add_host k1
  echo "keep_releases: 0" >> "$T/hosts/k1/watchdog.yaml"
  start_all
  for v in 1.0 2.0 3.0; do
    "$INSTALL" push "$SHARE" "$(make_release $v)" --version $v "${MASTER_OPTS[@]}" -q
    wait_until 10 all_run $v || fail "k1 did not reach $v"
  done
  local c="$T/hosts/k1/state/cache" s="$T/hosts/k1/state/store"
  assert_eq "$(ls "$c" | tr '\n' ' ')" "2.0 2.0.verified 3.0 3.0.verified " "run trees kept"
  grep -rlx "release 1.0 " "$s" && fail "the object only 1.0 had is still in the store"
  [ -n "$(grep -rlx "release 2.0 " "$s")" ] || fail "2.0's VERSION object was dropped"
  # Every store object is linked by a kept run tree.
  [ -z "$(find "$s" -type f -links 1)" ] || fail "unlinked objects left: $(find "$s" -type f -links 1)"
}

test_repush_same_version_writes_nothing() {
  begin
  local r1; r1=$(make_release 1.0)
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  before=$(find "$SHARE/objects" -type f | wc -l)
  out=$("$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait 2>&1)
  assert_contains "$out" "already current"
  echo changed >> "$r1/VERSION"
  out=$("$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait 2>&1) && fail "changed content under an existing version accepted"
  assert_contains "$out" "already on the share with different content"
  # A new version whose files are unchanged but one reuses every other object.
  "$INSTALL" push "$SHARE" "$r1" --version 1.1 --no-wait -q
  after=$(find "$SHARE/objects" -type f | wc -l)
  assert_eq "$after" "$((before + 1))" "objects after pushing 1.1 with one changed file"
}

test_cron_mode_hosts_follow_pushes() {
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host cron1 check; add_host cron2 check
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  ( while :; do for h in cron1 cron2; do "$WATCHDOG" check -q -c "$T/hosts/$h/watchdog.yaml" >>"$T/hosts/$h/watchdog.log" 2>&1; done; sleep 0.2; done ) &
  loop=$!
  wait_until 15 all_run 1.0 || { kill $loop; fail "cron hosts did not start 1.0"; }
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1) || { kill $loop; fail "push failed: $out"; }
  kill $loop; wait $loop 2>/dev/null || true
  assert_eq "$(agent_alive_version cron1)" 2.0 "cron1 agent"
  assert_eq "$(agent_alive_version cron2)" 2.0 "cron2 agent"
  assert_eq "$(host_field cron1 mode)" check
  # An idle tick changes nothing and exits 0.
  "$WATCHDOG" check -q -c "$T/hosts/cron1/watchdog.yaml"
  assert_eq "$(agent_alive_version cron1)" 2.0 "cron1 agent after an idle tick"
  # Ticks within heartbeat_interval (500ms here) of the last status write nothing, on the
  # share or locally; once it has passed, one tick rewrites both (a new heartbeat).
  local st="$SHARE/hosts/cron1/status" ls="$T/hosts/cron1/state/state"
  sleep 0.6; "$WATCHDOG" check -q -c "$T/hosts/cron1/watchdog.yaml"
  local s0 l0 hb0; s0=$(stat -c %i.%Y.%s "$st"); l0=$(stat -c %i.%s "$ls"); hb0=$(host_field cron1 heartbeat)
  for _ in 1 2 3; do "$WATCHDOG" check -q -c "$T/hosts/cron1/watchdog.yaml"; done
  assert_eq "$(stat -c %i.%Y.%s "$st")" "$s0" "status file after idle ticks within heartbeat_interval"
  assert_eq "$(stat -c %i.%s "$ls")" "$l0" "local state after idle ticks within heartbeat_interval"
  assert_eq "$(host_field cron1 heartbeat)" "$hb0" "heartbeat within heartbeat_interval"
  sleep 0.6; "$WATCHDOG" check -q -c "$T/hosts/cron1/watchdog.yaml"
  [ "$(host_field cron1 heartbeat)" -gt "$hb0" ] || fail "no new heartbeat after heartbeat_interval"
  [ "$(stat -c %i "$st")" != "${s0%%.*}" ] || fail "status file not rewritten after heartbeat_interval"
  # A cron host keeps a local copy of its release too (made at a tick after the start).
  [ -d "$T/hosts/cron1/state/cache/2.0" ] || fail "cron host made no local copy of 2.0"
  # Hosts without checks_dir say so, and the push skipped the vote round: nobody voted.
  assert_eq "$(host_field cron1 checks)" no
  [ ! -e "$SHARE/hosts/cron1/vote" ] && [ ! -e "$SHARE/hosts/cron2/vote" ] || fail "a host voted although none has checks"
}

test_overlapping_cron_runs_are_refused() {
  begin
  add_host c1 check
  exec 9>"$T/hosts/c1/state/lock"
  flock 9
  set +e; out=$("$WATCHDOG" check -c "$T/hosts/c1/watchdog.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "exit code of an overlapping check"
  assert_contains "$out" "a previous check is still running"
}

test_daemon_and_cron_ticks_never_share_a_state_dir() {
  begin
  local r1; r1=$(make_release 1.0)
  add_host d1
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  set +e; out=$("$WATCHDOG" check -c "$T/hosts/d1/watchdog.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "a check beside a daemon"
  assert_contains "$out" "a watchdog daemon (daemon "
  local t0; t0=$(date +%s)
  set +e; out=$(timeout 30 "$WATCHDOG" run -c "$T/hosts/d1/watchdog.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "a second daemon on the same state_dir"
  assert_contains "$out" "one watchdog per state_dir"
  (( $(date +%s) - t0 < 10 )) || fail "the second daemon waited instead of giving up"
  host_runs d1 1.0 || fail "d1 disturbed"
  # Once the daemon is gone, cron ticks take over (the daemon's note in the lock file is cleared).
  stop_watchdog d1
  "$WATCHDOG" check -q -c "$T/hosts/d1/watchdog.yaml"
  assert_eq "$(cat "$T/hosts/d1/state/lock")" "" "lock file note after a check"
}

test_stale_host_is_named_and_skipped() {
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host live1; add_host gone1
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  stop_watchdog gone1
  sleep 5   # older than --stale-after 4s
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "gone1: skipped: last status"
  assert_contains "$out" "1 host(s) ok, 0 failed"
  # When it comes back it converges by itself.
  start_watchdog gone1
  wait_until 10 host_runs gone1 2.0 || fail "gone1 did not converge to 2.0"
}

test_idle_poll_costs_three_share_calls() {
  command -v strace >/dev/null || { echo "    skipped: strace not installed"; return 0; }
  begin
  local r1; r1=$(make_release 1.0)
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  add_host idle1
  sed -i 's/^heartbeat_interval: .*/heartbeat_interval: 1h/' "$T/hosts/idle1/watchdog.yaml"
  start_watchdog idle1
  wait_until 10 host_runs idle1 1.0 || fail "not running"
  sleep 0.5
  timeout -s INT 3 strace -f -qq -p "${WD_PID[idle1]}" -o "$T/trace" -e trace=%file,%desc 2>/dev/null || true
  # Everything the watchdog did with files in 3 s, minus waiting on its own signal pipe.
  grep -v -E ' (poll|ppoll|futex)\(|resumed>|read\([0-9]+, ".*", 64\)' "$T/trace" | sed -E 's/^[0-9]+ +//' > "$T/calls"
  polls=$(grep -c "O_DIRECTORY" "$T/calls" || true)
  total=$(wc -l < "$T/calls")
  [ "$polls" -ge 10 ] || fail "only $polls polls seen in 3 s at 100ms"
  assert_eq "$total" "$((polls * 3))" "file calls for $polls idle polls (expected exactly 3 each): $(sort "$T/calls" | uniq -c | sort -rn | head -5)"
  grep -q "openat([0-9]*, \"MARKER\"" "$T/calls" || fail "the poll does not look for MARKER"
  echo "    idle polls: $polls, share calls: $total ($((total / polls)) per poll)"
}

test_idle_heartbeat_is_one_touch_and_the_pointer_is_read_when_the_share_changed() {
  # Issue 17, the RPC budget: a heartbeat whose status content did not change is one
  # utimensat() of the status file (the server stamps it; the master reads the mtime), not a
  # rewrite; the pointer is read again only when the share's root directory changed.
  command -v strace >/dev/null || { echo "    skipped: strace not installed"; return 0; }
  begin
  local r1; r1=$(make_release 1.0)
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  add_host hb1
  sed -i 's/^poll_interval: .*/poll_interval: 100ms/; s/^heartbeat_interval: .*/heartbeat_interval: 400ms/' "$T/hosts/hb1/watchdog.yaml"
  start_watchdog hb1
  wait_until 10 host_runs hb1 1.0 || fail "not running"
  sleep 1
  timeout -s INT 3 strace -f -qq -p "${WD_PID[hb1]}" -o "$T/trace" -e trace=%file,%desc 2>/dev/null || true
  sed -E 's/^[0-9]+ +//' "$T/trace" > "$T/calls"
  local touches rewrites pointer
  touches=$(grep -c 'utimensat([0-9]*, "status", NULL' "$T/calls" || true)
  rewrites=$(grep -c 'O_CREAT' "$T/calls" || true)
  pointer=$(grep -c '"current"' "$T/calls" || true)
  [ "$touches" -ge 4 ] || fail "$touches status touches in 3 s at a 400 ms heartbeat: $(grep -E 'status|tmp' "$T/calls" | head -5)"
  assert_eq "$rewrites" 0 "files created while idle: $(grep O_CREAT "$T/calls" | head -3)"
  assert_eq "$pointer" 0 "pointer reads while the share did not change"
  [ "$(host_field hb1 state)" = running ] || fail "status no longer readable"
  # A change in the share's root (here: a file created and removed) makes the next heartbeat
  # read the pointer.
  timeout -s INT 2 strace -f -qq -p "${WD_PID[hb1]}" -o "$T/trace2" -e trace=%file,%desc 2>/dev/null &
  local sp=$!
  sleep 0.5; : >"$SHARE/.probe"; rm -f "$SHARE/.probe"
  wait $sp || true
  grep -q '"current"' "$T/trace2" || fail "the pointer was not read after the share's root changed"
}

# slow_drain_agent RELEASE_DIR SECONDS: an agent that takes SECONDS to drain on SIGUSR1
# (0: never drains; only the stop signal ends it).
slow_drain_agent() {
  cat > "$1/bin/agent" <<EOA
#!/bin/sh
echo "agent \$NFSUP_VERSION on \$NFSUP_HOST started (pid \$\$)"
trap 'exit 0' TERM INT
trap 'echo "agent \$NFSUP_VERSION draining slowly"; [ $2 -gt 0 ] && { sleep $2; exit 0; }' USR1
while :; do sleep 1 & wait \$!; done
EOA
  chmod +x "$1/bin/agent"
}

# cron_ticks HOST KILL_AFTER PAUSE: runs cron ticks for HOST in the background, each killed
# after KILL_AFTER seconds (as `timeout -s KILL` in the documented crontab), until stop_cron_ticks.
cron_ticks() {
  ( set +e; while [ ! -e "$T/stop-ticks" ]; do
      timeout -s KILL "$2" "$WATCHDOG" check -q -c "$T/hosts/$1/watchdog.yaml" >>"$T/hosts/$1/watchdog.log" 2>&1
      sleep "$3"
    done ) 2>/dev/null &
  TICKS_PID=$!
}
stop_cron_ticks() { touch "$T/stop-ticks"; wait "$TICKS_PID" 2>/dev/null || true; }

test_slow_drain_keeps_the_heartbeat() {
  # Promise 7: a host draining within its configured drain timeout is not "lost". The drain
  # (6 s) is longer than --stale-after (4 s); the host keeps its heartbeat while it drains, so
  # the all-at-once switch waits for it instead of moving the other host on without it.
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  slow_drain_agent "$r1" 6
  add_host d1; add_host d2
  for h in d1 d2; do echo "  drain: {signal: USR1, timeout: 10s}" >> "$T/hosts/$h/watchdog.yaml"; done
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "hosts did not reach 1.0"
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 0 "push over a slow drain: $out"
  assert_contains "$out" "2 host(s) ok, 0 failed"
  grep -q "lost" <<<"$out" && fail "a draining host was declared lost: $out"
  for h in d1 d2; do
    assert_eq "$(agent_alive_version $h)" 2.0 "$h agent"
    grep -q "agent 1.0 draining slowly" "$T/hosts/$h/state/agent.log" || fail "$h was not drained"
  done
}

test_cron_drain_longer_than_a_tick_finishes() {
  # Promise 13: cron kills each tick after 1 s here (the documented crontab: 50 s); the agent
  # never drains, so the 2 s drain timeout has to run out across ticks and the stop signal
  # follow. Today each tick started the drain anew and the host drained forever.
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  slow_drain_agent "$r1" 0
  add_host cr1 check
  echo "  drain: {signal: USR1, timeout: 2s}" >> "$T/hosts/cr1/watchdog.yaml"
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  cron_ticks cr1 1 0.2
  wait_until 15 all_run 1.0 || { stop_cron_ticks; fail "cr1 did not start 1.0"; }
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --stale-after 4s --lease 2s --timeout 20s 2>&1); rc=$?; set -e
  stop_cron_ticks
  assert_eq "$rc" 0 "push to a cron host whose drain outlasts a tick: $out"
  assert_contains "$out" "1 host(s) ok, 0 failed"
  assert_eq "$(agent_alive_version cr1)" 2.0 "cr1 agent"
}

test_cron_tick_killed_during_start_grace_reaches_running() {
  # Promise 13: a tick killed while it waits out start_grace (2 s, ticks killed at 1 s) does
  # not leave the host `starting` for ever: the next tick finds the grace over and promotes it.
  begin
  local r1; r1=$(make_release 1.0)
  add_host cg1 check
  sed -i 's/^  start_grace: .*/  start_grace: 2s/' "$T/hosts/cg1/watchdog.yaml"
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  cron_ticks cg1 1 0.3
  ok=0; wait_until 15 host_runs cg1 1.0 || ok=1
  stop_cron_ticks
  [ $ok -eq 0 ] || fail "cg1 stuck in '$(host_field cg1 state)'"
  alive_is cg1 1.0 || fail "cg1 agent is not 1.0"
}

test_checks_dir_added_by_a_reload_counts_at_once() {
  # Promise 15: a checks_dir added by SIGHUP is announced (status `checks yes`) by the reload
  # itself, not at the next heartbeat (20 s here), so the next push holds a vote round and the
  # new check can veto it.
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host v1
  sed -i 's/^heartbeat_interval: .*/heartbeat_interval: 20s/' "$T/hosts/v1/watchdog.yaml"
  start_all
  local opts=(--stale-after 60s --lease 2s --timeout 30s --vote-timeout 10s)
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${opts[@]}" -q
  wait_until 10 all_run 1.0 || fail "v1 did not reach 1.0"
  sleep 1
  mkdir "$T/checks"
  printf '#!/bin/sh\necho "disk too full for $NFSUP_TO_VERSION"; exit 1\n' > "$T/checks/10-disk"; chmod +x "$T/checks/10-disk"
  printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/v1/watchdog.yaml"
  kill -HUP "${WD_PID[v1]}"
  wait_until 3 grep -q "config reloaded" "$T/hosts/v1/watchdog.log" || fail "no reload"
  sleep 0.5
  assert_eq "$(host_field v1 checks)" yes "checks after the reload"
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${opts[@]}" 2>&1); rc=$?; set -e
  assert_contains "$out" "v1: 10-disk: disk too full for 2.0"
  [ "$rc" -ne 0 ] || fail "push went through a veto: $out"
  alive_is v1 1.0 || fail "v1 left 1.0"
}

test_slow_stop_keeps_the_heartbeat() {
  # Promise 7, the stop: an agent that takes 9 s to exit after SIGTERM (stop_timeout 12 s,
  # --stale-after 4 s) keeps its host's heartbeat going; nobody is declared lost. While it
  # stops, the status content does not change: the heartbeat is the file's mtime (touched).
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  cat > "$r1/bin/agent" <<'EOA'
#!/bin/sh
echo "agent $NFSUP_VERSION on $NFSUP_HOST started (pid $$)"
trap 'echo "agent $NFSUP_VERSION stopping slowly"; sleep 9; exit 0' TERM
while :; do sleep 1 & wait $!; done
EOA
  add_host s1; add_host s2
  for h in s1 s2; do sed -i 's/^  stop_timeout: .*/  stop_timeout: 12s/' "$T/hosts/$h/watchdog.yaml"; done
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "hosts did not reach 1.0"
  # (--stale-after 2 s: four heartbeats of 500 ms, shorter than the 9 s stop)
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --stale-after 2s --lease 2s --timeout 60s 2>&1); rc=$?; set -e
  assert_eq "$rc" 0 "push over a slow stop: $out"
  assert_contains "$out" "2 host(s) ok, 0 failed"
  for h in s1 s2; do assert_eq "$(agent_alive_version $h)" 2.0 "$h agent"; done
}

test_drain_command_runs_and_the_stop_follows() {
  # A drain command is started beside the watchdog (not waited for); the agent, which does
  # not exit by itself here, is stopped once drain.timeout (1 s) has passed.
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host dc1
  echo "  drain: {command: [sh, -c, 'echo drained \$NFSUP_VERSION > $T/drain-ran'], timeout: 1s}" >> "$T/hosts/dc1/watchdog.yaml"
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "dc1 did not reach 1.0"
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "1 host(s) ok, 0 failed"
  assert_file_eq "$T/drain-ran" "drained 1.0"
  grep -q "agent 1.0 still running after the 1s drain timeout; stopping it" "$T/hosts/dc1/watchdog.log" \
    || fail "no stop after the drain timeout: $(grep dc1: "$T/hosts/dc1/watchdog.log" | tail -5)"
  assert_eq "$(agent_alive_version dc1)" 2.0 "dc1 agent"
}

run_tests
