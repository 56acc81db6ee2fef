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

test_crashing_agent_is_reported_failed() {
  begin
  two_hosts_on_1_0
  local r3; r3=$(make_release 3.0); touch "$r3/CRASH"
  set +e; out=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code for a crashing release"
  assert_contains "$out" "a1: failed: agent 3.0 died (exit code 3) 3 times"
  assert_contains "$out" "a2: failed"
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
  # Tamper with a release the master already switched to: hosts refuse to start it.
  chmod u+w "$SHARE/releases/1.0/bin/agent"; printf 'Y' | dd of="$SHARE/releases/1.0/bin/agent" bs=1 seek=20 conv=notrunc status=none
  stop_watchdog a1; pkill -KILL -f "releases/1.0/bin/agent.*hosts/a1/" || true
  start_watchdog a1
  wait_until 10 bash -c "grep -q 'fails verification' $T/hosts/a1/watchdog.log" || fail "a1 did not refuse the tampered release"
  wait_until 5 bash -c "grep -qx 'state failed' $SHARE/hosts/a1/status" || fail "a1 status: $(host_field a1 state)"
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

run_tests
