#!/usr/bin/env bash
# Crash safety: SIGKILL the master at every step of push, rollback and abort, then check the
# share is consistent and that re-running (after `abort`) finishes the job.
source "$(dirname "$0")/lib.sh"

PUSH_POINTS="stage-object-before-rename stage-before-manifest stage-before-publish push-after-stage
  switch-after-marker switch-after-stopped switch-after-pointer switch-after-unmark"

check_consistent() {  # the pointer names a complete release; nothing partial is visible; verify passes
  local cur
  cur=$(awk '$1=="release" {print $2}' "$SHARE/current")
  [ -f "$SHARE/releases/$cur/.nfsup/manifest" ] || fail "$1: current names $cur which is not complete"
  for d in "$SHARE"/releases/*; do
    [ -f "$d/.nfsup/manifest" ] || fail "$1: partial release visible: $d"
  done
  "$INSTALL" verify "$SHARE" -q 2>/dev/null || fail "$1: verify failed after the crash"
}

crash_push_at() {
  local point=$1
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0 two)
  add_host c1; add_host c2
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  set +e; NFSUP_CRASH_AT=$point "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q 2>/dev/null; rc=$?; set -e
  assert_eq "$rc" 137 "$point: master killed"
  check_consistent "$point"
  # Every host keeps or resumes a release (no fleet stays stopped): within lease + a few polls.
  wait_until 10 bash -c "for h in c1 c2; do awk '\$1==\"state\" {print \$2}' $SHARE/hosts/\$h/status | grep -qx running || exit 1; done" \
    || fail "$point: hosts did not resume by themselves"
  "$INSTALL" abort "$SHARE" -q
  [ -z "$(ls -A "$SHARE/releases" | grep '^\.staging')" ] || fail "$point: staging left after abort"
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" 2>&1) || fail "$point: re-run failed: $out"
  wait_until 10 all_run 2.0 || fail "$point: hosts did not reach 2.0 after the re-run"
  check_consistent "$point (after re-run)"
}

for p in $PUSH_POINTS; do
  eval "test_push_crash_${p//-/_}() { crash_push_at $p; }"
done

test_rollback_and_abort_crash_points() {
  begin
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0)
  add_host c1; start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  for point in switch-after-marker switch-after-pointer; do
    set +e; NFSUP_CRASH_AT=$point "$INSTALL" rollback "$SHARE" "${MASTER_OPTS[@]}" -q 2>/dev/null; rc=$?; set -e
    assert_eq "$rc" 137 "rollback $point"
    check_consistent "rollback $point"
    set +e; NFSUP_CRASH_AT=abort-after-pointer "$INSTALL" abort "$SHARE" -q 2>/dev/null; rc=$?; set -e
    assert_eq "$rc" 137 "abort-after-pointer"
    check_consistent "abort-after-pointer"
    "$INSTALL" abort "$SHARE" -q
    [ ! -e "$SHARE/MARKER" ] || fail "marker left after the second abort"
    cur=$(awk '$1=="release" {print $2}' "$SHARE/current")
    wait_until 10 all_run "$cur" || fail "host not running $cur after abort ($point)"
    if [ "$cur" == 2.0 ]; then "$INSTALL" rollback "$SHARE" "${MASTER_OPTS[@]}" -q; fi
    "$INSTALL" rollback "$SHARE" --to 2.0 "${MASTER_OPTS[@]}" -q
  done
}

# resume: the master is killed right after each step it records in SHARE/progress
# (NFSUP_CRASH_AT=<step>-done); `resume` then finishes the rollout from there. Before the
# pointer moved it backs out (hosts stay on 1.0); after, it goes on (every host on 2.0).
# $1 the step, $2 the release every host must end on, $3 extra push flags.
crash_then_resume() {
  local point=$1 want=$2 rc out st
  begin
  printf '#!/bin/sh\necho "migrated $NFSUP_FROM_VERSION -> $NFSUP_TO_VERSION" >> "%s/migrations.log"\n' "$T" > "$T/mig.sh"
  chmod +x "$T/mig.sh"
  local r1 r2; r1=$(make_release 1.0); r2=$(make_release 2.0 two)
  add_host c1; add_host c2
  start_all
  "$INSTALL" push "$SHARE" "$r1" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  master_killed_at "$point" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" $(eval echo "${3:-}")
  [ -f "$SHARE/progress" ] || fail "$point: no progress record"
  assert_eq "$(awk '$1=="step" {print $3}' "$SHARE/progress")" "${point%-done}" "$point: the recorded step"
  [ -e "$SHARE/MARKER" ] || [ "$point" == release-done ] || fail "$point: the dead master's marker is gone"
  out=$("$INSTALL" resume "$SHARE" --dry-run 2>&1) || fail "$point: resume --dry-run: $out"
  [ "$point" == release-done ] || [ -e "$SHARE/MARKER" ] || fail "$point: --dry-run removed the marker"
  set +e; out=$("$INSTALL" resume "$SHARE" --timeout 30s --stale-after 4s 2>&1); rc=$?; set -e
  assert_eq "$rc" 0 "$point: resume exit code ($out)"
  [ ! -e "$SHARE/MARKER" ] || fail "$point: marker left after resume"
  wait_until 10 all_run "$want" || fail "$point: hosts do not run $want after resume"
  for h in c1 c2; do wait_until 10 alive_is $h "$want" || fail "$point: $h agent not on $want"; done
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" "$want" "$point: current"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" "$want" "$point: acting version"
  set +e; st=$("$INSTALL" status "$SHARE" 2>&1); set -e
  [ "$want" == 1.0 ] || assert_contains "$st" "rollout:  done to 2.0"
  check_consistent "$point (after resume)"
  # Nothing left to resume; the next push goes ahead.
  out=$("$INSTALL" resume "$SHARE" 2>&1) || fail "$point: second resume: $out"
  assert_contains "$out" "nothing to resume"
  out=$("$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 "${MASTER_OPTS[@]}" 2>&1) || fail "$point: next push: $out"
}

test_resume_after_acquire_backs_out() { crash_then_resume acquire-done 1.0; }
test_resume_after_stop_backs_out() { crash_then_resume stop-done 1.0; }
test_resume_after_migrate_backs_out() {
  crash_then_resume migrate-done 1.0 '--migrate $T/mig.sh'
  assert_eq "$(cat "$T/migrations.log")" "migrated 1.0 -> 2.0" "the hook ran once, before the crash"
}
test_resume_after_switch_goes_on() { crash_then_resume switch-done 2.0; }
test_resume_after_start_goes_on() { crash_then_resume start-done 2.0; }
test_resume_after_fence_goes_on() { crash_then_resume fence-done 2.0; }
test_resume_after_release_has_nothing_to_do() { crash_then_resume release-done 2.0; }

# abort after a dead master ends its rollout: SHARE/progress is finished (resume has nothing to
# do) and status shows no rollout in progress, whether the pointer had moved or not.
# $1 the crash point, $2 the release the pointer names after abort, $3 extra push flags.
abort_ends_the_rollout() {
  local point=$1 want=$2 out st
  begin
  add_host c1; add_host c2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  master_killed_at "$point" push "$SHARE" "$(make_release 2.0 two)" --version 2.0 "${MASTER_OPTS[@]}" ${3:-}
  "$INSTALL" abort "$SHARE" -q
  [ ! -e "$SHARE/MARKER" ] || fail "$point: marker left after abort"
  assert_eq "$(awk '$1=="step" {print $3}' "$SHARE/progress")" release "$point: the progress record after abort"
  out=$("$INSTALL" resume "$SHARE" --timeout 30s 2>&1) || fail "$point: resume after abort: $out"
  assert_contains "$out" "nothing to resume"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" "$want" "$point: current after abort and resume"
  st=$("$INSTALL" status "$SHARE" 2>&1) || true
  if grep -qE '^(marker|rollout): +(switching|switched|batch)|^marker:' <<<"$st"; then
    fail "$point: status shows a rollout in progress after abort: $(grep -E '^(marker|rollout):' <<<"$st")"
  fi
  assert_contains "$st" "rollout:  aborted to 2.0"
}

test_abort_after_stop_ends_the_rollout() { abort_ends_the_rollout stop-done 1.0; }
test_abort_after_switch_ends_the_rollout() { abort_ends_the_rollout switch-done 2.0; }
test_abort_of_a_rolling_push_ends_the_rollout() {
  abort_ends_the_rollout start-1-done 1.0 "--strategy rolling --batch 1"
}

test_resume_applies_the_failure_policy_the_dead_master_did_not() {
  # 2.0 starts on no host; the master dies right after the switch. resume undoes the push, as
  # the master would have: current and the acting version are 1.0 again, every host runs 1.0.
  begin
  add_host c1; add_host c2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  printf '#!/bin/sh\necho "$NFSUP_HOST config has no port" >&2; exit 7\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  master_killed_at switch-done push "$SHARE" "$(make_release 2.0)" --version 2.0 --reconfig "$T/m.sh" "${MASTER_OPTS[@]}"
  set +e; out=$("$INSTALL" resume "$SHARE" --timeout 30s 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "resume exit code when the push is undone ($out)"
  assert_contains "$out" "resume: undone; current 1.0"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0 "current after resume"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting after resume"
  [ ! -e "$SHARE/MARKER" ] || fail "marker left after resume"
  for h in c1 c2; do wait_until 10 alive_is $h 1.0 || fail "$h agent not on 1.0"; done
  set +e; st=$("$INSTALL" status "$SHARE" 2>&1); set -e
  assert_contains "$st" "rollout:  failed to 2.0"
  "$INSTALL" history "$SHARE" | grep -q "undone" || fail "undo not audited"
}

# finalize runs through the same engine: killed after each of its steps, `resume` finishes it
# (the acting version moves to 2.0) or, before its pointer write, backs it out (acting stays
# 1.0); either way the migration hook runs once, and a later finalize completes the job.
# $1 the step, $2 the acting version after resume.
finalize_crash_then_resume() {
  local point=$1 want=$2 out rc
  begin
  printf '#!/bin/sh\necho "migrated $NFSUP_TO_VERSION" >> "%s/migrations.log"\n' "$T" > "$T/mig.sh"
  chmod +x "$T/mig.sh"
  add_host c1; add_host c2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  "$INSTALL" push "$SHARE" "$(make_release 2.0 two)" --version 2.0 --strategy rolling --batch 1 --hold-acting \
    --migrate "$T/mig.sh" "${MASTER_OPTS[@]}" -q
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting held"
  master_killed_at "$point" finalize "$SHARE"
  assert_eq "$(awk '$1=="strategy" {print $2}' "$SHARE/progress")" finalize "$point: the progress record's strategy"
  assert_eq "$(awk '$1=="step" {print $3}' "$SHARE/progress")" "${point%-done}" "$point: the recorded step"
  out=$("$INSTALL" resume "$SHARE" --dry-run 2>&1) || fail "$point: resume --dry-run: $out"
  set +e; out=$("$INSTALL" resume "$SHARE" --timeout 30s --stale-after 4s 2>&1); rc=$?; set -e
  assert_eq "$rc" 0 "$point: resume exit code ($out)"
  [ ! -e "$SHARE/MARKER" ] || fail "$point: marker left after resume"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 2.0 "$point: current"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" "$want" "$point: acting version after resume"
  for h in c1 c2; do
    wait_until 10 bash -c "[ \"\$(awk '\$1==\"acting\" {print \$2}' $SHARE/hosts/$h/status)\" == $want ]" \
      || fail "$point: $h does not report acting $want"
  done
  out=$("$INSTALL" resume "$SHARE" 2>&1) || fail "$point: second resume: $out"
  assert_contains "$out" "nothing to resume"
  out=$("$INSTALL" finalize "$SHARE" 2>&1) || fail "$point: finalize after resume: $out"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 2.0 "$point: acting after the last finalize"
  assert_eq "$(cat "$T/migrations.log")" "migrated 2.0" "$point: the hook ran once"
}

test_finalize_resume_after_acquire_backs_out() { finalize_crash_then_resume acquire-done 1.0; }
test_finalize_resume_after_migrate_backs_out() { finalize_crash_then_resume migrate-done 1.0; }
test_finalize_resume_after_switch_goes_on() { finalize_crash_then_resume switch-done 2.0; }
test_finalize_resume_after_fence_goes_on() { finalize_crash_then_resume fence-done 2.0; }
test_finalize_resume_after_release_has_nothing_to_do() { finalize_crash_then_resume release-done 2.0; }

test_resume_refuses_while_the_master_lives() {
  # A marker whose master (a pid on this host) lives: resume refuses (exit 4) and changes
  # nothing; --force takes it over and says why.
  begin
  add_host c1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  local rc out before
  out=$("$INSTALL" resume "$SHARE" 2>&1) || fail "resume with no rollout: $out"
  assert_contains "$out" "nothing to resume"
  master_killed_at switch-done push "$SHARE" "$(make_release 3.0)" --version 3.0 "${MASTER_OPTS[@]}"
  # Forge a live master on this host: the marker names this test's shell.
  sed -i "s/^master_pid .*/master_pid $$/" "$SHARE/MARKER"
  before=$(share_snapshot)
  set +e; out=$("$INSTALL" resume "$SHARE" 2>&1); rc=$?; set -e
  assert_eq "$rc" 4 "resume while the master lives ($out)"
  assert_contains "$out" "is still running"
  assert_eq "$(share_snapshot)" "$before" "share changed by a refused resume"
  out=$("$INSTALL" resume "$SHARE" --force --timeout 30s 2>&1) || fail "resume --force: $out"
  assert_contains "$out" "taking over the marker"
  wait_until 10 all_run 3.0 || fail "not on 3.0 after resume"
}

plan_lines() { grep -o 'plan step .*' | grep -v '^plan step 1 '; }  # (step 1 is done before the plan)

test_dry_run_prints_the_steps_the_engine_runs() {
  # The engine notes each plan step as it runs it (-v): the same lines, in the same order, as
  # --dry-run printed, all-at-once and rolling.
  begin
  add_host d1; add_host d2; add_host d3; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  local r2 r3 dry ran; r2=$(make_release 2.0); r3=$(make_release 3.0)
  dry=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --dry-run "${MASTER_OPTS[@]}" 2>&1 | plan_lines)
  [ -n "$dry" ] || fail "no plan steps in --dry-run"
  ran=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 -v "${MASTER_OPTS[@]}" 2>&1 | plan_lines)
  assert_eq "$ran" "$dry" "all-at-once: the steps run vs --dry-run"
  dry=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 --strategy rolling --batch 2 --dry-run "${MASTER_OPTS[@]}" 2>&1 | plan_lines)
  ran=$("$INSTALL" push "$SHARE" "$r3" --version 3.0 --strategy rolling --batch 2 -v "${MASTER_OPTS[@]}" 2>&1 | plan_lines)
  assert_eq "$ran" "$dry" "rolling: the steps run vs --dry-run"
}

test_enospc_while_staging_publishes_nothing() {
  [ "$(id -u)" -eq 0 ] || { echo "    skipped: needs root for a tmpfs"; return 0; }
  begin
  mkdir -p "$T/small"
  mount -t tmpfs -o size=2m nfsup-enospc "$T/small"
  trap 'umount -l "$T/small" 2>/dev/null; cleanup_env' EXIT
  SHARE="$T/small/share"; mkdir -p "$SHARE"; "$INSTALL" init --local "$SHARE" -q
  local r; r=$(make_release 1.0)
  head -c 3M /dev/urandom > "$r/big.bin"
  set +e; out=$("$INSTALL" push "$SHARE" "$r" --version 1.0 --no-wait 2>&1); rc=$?; set -e
  assert_eq "$rc" 3 "exit code on a full share"
  assert_contains "$out" "No space left on device"
  assert_eq "$(ls -A "$SHARE/releases")" "" "nothing published, staging removed"
  [ ! -e "$SHARE/current" ] || fail "pointer written"
  assert_eq "$(find "$SHARE/objects" -name '.tmp*' | wc -l)" 0 "temp objects left"
}

test_stalled_master_rereads_the_pointer_under_the_marker() {
  # Master A reads the pointer, then stalls before it takes the marker; master B switches twice
  # meanwhile. A must switch from B's pointer: the generation never goes backwards.
  begin
  add_host c1; add_host c2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  local r3; r3=$(make_release 3.0)
  NFSUP_STOP_AT=switch-before-marker "$INSTALL" push "$SHARE" "$r3" --version 3.0 "${MASTER_OPTS[@]}" >"$T/a.out" 2>&1 &
  local a=$! rc
  wait_until 20 bash -c "[ \"\$(awk '{print \$3}' /proc/$a/stat)\" = T ]" || fail "master A did not stop: $(cat "$T/a.out")"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" -q
  "$INSTALL" push "$SHARE" "$(make_release 2.1)" --version 2.1 "${MASTER_OPTS[@]}" -q
  assert_eq "$(awk '$1=="generation" {print $2}' "$SHARE/current")" 3 "generation after master B"
  kill -CONT "$a"
  set +e; wait "$a"; rc=$?; set -e
  assert_eq "$rc" 0 "master A: $(cat "$T/a.out")"
  assert_eq "$(awk '$1=="generation" {print $2}' "$SHARE/current")" 4 "generation after master A"
  assert_eq "$(awk '$1=="previous" {print $2}' "$SHARE/current")" 2.1 "previous after master A"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 3.0 "release after master A"
  for h in c1 c2; do wait_until 10 alive_is $h 3.0 || fail "$h does not run 3.0: '$(agent_alive_version $h)'"; done
}

run_tests
