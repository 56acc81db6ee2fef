#!/usr/bin/env bash
# Failure paths on a local-directory share: bad scripts, crashing agents, dead masters, bad input.
source "$(dirname "$0")/lib.sh"

two_hosts_on_1_0() {
  local r1; r1=$(make_release 1.0)
  add_host a1; add_host a2
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "hosts did not reach 1.0"
}

test_failing_reconfig_keeps_host_on_old_release() {
  begin
  two_hosts_on_1_0
  local r2; r2=$(make_release 2.0)
  printf '#!/bin/sh\nif [ "$NFSUP_HOST" = a2 ]; then echo "a2 config has no port" >&2; exit 7; fi\necho "level: two" > "$NFSUP_CONFIG"\n' > "$T/m.sh"
  chmod +x "$T/m.sh"
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --reconfig "$T/m.sh" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code when a host fails"
  assert_contains "$out" "a2: failed: reconfig script of 2.0 failed (exit code 7): a2 config has no port"
  assert_file_eq "$T/hosts/a2/agent.yaml" "level: one"
  assert_file_eq "$T/hosts/a1/agent.yaml" "level: two"
  assert_eq "$(host_field a2 state)" failed
  assert_eq "$(agent_alive_version a2)" 1.0 "a2 keeps running the old release"
  assert_eq "$(agent_alive_version a1)" 2.0 "a1 moved on"
  # The failure is not retried every poll: still failed, still 1.0 a few polls later.
  sleep 1
  assert_eq "$(host_field a2 state)" failed
  assert_eq "$(agent_alive_version a2)" 1.0
}

acting_everywhere() {  # acting_everywhere VERSION: pointer, state, status and every host say so
  local h
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" "$1" "pointer acting version"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/state")" "$1" "state acting version"
  assert_contains "$("$INSTALL" status "$SHARE")" "acting:   $1"
  for h in "${HOSTS[@]}"; do
    assert_eq "$(host_field $h acting)" "$1" "$h status acting version"
    assert_file_eq "$T/hosts/$h/state/acting_version" "$1"
  done
}

test_push_that_fails_on_every_host_is_undone() {
  # Policy: an all-at-once push that no host could start is undone at once: the pointer names
  # the old release again (a new generation), and nothing claims the release nobody runs.
  begin
  two_hosts_on_1_0
  printf '#!/bin/sh\necho "$NFSUP_HOST config has no port" >&2; exit 7\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --reconfig "$T/m.sh" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code when every host fails"
  assert_contains "$out" "a1: failed: reconfig script of 2.0 failed (exit code 7)"
  assert_contains "$out" "a2: failed: reconfig script of 2.0 failed (exit code 7)"
  assert_contains "$out" "undone: current is 1.0 again"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0 "current after an undone push"
  acting_everywhere 1.0
  st=$("$INSTALL" status "$SHARE") || [ $? -eq 1 ] || fail "status exit code"
  assert_contains "$st" "current:  1.0 (generation 3"
  assert_contains "$st" "rollout:  failed to 2.0"
  for h in a1 a2; do assert_eq "$(agent_alive_version $h)" 1.0 "$h agent"; done
  "$INSTALL" history "$SHARE" | grep -q "undone" || fail "undo not audited: $("$INSTALL" history "$SHARE" | tail -3)"
  # The next push goes ahead normally.
  out=$("$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 "${MASTER_OPTS[@]}" 2>&1) || fail "next push: $out"
  acting_everywhere 3.0
}

test_push_that_fails_on_some_hosts_keeps_host_lines_or_is_undone_by_policy() {
  # Policy: by default an all-at-once push that some host could not start stays, with a host
  # line in the pointer for each failed host naming the release it still runs, and the acting
  # version is the lowest of them; with --max-failures N it is undone when more than N failed.
  begin
  two_hosts_on_1_0
  printf '#!/bin/sh\nif [ "$NFSUP_HOST" = a2 ]; then echo "a2 config has no port" >&2; exit 7; fi\nexit 0\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --reconfig "$T/m.sh" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code when a host fails"
  assert_contains "$(cat "$SHARE/current")" "host a2 1.0"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 2.0
  acting_everywhere 1.0
  assert_contains "$("$INSTALL" status "$SHARE")" "rollout:  partial to 2.0"
  assert_eq "$(agent_alive_version a1)" 2.0; assert_eq "$(agent_alive_version a2)" 1.0
  sleep 1
  assert_eq "$(agent_alive_version a2)" 1.0 "a2 does not retry the failed release"
  # --max-failures 0: one failed host undoes the push for every host.
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 --reconfig "$T/m.sh" --max-failures 0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code when undone by --max-failures"
  assert_contains "$out" "a1: rolled-back"
  assert_contains "$out" "undone: current is 2.0 again"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 2.0
  acting_everywhere 1.0
  wait_until 10 alive_is a1 2.0 || fail "a1 not back on 2.0: $(agent_alive_version a1)"
  assert_eq "$(agent_alive_version a2)" 1.0
}

test_agent_that_will_not_start_goes_back_to_the_previous_release() {
  # Promise 9: a release whose agent dies during its start grace sends each host back to the
  # release and configuration it ran before, with its agent running (today: every host
  # crash-looped on the new release and gave up with no agent at all).
  begin
  two_hosts_on_1_0
  local r3; r3=$(make_release 3.0); touch "$r3/CRASH"
  printf '#!/bin/sh\necho "level: three" > "$NFSUP_CONFIG"\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  set +e; out=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 --reconfig "$T/m.sh" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code for a crashing release"
  assert_contains "$out" "a1: failed: agent 3.0 exited during its start grace (exit code 3); rolled back to 1.0"
  assert_contains "$out" "a2: failed"
  for h in a1 a2; do
    wait_until 5 alive_is $h 1.0 || fail "$h does not run 1.0 again: '$(agent_alive_version $h)'"
    assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"
    assert_eq "$(host_field $h running)" 1.0 "$h reports"
    assert_eq "$(host_field $h state)" failed "$h state (the failed switch stays reported)"
  done
  # Not retried: a few polls later still on 1.0, and the agent was started once per host.
  sleep 1
  for h in a1 a2; do
    alive_is $h 1.0 || fail "$h left 1.0"
    assert_eq "$(grep -c 'agent 3.0 .* started' "$T/hosts/$h/state/agent.log")" 1 "$h starts of 3.0"
  done
}

test_daemon_restarts_a_crashed_agent() {
  begin
  two_hosts_on_1_0
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/a1/state/state")
  kill -KILL "$pid"
  wait_until 10 bash -c "[ \"\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/a1/state/state)\" != $pid ] && [ \"\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/a1/state/state)\" != 0 ]" \
    || fail "agent was not restarted"
  wait_until 5 host_runs a1 1.0 || fail "a1 not back to running"
  grep -q "died (signal SIGKILL); restarting" "$T/hosts/a1/watchdog.log" || fail "no crash line in the log"
}

test_dead_master_lease_lapses_and_hosts_resume() {
  begin
  two_hosts_on_1_0
  local r2; r2=$(make_release 2.0)
  master_killed_at switch-after-stopped push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}"
  [ -e "$SHARE/MARKER" ] || fail "marker should be left behind"
  # Lease 2s: within a few seconds the hosts resume 1.0 without anybody's help.
  wait_until 10 bash -c "[ \"\$(tr '\0' '\n' < /proc/\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/a1/state/state)/environ | grep NFSUP_VERSION=)\" = NFSUP_VERSION=1.0 ]" \
    || fail "a1 did not resume 1.0 after the lease lapsed"
  wait_until 10 bash -c "source $(dirname "$0")/lib.sh; T=$T; [ \"\$(agent_alive_version a2)\" = 1.0 ]" \
    || fail "a2 did not resume 1.0: '$(agent_alive_version a2)'"
  # A new push refuses while the dead marker is there; abort clears it; the push then completes.
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "push while a marker exists"
  assert_contains "$out" "nfsup-install abort"
  out=$("$INSTALL" abort "$SHARE" 2>&1)
  assert_contains "$out" "removed the marker"
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "2 host(s) ok, 0 failed"
}

test_share_without_hard_links_is_refused_cleanly() {
  # The marker is created with link() (the exclusive create that works on NFS), so a share
  # that refuses hard links cannot carry a push: it fails with the file named, exit 3, and
  # the hosts and the current release stay as they were.
  begin
  command -v cc >/dev/null || { echo "    (skipped: no C compiler for the link() shim)"; return 0; }
  cat > "$T/nolink.c" <<'EOC'
#define _GNU_SOURCE
#include <errno.h>
int link(const char* a, const char* b) { (void)a; (void)b; errno = EPERM; return -1; }
int linkat(int fa, const char* a, int fb, const char* b, int fl) { (void)fa; (void)a; (void)fb; (void)b; (void)fl; errno = EPERM; return -1; }
EOC
  cc -shared -fPIC -o "$T/nolink.so" "$T/nolink.c"
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host web01; start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  set +e; out=$(LD_PRELOAD="$T/nolink.so" "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 3 "push on a share without hard links"
  assert_contains "$out" "MARKER): Operation not permitted"
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "expected one line, got: $out"
  [ ! -e "$SHARE/MARKER" ] || fail "a marker was left"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0 "current release"
  host_runs web01 1.0 || fail "web01 left 1.0"
  "$INSTALL" verify "$SHARE" -q || fail "verify after the refused push"
  # init finds it up front: one line naming the share, exit 3, nothing created.
  set +e; out=$(LD_PRELOAD="$T/nolink.so" "$INSTALL" init --local "$T/share2" 2>&1); rc=$?; set -e
  assert_eq "$rc" 3 "init on a file system without hard links"
  assert_contains "$out" "$T/share2: this file system refuses hard links"
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "expected one line, got: $out"
  [ ! -e "$T/share2" ] || fail "init left $T/share2 behind: $(ls -A "$T/share2")"
}

test_abort_refuses_a_live_push() {
  begin
  local r1; r1=$(make_release 1.0)
  add_host lonely
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  # A host that never answers keeps the push waiting (it is live: fresh status, no watchdog).
  start_watchdog lonely; wait_until 5 host_runs lonely 1.0; stop_watchdog lonely
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --stale-after 30s --lease 2s --timeout 60s -q &
  p=$!
  wait_until 5 test -e "$SHARE/MARKER"
  set +e; out=$("$INSTALL" abort "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "abort of a live push on this host"
  assert_contains "$out" "is still running"
  kill -KILL $p; wait $p 2>/dev/null || true
  out=$("$INSTALL" abort "$SHARE" 2>&1)
  assert_contains "$out" "removed the marker of the push of 2.0"
  assert_contains "$out" "hosts resume 1.0"
  [ ! -e "$SHARE/MARKER" ] || fail "marker still there"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0 "pointer after abort"
}

test_hostile_and_malformed_input_changes_nothing() {
  begin
  local r1; r1=$(make_release 1.0)
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  snap=$(share_snapshot)
  for v in ../x /abs 'a b' '' .hidden "$(printf 'x\ny')" a..b; do
    set +e; out=$("$INSTALL" push "$SHARE" "$r1" --version "$v" --no-wait 2>&1); rc=$?; set -e
    assert_eq "$rc" 2 "exit code for version '$v'"
    assert_contains "$out" "nfsup-install: error: --version: "
  done
  set +e; out=$("$INSTALL" push "$SHARE" "$T/nope" --version 3.0 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "$T/nope: No such file or directory"
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 9.9 2>&1); rc=$?; set -e
  assert_eq "$rc" 2; assert_contains "$out" "--to 9.9: no such release on the share (kept: 1.0)"
  set +e; out=$("$INSTALL" status "$T" 2>&1); rc=$?; set -e
  assert_eq "$rc" 3; assert_contains "$out" "$T: not an nfsup share"
  set +e; out=$("$INSTALL" push "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "missing arguments"
  assert_eq "$(share_snapshot)" "$snap" "share changed by bad input"
  # Malformed watchdog configs: one line naming file:line:column, exit 2.
  add_host cfg1
  c="$T/hosts/cfg1/watchdog.yaml"
  printf 'share: %s\nagent:\n  command: [bin/agent\n' "$SHARE" > "$T/bad1.yaml"
  printf 'share: %s\npol_interval: 2s\nagent: {command: [bin/a]}\n' "$SHARE" > "$T/bad2.yaml"
  printf 'share: %s\npoll_interval: fast\nagent: {command: [bin/a]}\n' "$SHARE" > "$T/bad3.yaml"
  printf 'share: %s\nagent: {command: bin/a}\n' "$SHARE" > "$T/bad4.yaml"
  printf 'share: %s\nhost: ../x\nagent: {command: [bin/a]}\n' "$SHARE" > "$T/bad5.yaml"
  printf 'host: h\nagent: {command: [bin/a]}\n' > "$T/bad6.yaml"
  printf 'share: %s\nstate_dir: /tmp/s\nagent: {command: [../../bin/sh]}\n' "$SHARE" > "$T/bad7.yaml"
  declare -A want=([bad1]="YAML syntax error" [bad2]=":2:1: unknown key 'pol_interval'" [bad3]=":2:16: 'poll_interval': 'fast' is not a duration"
    [bad4]="'agent.command' must be a non-empty list" [bad5]="'host': host name '../x' must start with a letter or digit"
    [bad6]="missing required key 'share'" [bad7]="agent.command[0] must be a path relative to the release directory")
  for b in bad1 bad2 bad3 bad4 bad5 bad6 bad7; do
    for sub in validate check run; do
      set +e; out=$("$WATCHDOG" $sub -c "$T/$b.yaml" 2>&1); rc=$?; set -e
      assert_eq "$rc" 2 "$sub $b exit code"
      assert_contains "$out" "nfsup-watchdog: error: $T/$b.yaml"
      assert_contains "$out" "${want[$b]}"
      [ "$(wc -l <<<"$out")" -eq 1 ] || fail "$b: more than one line: $out"
    done
  done
  out=$("$WATCHDOG" validate -c "$c")
  assert_contains "$out" "ok (host cfg1"
  assert_eq "$(share_snapshot)" "$snap" "share changed by a bad config"
}

test_tampered_release_is_refused_and_named_by_verify() {
  begin
  two_hosts_on_1_0
  local r2; r2=$(make_release 2.0)
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" rollback "$SHARE" --to 1.0 "${MASTER_OPTS[@]}" -q
  # Flip one byte of the agent of release 2.0 (an attacker or a bad disk on the share).
  f="$SHARE/releases/2.0/bin/agent"
  chmod u+w "$f"; printf 'X' | dd of="$f" bs=1 seek=20 conv=notrunc status=none
  set +e; out=$("$INSTALL" verify "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "verify exit code"
  assert_contains "$out" "2.0: $SHARE/releases/2.0/bin/agent: sha256"
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "switching to a tampered release"
  assert_contains "$out" "release 2.0 fails verification"
  assert_eq "$(agent_alive_version a1)" 1.0
  # Tamper with a release the master already switched to: a host that runs from the share
  # refuses to start it; one that runs from its local store (the default) starts the copy it
  # verified before the tampering, and never reads or runs the tampered bytes.
  chmod u+w "$SHARE/releases/1.0/bin/agent"; printf 'Y' | dd of="$SHARE/releases/1.0/bin/agent" bs=1 seek=20 conv=notrunc status=none
  stop_watchdog a1; pkill -KILL -f "releases/1.0/bin/agent.*hosts/a1/" || true
  start_watchdog a1
  if [ "${RUN_FROM:-}" == share ]; then
    wait_until 10 bash -c "grep -q 'fails verification' $T/hosts/a1/watchdog.log" || fail "a1 did not refuse the tampered release"
    wait_until 5 bash -c "grep -qx 'state failed' $SHARE/hosts/a1/status" || fail "a1 status: $(host_field a1 state)"
  else
    wait_until 10 host_runs a1 1.0 || fail "a1 status: $(host_field a1 state)"
    pid=$(awk '$1=="agent" {print $2}' "$T/hosts/a1/state/state")
    assert_eq "$(readlink /proc/$pid/cwd)" "$T/hosts/a1/state/cache/1.0" "a1 runs its verified local copy"
    cmp -s "$T/hosts/a1/state/cache/1.0/bin/agent" "$FIXTURES/fake-agent" || fail "a1's local copy changed"
  fi
}

test_manifest_changed_after_prepare_is_verified_again() {
  begin
  two_hosts_on_1_0
  local r2; r2=$(make_release 2.0)
  # The master dies after the pointer swap with the marker up: the hosts stay stopped and
  # prepare 2.0 (verified against its manifest) while they wait.
  master_killed_at switch-after-pointer push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}"
  for h in a1 a2; do
    wait_until 10 grep -q "$h: 2.0 verified while stopped" "$T/hosts/$h/watchdog.log" || fail "$h did not prepare 2.0"
  done
  # Now the manifest changes under them (it no longer matches the agent's bytes). When the
  # lease lapses they switch on the pointer: the prepared check must not stand in for the
  # manifest they now read.
  m="$SHARE/releases/2.0/.nfsup/manifest"
  chmod u+w "$SHARE/releases/2.0/.nfsup" "$m"
  sed -i -E 's/^(file bin\/agent [0-7]+ [0-9]+ )[0-9a-f]{64}$/\10000000000000000000000000000000000000000000000000000000000000000/' "$m"
  grep -q "^file bin/agent .* 0000000000000000000000000000000000000000000000000000000000000000$" "$m" \
    || fail "test setup: manifest line not rewritten: $(grep agent "$m")"
  for h in a1 a2; do
    wait_until 15 grep -q "$h: switch 1.0 -> 2.0 failed: release 2.0 fails verification" "$T/hosts/$h/watchdog.log" \
      || fail "$h: $(grep -E 'switch|verif' "$T/hosts/$h/watchdog.log" | tail -3)"
    grep -q "$h: switching 1.0 -> 2.0 (generation 2)$" "$T/hosts/$h/watchdog.log" || fail "$h used the stale preparation"
    wait_until 5 alive_is $h 1.0 || fail "$h is not back on 1.0: '$(agent_alive_version $h)'"
  done
}

test_symlinked_host_dir_is_not_written_through() {
  begin
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --no-wait -q
  mkdir -p "$T/outside"
  ln -s "$T/outside" "$SHARE/hosts/evil"
  add_host evil
  set +e; out=$("$WATCHDOG" check -c "$T/hosts/evil/watchdog.yaml" 2>&1); set -e
  assert_eq "$(ls -A "$T/outside")" "" "files written through a planted symlink"
  grep -q "not a directory (a symlink?)" <<<"$out" || grep -q "not a directory (a symlink?)" "$T/hosts/evil/watchdog.log" 2>/dev/null \
    || fail "no clear error: $out"
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/evil/state/state" 2>/dev/null); [ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null || true
}

test_symlinked_release_dir_is_refused() {
  begin
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --no-wait -q
  cp -a "$SHARE/releases/1.0" "$T/elsewhere"
  ln -s "$T/elsewhere" "$SHARE/releases/6.6"
  set +e; out=$("$INSTALL" rollback "$SHARE" --to 6.6 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "a symlinked release is not a kept release"
  add_host s1
  set +e; out=$("$RECONFIG" -c "$T/hosts/s1/watchdog.yaml" --from 1.0 --to 6.6 --dry-run 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "reading a manifest through a symlinked release dir"
  assert_contains "$out" "releases/6.6: not a directory (a symlink?)"
}

# A MARKER that is not a regular file (a FIFO: opening it for reading would block until a
# writer comes) wedges no watchdog: agents keep running, heartbeats go on, the master refuses
# to push past it with a clear line, and once it is gone the next push reaches every host.
test_fifo_marker_wedges_nothing() {
  begin
  two_hosts_on_1_0
  mkfifo "$SHARE/MARKER"
  # (an idle daemon's heartbeat is its status file's mtime: touched, not rewritten)
  hbt() { stat -c %.9Y "$SHARE/hosts/$1/status"; }
  hb1=$(hbt a1); hb2=$(hbt a2)
  sleep 2.5
  [ "$(hbt a1)" != "$hb1" ] || fail "a1 stopped heartbeating (status mtime $hb1)"
  [ "$(hbt a2)" != "$hb2" ] || fail "a2 stopped heartbeating (status mtime $hb2)"
  for h in a1 a2; do alive_is $h 1.0 || fail "$h agent stopped"; done
  set +e; out=$(timeout 20 "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "push past a FIFO marker"
  assert_contains "$out" "MARKER: not a regular file"
  rm -f "$SHARE/MARKER"
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "2 host(s) ok, 0 failed"
}

# A vote answers one switch: generation, marker nonce and target. A veto cast for one push
# does not block its retry once its cause is gone; an accept cast for one release does not
# count for another; a vote file written before the marker does not count at all.
test_a_vote_counts_only_for_the_switch_it_answers() {
  begin
  mkdir -p "$T/checks"
  printf '#!/bin/sh\nif [ -e "%s/veto.$NFSUP_HOST.$NFSUP_TO_VERSION" ]; then echo "$NFSUP_HOST refuses $NFSUP_TO_VERSION"; exit 1; fi\nexit 0\n' "$T" \
    > "$T/checks/20-gate"
  chmod +x "$T/checks/20-gate"
  local r1; r1=$(make_release 1.0)
  add_host v1; add_host v2
  for h in v1 v2; do printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/$h/watchdog.yaml"; done
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" --vote-timeout 10s -q
  wait_until 10 all_run 1.0 || fail "hosts did not reach 1.0"
  vpush() { "$INSTALL" push "$SHARE" "$(make_release "$1")" --version "$1" "${MASTER_OPTS[@]}" --vote-timeout 5s 2>&1; }
  # 1. v2 vetoes 2.0; once its cause is gone, the retry goes through.
  touch "$T/veto.v2.2.0"
  set +e; out=$(vpush 2.0); rc=$?; set -e
  assert_eq "$rc" 5 "exit code of a vetoed push"
  assert_contains "$out" "v2: 20-gate: v2 refuses 2.0"
  rm "$T/veto.v2.2.0"
  set +e; out=$(vpush 2.0); rc=$?; set -e
  assert_eq "$rc" 0 "the retry after the veto's cause is gone: $out"
  wait_until 10 all_run 2.0 || fail "hosts did not reach 2.0"
  # 2. v1 accepts 3.0 and v2 vetoes it; v1's accept of 3.0 does not count for 4.0, which it refuses.
  touch "$T/veto.v2.3.0"
  set +e; out=$(vpush 3.0); rc=$?; set -e
  assert_eq "$rc" 5 "exit code of a vetoed push of 3.0"
  rm "$T/veto.v2.3.0"; touch "$T/veto.v1.4.0"
  set +e; out=$(vpush 4.0); rc=$?; set -e
  assert_eq "$rc" 5 "v1 refuses 4.0: $out"
  assert_contains "$out" "v1: 20-gate: v1 refuses 4.0"
  grep -q "v2 refuses" <<<"$out" && fail "a veto of 3.0 counted for 4.0: $out"
  # 3. Accepts written on the share before the marker (copies of a real vote, made to accept)
  #    do not override the host's own veto.
  for h in v1 v2; do
    sed -e 's/^vote veto$/vote accept/' -e 's/^reason .*/reason -/' "$SHARE/hosts/$h/vote" > "$T/forged"
    cp "$T/forged" "$SHARE/hosts/$h/vote"
  done
  set +e; out=$(vpush 4.0); rc=$?; set -e
  assert_eq "$rc" 5 "a forged accept overrode v1's veto: $out"
  assert_contains "$out" "v1: 20-gate: v1 refuses 4.0"
  for h in v1 v2; do alive_is $h 2.0 || fail "$h moved off 2.0: $(agent_alive_version $h)"; done
}

# Nothing is written outside the share through a symlink planted under it: not the agent's
# spooled files (inbox/<host>), not the master's timeline (rollouts/), not a staged object
# (objects/<xx>). Each refusal is one line naming the path.
test_symlinks_planted_on_the_share_are_never_followed() {
  begin
  add_host s1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "s1 not on 1.0"
  mkdir -p "$T/out-inbox" "$T/out-rollouts" "$T/out-objects" "$SHARE/inbox"
  ln -s "$T/out-inbox" "$SHARE/inbox/s1"
  mkdir -p "$T/hosts/s1/state/spool"; echo "order 7" > "$T/hosts/s1/state/spool/order-7"
  wait_until 10 grep -q "delivering .*order-7" "$T/hosts/s1/watchdog.log" || fail "no error for the symlinked inbox"
  assert_contains "$(grep 'delivering .*order-7' "$T/hosts/s1/watchdog.log" | head -1)" "$SHARE/inbox/s1: not a directory (a symlink?)"
  assert_eq "$(ls -A "$T/out-inbox")" "" "spooled file written through inbox/s1"
  [ -e "$T/hosts/s1/state/spool/order-7" ] || fail "the spooled file was dropped"
  rm -rf "$SHARE/rollouts"; ln -s "$T/out-rollouts" "$SHARE/rollouts"
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" 2>&1) || fail "push 2.0: $out"
  assert_contains "$out" "$SHARE/rollouts: not a directory (a symlink?)"
  assert_eq "$(ls -A "$T/out-rollouts")" "" "timeline written through rollouts/"
  # A release with one new file; its object directory is a planted symlink.
  r3=$(make_release 3.0 "new content"); sha=$(sha256sum "$r3/VERSION" | cut -c1-64)
  rm -rf "$SHARE/objects/${sha:0:2}"; ln -s "$T/out-objects" "$SHARE/objects/${sha:0:2}"
  set +e; out=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 6 "push through a symlinked object directory: $out"
  assert_contains "$out" "$SHARE/objects/${sha:0:2}: not a directory (a symlink?)"
  assert_eq "$(ls -A "$T/out-objects")" "" "object written through objects/${sha:0:2}"
  [ ! -e "$SHARE/releases/3.0" ] || fail "3.0 published"
  ls -A "$SHARE/releases" | grep -q staging && fail "staging left behind: $(ls -A "$SHARE/releases")"
  alive_is s1 2.0 || fail "s1 not on 2.0"
}

test_vanished_mount_is_unreachable_and_the_host_recovers() {
  # Promise 14: a share whose mount vanished (an empty mountpoint) is not a reachable share.
  # The agent dies meanwhile; the host neither burns its restart limit on the empty directory
  # nor stays down once the mount is back.
  begin
  local r1; r1=$(make_release 1.0)
  add_host m1
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "m1 did not reach 1.0"
  mv "$SHARE" "$T/share.away"; mkdir "$SHARE"          # the mount is gone: an empty mountpoint
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/m1/state/state")
  kill -KILL "$pid"
  sleep 2
  grep -q "m1: share unreachable: $SHARE: not an nfsup share" "$T/hosts/m1/watchdog.log" \
    || fail "the empty mountpoint was not called unreachable: $(tail -5 "$T/hosts/m1/watchdog.log")"
  grep -q "not restarting" "$T/hosts/m1/watchdog.log" && fail "m1 gave up while the mount was away"
  rmdir "$SHARE"; mv "$T/share.away" "$SHARE"          # the mount is back
  wait_until 10 alive_is m1 1.0 || fail "m1 did not restart its agent once the share was back"
  wait_until 5 host_runs m1 1.0 || fail "m1 reports '$(host_field m1 state)'"
}

test_share_gone_restarts_a_crashed_agent_from_the_local_store() {
  # Issue 17: with run_from: local (the default) the agent runs from its verified local run
  # tree from its very first start, so a crash while the share is gone (here: an empty
  # mountpoint, right after the upgrade, long before the next heartbeat) restarts it from
  # local disk. (Run from the share, the host had no local copy yet: no restart.)
  [ "${RUN_FROM:-}" != share ] || return 0
  begin
  local r1; r1=$(make_release 1.0)
  add_host g1
  sed -i "s/^heartbeat_interval: .*/heartbeat_interval: 30s/" "$T/hosts/g1/watchdog.yaml"
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "g1 did not reach 1.0"
  mv "$SHARE" "$T/share.away"; mkdir "$SHARE"
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/g1/state/state")
  case "$(readlink /proc/$pid/cwd)" in
    "$T/hosts/g1/state/cache/1.0") ;;
    *) fail "the agent runs from '$(readlink /proc/$pid/cwd)', not its local run tree" ;;
  esac
  kill -KILL "$pid"
  wait_until 10 grep -q "started 1.0 from its local copy" "$T/hosts/g1/watchdog.log" \
    || fail "g1 did not restart its agent from the local store: $(tail -3 "$T/hosts/g1/watchdog.log")"
  wait_until 5 alive_is g1 1.0 || fail "no live agent on g1"
  rmdir "$SHARE"; mv "$T/share.away" "$SHARE"
}

test_host_that_cannot_fetch_vetoes_or_fails_before_stopping() {
  # Issue 17: the release is fetched into the local store before the agent stops. A host whose
  # store cannot take it (here: state_dir/store is a file) vetoes with the reason in a vote, and
  # its agent keeps running 1.0; without votes it reports `failed` and is back on 1.0.
  [ "${RUN_FROM:-}" != share ] || return 0
  begin
  local r1 r2 r3; r1=$(make_release 1.0); r2=$(make_release 2.0); r3=$(make_release 3.0)
  add_host f1
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "f1 did not reach 1.0"
  rm -rf "$T/hosts/f1/state/store"; touch "$T/hosts/f1/state/store"
  # Without votes: the host stops as the marker asks (it cannot refuse), its switch fails with
  # the reason, and it goes back to 1.0.
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  [ "$rc" -ne 0 ] || fail "push went through: $out"
  assert_contains "$out" "f1: failed: "
  grep -q "cannot fetch 2.0: mkdir(.*): Not a directory" "$T/hosts/f1/watchdog.log" || fail "no 'cannot fetch' in f1's log"
  wait_until 5 alive_is f1 1.0 || fail "f1 not back on 1.0"
  # With votes (a checks_dir that accepts): a veto naming the fetch.
  mkdir "$T/checks"; printf '#!/bin/sh\nexit 0\n' > "$T/checks/10-ok"; chmod +x "$T/checks/10-ok"
  printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/f1/watchdog.yaml"
  stop_watchdog f1; start_watchdog f1
  # (its failed switch to 2.0 stays reported until a later rollout reaches it)
  wait_until 10 alive_is f1 1.0 || fail "f1 not back on 1.0"
  wait_until 5 test "$(host_field f1 checks)" == yes || fail "f1 does not say it votes"
  set +e; out=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" --vote-timeout 10s 2>&1); rc=$?; set -e
  assert_eq "$rc" 5 "exit code of a vetoed push"
  assert_contains "$out" "f1: cannot fetch 3.0: "
  alive_is f1 1.0 || fail "f1 left 1.0"
}

test_non_nfsup_directory_is_reported_once() {
  # Promise 14: a directory that is not an nfsup share is unreachable, said once, not
  # "unreachable"/"reachable again" at every other poll.
  begin
  local r1; r1=$(make_release 1.0)
  add_host n1
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "n1 did not reach 1.0"
  mv "$SHARE" "$T/share.away"; mkdir -p "$SHARE/something-else"
  sleep 2
  local log="$T/hosts/n1/watchdog.log"
  # (the first poll after the mv may see no directory at all: that is unreachable too)
  assert_eq "$(grep -c 'reachable again' "$log")" 0 "'reachable again' lines while it is not a share"
  assert_eq "$(grep -c "share unreachable: $SHARE: not an nfsup share" "$log")" 1 "'not an nfsup share' lines"
  alive_is n1 1.0 || fail "the agent was disturbed"
}

test_cron_agent_that_will_not_start_goes_back_to_the_previous_release() {
  # Promise 9, cron mode: the tick that starts the new release sees it exit during its start
  # grace and starts the previous one again.
  begin
  local r1 r3; r1=$(make_release 1.0); r3=$(make_release 3.0); touch "$r3/CRASH"
  add_host k1 check
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 --no-wait -q
  ( set +e; while [ ! -e "$T/stop-ticks" ]; do
      "$WATCHDOG" check -q -c "$T/hosts/k1/watchdog.yaml" >>"$T/hosts/k1/watchdog.log" 2>&1; sleep 0.2
    done ) &
  local loop=$!
  wait_until 10 host_runs k1 1.0 || fail "k1 not on 1.0"
  set +e; out=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" 2>&1); set -e
  sleep 1; touch "$T/stop-ticks"; wait $loop || true
  assert_contains "$out" "k1: failed: agent 3.0 exited during its start grace"
  alive_is k1 1.0 || fail "k1 does not run 1.0 again: '$(agent_alive_version k1)'"
  assert_eq "$(host_field k1 state)" failed "k1 state"
  assert_eq "$(host_field k1 running)" 1.0 "k1 reports"
  assert_contains "$out" "rolled back to 1.0"
}

test_bad_flags_are_refused_before_anything_is_written() {
  # A bad flag is refused before the release is staged or audited: the share stays as it was.
  begin
  two_hosts_on_1_0
  local r2; r2=$(make_release 1.5)
  snap=$(share_snapshot)
  for args in "--strategy rolling --batch 0" "--strategy rolling --batch abc" "--batch 0%" "--hosts nosuchhost" \
              "--hosts a1,nosuchhost" "--class nosuchclass"; do
    set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 1.5 $args "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
    assert_eq "$rc" 2 "push $args: exit code"
    [ "$(wc -l <<<"$out")" -eq 1 ] || fail "push $args: expected one line, got: $out"
    assert_eq "$(share_snapshot)" "$snap" "push $args wrote to the share"
  done
  for args in "--hosts nosuchhost" "--to 1.0 --hosts nosuchhost"; do
    set +e; out=$("$INSTALL" rollback "$SHARE" $args "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
    assert_eq "$rc" 2 "rollback $args: exit code"
    assert_eq "$(share_snapshot)" "$snap" "rollback $args wrote to the share"
  done
  assert_contains "$out" "--hosts nosuchhost: no such host on the share (hosts: a1, a2)"
}

test_default_rollback_is_the_pointers_previous() {
  # A release that was staged but never ran (its master died after staging) is not the
  # default rollback target: the pointer's previous is, and the dry run says the same.
  begin
  two_hosts_on_1_0
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" -q
  master_killed_at push-after-stage push "$SHARE" "$(make_release 1.5)" --version 1.5 "${MASTER_OPTS[@]}"
  out=$("$INSTALL" rollback "$SHARE" --dry-run "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "would roll back 2 host(s) all at once: 2.0 -> 1.0"
  out=$("$INSTALL" rollback "$SHARE" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "rollback 2.0 -> 1.0 (generation 3): 2 host(s) ok"
  # Now the pointer's previous (2.0) is newer: a default rollback would go forward. Both the
  # dry run and the rollback refuse alike and ask for --to.
  set +e; dry=$("$INSTALL" rollback "$SHARE" --dry-run "${MASTER_OPTS[@]}" 2>&1); drc=$?; set -e
  set +e; out=$("$INSTALL" rollback "$SHARE" "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$drc" 2 "rollback --dry-run after a rollback"
  assert_eq "$rc" 2 "rollback after a rollback"
  assert_eq "$out" "$dry" "rollback and rollback --dry-run disagree"
  assert_contains "$out" "name the release with --to"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0 "pointer after the refused rollback"
}

# Ctrl-C of a push, rollback or finalize backs out like a failure (promise 11).
# bg_master SIG ARGS...: nfsup-install ARGS in the background with default signal handling
# (a background job of a script starts with SIGINT ignored); its pid in $p, output in $T/master.out.
bg_master() {
  env --default-signal=INT,TERM,HUP "$INSTALL" "$@" >"$T/master.out" 2>&1 &
  p=$!
}

# A host with a fresh status and no watchdog: a switch waits for it to stop (until --stale-after).
lonely_live_host() {
  add_host lonely
  start_watchdog lonely; wait_until 10 host_runs lonely "$1" || fail "lonely not on $1"; stop_watchdog lonely
}

# interrupt_when_stopped SIG: once a1 and a2 report stopped, sends SIG to the master $p; checks
# that it exits 130 at once, says it backed out, removed the marker, and that the hosts resume
# the old release within a poll or two (the lease is 60s: not by its lapse).
interrupt_when_stopped() {
  local sig=$1 old=$2 rc
  wait_until 20 bash -c "grep -qx 'state stopped' $SHARE/hosts/a1/status && grep -qx 'state stopped' $SHARE/hosts/a2/status" \
    || fail "hosts did not stop: $(cat "$T/master.out")"
  kill -"$sig" "$p"
  local t0=$SECONDS
  set +e; wait "$p"; rc=$?; set -e
  assert_eq "$rc" 130 "exit code after SIG$sig"
  [ $((SECONDS - t0)) -le 3 ] || fail "the master took $((SECONDS - t0))s to back out"
  out=$(cat "$T/master.out")
  assert_contains "$out" "interrupted (SIG$sig)"
  assert_contains "$out" "backed out"
  [ ! -e "$SHARE/MARKER" ] || fail "SIG$sig left the marker: $(cat "$SHARE/MARKER")"
  for h in a1 a2; do wait_until 3 alive_is $h "$old" || fail "$h did not resume $old within a poll or two"; done
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" "$old" "pointer after SIG$sig"
}

test_interrupted_push_backs_out() {
  begin
  two_hosts_on_1_0; lonely_live_host 1.0
  local r2; r2=$(make_release 2.0)
  bg_master push "$SHARE" "$r2" --version 2.0 --lease 60s --stale-after 30s --timeout 60s
  interrupt_when_stopped INT 1.0
  rm -rf "$SHARE/hosts/lonely"   # decommissioned: the next push need not wait for it
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1) || fail "next push refused: $out"
  assert_contains "$out" "2 host(s) ok, 0 failed"
}

test_interrupted_rollback_backs_out() {
  begin
  two_hosts_on_1_0
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" -q
  lonely_live_host 2.0
  bg_master rollback "$SHARE" --to 1.0 --lease 60s --stale-after 30s --timeout 60s
  interrupt_when_stopped TERM 2.0
  rm -rf "$SHARE/hosts/lonely"
  out=$("$INSTALL" rollback "$SHARE" --to 1.0 "${MASTER_OPTS[@]}" 2>&1) || fail "next rollback refused: $out"
  assert_contains "$out" "rollback 2.0 -> 1.0"
}

test_interrupted_finalize_backs_out() {
  begin
  two_hosts_on_1_0
  printf '#!/bin/sh\necho $$ > "%s/hook.pid"\n[ -e "%s/slow" ] && sleep 30\necho "migrated $NFSUP_TO_VERSION" >> "%s/migrations.log"\n' \
    "$T" "$T" "$T" > "$T/mig.sh"; chmod +x "$T/mig.sh"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --strategy rolling --hold-acting --migrate "$T/mig.sh" "${MASTER_OPTS[@]}" -q
  touch "$T/slow"
  bg_master finalize "$SHARE"
  wait_until 10 test -s "$T/hook.pid" || fail "the hook did not start: $(cat "$T/master.out")"
  kill -HUP "$p"
  local t0=$SECONDS rc
  set +e; wait "$p"; rc=$?; set -e
  assert_eq "$rc" 130 "exit code after SIGHUP"
  [ $((SECONDS - t0)) -le 3 ] || fail "finalize took $((SECONDS - t0))s to back out"
  out=$(cat "$T/master.out")
  assert_contains "$out" "interrupted (SIGHUP)"
  assert_contains "$out" "backed out"
  [ ! -e "$SHARE/MARKER" ] || fail "SIGHUP left the marker"
  ! kill -0 "$(cat "$T/hook.pid")" 2>/dev/null || fail "the migration hook still runs"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting after the interrupted finalize"
  [ ! -e "$T/migrations.log" ] || fail "the migration was recorded as done"
  rm -f "$T/slow"
  out=$("$INSTALL" finalize "$SHARE" 2>&1) || fail "next finalize refused: $out"
  assert_contains "$out" "acting version 1.0 -> 2.0"
}

test_status_says_done_only_when_every_live_host_runs_the_target() {
  # Issue 19: `status` says `rollout: done` only when every targeted live host runs the
  # target (a host that gave up on its agent after the push does not), and a failed host keeps
  # its reason after its agent restarted.
  begin
  two_hosts_on_1_0
  assert_contains "$("$INSTALL" status "$SHARE")" "rollout:  done to 1.0"
  local i pid
  for i in 1 2 3 4; do  # restart_limit 3 within 60s: a2 gives up on its agent
    wait_until 10 bash -c "p=\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/a2/state/state); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && kill -0 \$p" || break
    pid=$(awk '$1=="agent" {print $2}' "$T/hosts/a2/state/state"); kill -KILL "$pid"  || true
    sleep 0.2
  done
  wait_until 15 bash -c "[ \"\$(awk '\$1==\"state\" {print \$2}' $SHARE/hosts/a2/status)\" = failed ]" || fail "a2 did not give up: $(cat "$SHARE/hosts/a2/status")"
  local st; st=$("$INSTALL" status "$SHARE") || true
  ! grep -qx "rollout:  done to 1.0" <<<"$st" || fail "status says done while a2 runs no agent: $st"
  assert_contains "$st" "rollout:  done to 1.0, but 1 of 2 live hosts do not run it: a2 (failed)"
  # A failed switch stays reported after the agent restarts on the release it went back to.
  kill -HUP "${WD_PID[a2]}"  # forgets the crashes (a2 starts its agent again)
  wait_until 10 alive_is a2 1.0 || fail "a2 did not start its agent after SIGHUP"
  local r3; r3=$(make_release 3.0); touch "$r3/CRASH"
  set +e; "$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" -q >/dev/null 2>&1; set -e
  wait_until 10 alive_is a1 1.0 || fail "a1 not back on 1.0"
  assert_eq "$(host_field a1 state)" failed "a1 state after the failed switch"
  local why; why=$(sed -n 's/^reason //p' "$SHARE/hosts/a1/status")
  assert_contains "$why" "exited%20during%20its%20start%20grace"
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/a1/state/state"); kill -KILL "$pid"
  wait_until 10 bash -c "p=\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/a1/state/state); [ \"\$p\" != $pid ] && [ \"\$p\" != 0 ] && kill -0 \$p" || fail "a1 did not restart its agent"
  sleep 1
  assert_eq "$(host_field a1 state)" failed "a1 state after its agent restarted"
  assert_eq "$(sed -n 's/^reason //p' "$SHARE/hosts/a1/status")" "$why" "a1 reason after its agent restarted"
  # The next rollout that reaches a1 ends that report.
  "$INSTALL" push "$SHARE" "$(make_release 4.0)" --version 4.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 host_runs a1 4.0 || fail "a1 after a good push: $(host_field a1 state) $(host_field a1 running)"
}

run_tests
