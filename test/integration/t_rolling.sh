#!/usr/bin/env bash
# Rolling upgrades: batches, redundancy groups never fully down, the acting version, the
# migration hook, hold/finalize, health-gate rollback, drain, spooled writes.
source "$(dirname "$0")/lib.sh"

six_hosts_three_groups() {  # r1..r6 in groups g1 g2 g3, running 1.0, with acting signal and drain
  local i
  for i in 1 2 3 4 5 6; do
    add_host r$i
    sed -i "s/^host: r$i$/host: r$i\ngroup: g$(( (i + 1) / 2 ))/" "$T/hosts/r$i/watchdog.yaml"
    cat >> "$T/hosts/r$i/watchdog.yaml" <<EOC
  acting_signal: HUP
  drain: {signal: USR1, timeout: 3s}
EOC
  done
  start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 15 all_run 1.0 || fail "fleet not on 1.0"
}

sample_fleet() {  # one line per sample: acting, then each host's state:running (one awk per sample)
  local files=() h
  for h in "${HOSTS[@]}"; do files+=("$SHARE/hosts/$h/status"); done
  while :; do
    awk -v order="${HOSTS[*]}" '
      FILENAME ~ /current$/ && $1 == "acting" { acting = $2 }
      FILENAME ~ /status$/ { n = split(FILENAME, p, "/"); h = p[n - 1]
                             if ($1 == "state") st[h] = $2; if ($1 == "running") rn[h] = $2 }
      END { line = "acting=" acting; n = split(order, hs, " ")
            for (i = 1; i <= n; i++) line = line " " hs[i] "=" st[hs[i]] ":" rn[hs[i]]
            print line }' "$SHARE/current" "${files[@]}" 2>/dev/null
    sleep 0.02
  done
}

test_rolling_keeps_groups_up_and_advances_acting_once() {
  begin; six_hosts_three_groups
  printf '#!/bin/sh\necho "migrated $NFSUP_FROM_VERSION -> $NFSUP_TO_VERSION" >> "%s/migrations.log"\n' "$T" > "$T/mig.sh"
  chmod +x "$T/mig.sh"
  sample_fleet > "$T/samples" & sampler=$!
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --strategy rolling --batch 3 --migrate "$T/mig.sh" "${MASTER_OPTS[@]}" 2>&1) || { kill $sampler; fail "rolling push failed: $out"; }
  sleep 0.3; kill $sampler; wait $sampler 2>/dev/null || true
  assert_contains "$out" "6 host(s) ok, 0 failed"
  # No group ever had both members down (not running) in any sample.
  bad=$(awk '{ for (g = 1; g <= 3; g++) { a = $(2*g); b = $(2*g+1);
               if (a !~ /=running:/ && b !~ /=running:/) { print NR": "$0; exit } } }' "$T/samples")
  [ -z "$bad" ] || fail "a redundancy group was fully down: $bad"
  [ "$(wc -l < "$T/samples")" -ge 15 ] || fail "too few samples: $(wc -l < "$T/samples")"
  # The acting version moved to 2.0 only once every host ran 2.0.
  early=$(grep 'acting=2.0' "$T/samples" | grep -v -E '^acting=2.0( r[0-9]=running:2.0){6}$' | grep ':1.0' | head -1)
  [ -z "$early" ] || fail "acting advanced while a host still ran 1.0: $early"
  grep -q 'acting=1.0.*=running:2.0' "$T/samples" || fail "never saw a mixed fleet with acting 1.0"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 2.0 "final acting version"
  assert_eq "$(cat "$T/migrations.log")" "migrated 1.0 -> 2.0" "migration hook ran exactly once"
  # Each batch held at most one host per group: never two 'stopped' in one group at once.
  for h in r1 r2 r3 r4 r5 r6; do
    wait_until 5 grep -qx 2.0 "$T/hosts/$h/state/acting_version" || fail "$h acting file: $(cat "$T/hosts/$h/state/acting_version")"
    wait_until 5 grep -q "agent 2.0 on $h acting now 2.0" "$T/hosts/$h/state/agent.log" || fail "$h agent was not told (HUP)"
    grep -q "agent 1.0 on $h drained" "$T/hosts/$h/state/agent.log" || fail "$h was not drained before stop"
  done
  st=$("$INSTALL" status "$SHARE")
  assert_contains "$st" "acting:   2.0"
  assert_contains "$st" "rollout:  done to 2.0"
}

test_hold_acting_then_finalize() {
  begin; six_hosts_three_groups
  printf '#!/bin/sh\necho "migrated $NFSUP_TO_VERSION" >> "%s/migrations.log"\n' "$T" > "$T/mig.sh"; chmod +x "$T/mig.sh"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --strategy rolling --batch 50% --hold-acting --migrate "$T/mig.sh" "${MASTER_OPTS[@]}" -q
  all_run 2.0 || fail "not all on 2.0"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting held"
  [ ! -e "$T/migrations.log" ] || fail "migration ran while held"
  assert_contains "$("$INSTALL" status "$SHARE")" "held below 2.0"
  out=$("$INSTALL" finalize "$SHARE" 2>&1)
  assert_contains "$out" "acting version 1.0 -> 2.0"
  assert_eq "$(cat "$T/migrations.log")" "migrated 2.0"
  wait_until 10 bash -c "grep -q 'acting now 2.0' $T/hosts/r6/state/agent.log" || fail "r6 not told about finalize"
  assert_contains "$("$INSTALL" finalize "$SHARE" 2>&1)" "already"
}

test_health_failure_rolls_back_the_rollout() {
  begin; six_hosts_three_groups
  for i in 1 2 3 4 5 6; do
    cat >> "$T/hosts/r$i/watchdog.yaml" <<EOC
  health: {command: [bin/health], timeout: 3s}
EOC
    stop_watchdog r$i; start_watchdog r$i
  done
  r2=$(make_release 2.0)
  # r3's first check fails at once; its next one hangs until the deadline cuts it off: the
  # report must still give the first one's output.
  printf '#!/bin/sh\n[ "$NFSUP_HOST" != r3 ] && exit 0\n[ -e %s/r3.tried ] && exec sleep 30\ntouch %s/r3.tried; echo "r3: port closed"; exit 1\n' "$T" "$T" > "$r2/bin/health"; chmod +x "$r2/bin/health"
  printf '#!/bin/sh\necho "level: two" > "$NFSUP_CONFIG"\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  mkdir -p "$(make_release 1.0)/bin"
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --reconfig "$T/m.sh" --strategy rolling --batch 2 --max-failures 0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code"
  assert_contains "$out" "r3: failed: health check of 2.0 failed"
  assert_contains "$out" "(exit code 1: r3: port closed; the next try was cut off by the deadline)"
  assert_contains "$out" "rolled back to 1.0"
  for h in r1 r2 r4 r5 r6; do wait_until 10 host_runs $h 1.0 || fail "$h did not return to 1.0"; done
  assert_eq "$(host_field r3 state)" failed "r3 keeps reporting its failure"
  for h in r1 r2 r3 r4 r5 r6; do
    assert_eq "$(agent_alive_version $h)" 1.0 "$h agent"
    assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"
  done
  assert_contains "$("$INSTALL" status "$SHARE")" "rollout:  failed to 2.0"
}

test_incompatible_rolling_push_refused() {
  begin; six_hosts_three_groups
  snap=$(share_snapshot)
  set +e; out=$("$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 --strategy rolling --min-compatible 2.0 "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2
  assert_contains "$out" "would run it beside releases it cannot run beside (--min-compatible 2.0; r1 runs 1.0"
  assert_contains "$out" "--strategy all-at-once"
  assert_eq "$(share_snapshot)" "$snap" "share changed"
  # All-at-once is the way to ship it; afterwards 3.0 is the lowest supported version.
  "$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 --min-compatible 2.0 "${MASTER_OPTS[@]}" -q
  all_run 3.0 || fail "not on 3.0"
}

test_rolling_push_below_the_acting_version_refused() {
  # A rolling push of an older release would run it beside the acting version's data, and
  # (with --hold-acting) leave the acting version above every host: refused before anything is
  # written; rollback (or an all-at-once push) is the way down. (Found by nfsup-sim --mode rolling.)
  begin
  add_host c1; add_host c2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 2.0 || fail "not on 2.0"
  local old snap rc out; old=$(make_release 1.5)
  snap=$(share_snapshot)
  set +e; out=$("$INSTALL" push "$SHARE" "$old" --version 1.5 --strategy rolling --hold-acting "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "exit code ($out)"
  assert_contains "$out" "below the acting version 2.0"
  assert_eq "$(share_snapshot)" "$snap" "share changed"
}

test_rolling_push_honours_votes() {
  begin; six_hosts_three_groups
  mkdir -p "$T/checks"
  printf '#!/bin/sh\necho "r4 is rebuilding its index"\nexit 1\n' > "$T/checks/20-index"; chmod +x "$T/checks/20-index"
  printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/r4/watchdog.yaml"
  stop_watchdog r4; start_watchdog r4
  wait_until 10 host_runs r4 1.0 || fail "r4 not back on 1.0"
  declare -A before=(); for h in r1 r2 r3 r4 r5 r6; do before[$h]=$(agent_alive_version $h):$(awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state"); done
  r2=$(make_release 2.0)
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --strategy rolling --batch 2 --vote-timeout 10s "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 5 "exit code of a vetoed rolling push"
  assert_contains "$out" "vetoed before any host stopped"
  assert_contains "$out" "r4: 20-index: r4 is rebuilding its index"
  for h in r1 r2 r3 r4 r5 r6; do
    assert_eq "$(agent_alive_version $h):$(awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state")" "${before[$h]}" "$h agent untouched"
  done
  [ ! -e "$SHARE/MARKER" ] || fail "marker left after a veto"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0
  "$INSTALL" history "$SHARE" | grep -q "rolling 1.0 -> 2.0 vetoed" || fail "veto not audited: $("$INSTALL" history "$SHARE" | tail -3)"
  # --skip-vetoed: the rollout covers the other five; r4 stays on 1.0, so the acting version does too.
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --strategy rolling --batch 2 --vote-timeout 10s --skip-vetoed "${MASTER_OPTS[@]}" 2>&1) \
    || fail "rolling push --skip-vetoed failed: $out"
  assert_contains "$out" "r4: skipped (vetoed): 20-index: r4 is rebuilding its index"
  for h in r1 r2 r3 r5 r6; do host_runs $h 2.0 || fail "$h not on 2.0"; done
  # r4 keeps 1.0 through the pointer (a host line), not only until its next heartbeat reads it.
  assert_contains "$(cat "$SHARE/current")" "host r4 1.0"
  sleep 1.5
  assert_eq "$(agent_alive_version r4):$(awk '$1=="agent" {print $2}' "$T/hosts/r4/state/state")" "${before[r4]}" "r4 untouched by --skip-vetoed"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting version while r4 runs 1.0"
}

test_dry_run_prints_the_plan_and_changes_nothing() {
  begin; six_hosts_three_groups
  mkdir -p "$T/checks"; printf '#!/bin/sh\nexit 0\n' > "$T/checks/10-ok"; chmod +x "$T/checks/10-ok"
  printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/r4/watchdog.yaml"
  stop_watchdog r4; start_watchdog r4
  wait_until 10 bash -c "grep -qx 'checks yes' $SHARE/hosts/r4/status" || fail "r4 does not report its checks"
  r2=$(make_release 2.0)
  snap=$(share_snapshot)
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --strategy rolling --batch 2 --dry-run "${MASTER_OPTS[@]}" 2>&1) \
    || fail "dry run failed: $out"
  assert_contains "$out" "would stage 2.0: "
  assert_contains "$out" "would ask r4 to vote first"
  # Groups g1 = r1 r2, g2 = r3 r4, g3 = r5 r6; at most one of a group per batch.
  assert_contains "$out" "rolling batch 1 (2 at most, 1 per group): r1 r3"
  assert_contains "$out" "rolling batch 2 (2 at most, 1 per group): r2 r4"
  assert_contains "$out" "rolling batch 3 (2 at most, 1 per group): r5"
  assert_contains "$out" "rolling batch 4 (2 at most, 1 per group): r6"
  assert_contains "$out" "acting version 1.0 until every host runs 2.0"
  # The steps the engine's plan holds (the same builder as the real run).
  assert_contains "$out" "plan step 3 stop [batch 1]: r1 r3 (2)"
  assert_contains "$out" "plan step 4 switch [batch 1]: pointer gives 2.0 to r1 r3"
  assert_contains "$out" "run the migration hook of 2.0"
  assert_contains "$out" "plan on failure: before the switch, backed out; after it (more than 0 failed host(s)), every upgraded host goes back"
  assert_eq "$(share_snapshot)" "$snap" "a dry run changed the share"
  # A refusal the real push would make: the same exit code, and still nothing written.
  set +e; out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --strategy rolling --min-compatible 2.0 --dry-run "${MASTER_OPTS[@]}" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "dry-run exit code of a push that would be refused"
  assert_contains "$out" "refused now: r1 runs 1.0, below --min-compatible 2.0"
  assert_eq "$(share_snapshot)" "$snap" "a refused dry run changed the share"
  # Once 2.0 is on the share, a re-push copies nothing and a rollback goes all at once.
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 "${MASTER_OPTS[@]}" -q
  out=$("$INSTALL" push "$SHARE" "$r2" --version 2.0 --dry-run "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "release 2.0 is already on the share with the same files: nothing to copy"
  assert_contains "$out" "already running 2.0: r1 r2 r3 r4 r5 r6"
  out=$("$INSTALL" rollback "$SHARE" --dry-run "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "would roll back 6 host(s) all at once: 2.0 -> 1.0: r1 r2 r3 r4 r5 r6"
  assert_contains "$out" "plan step 2 vote: r1 r2 r3 r4 r5 r6 (6)"
  assert_contains "$out" "plan step 4 switch: pointer names 1.0"
  case "$out" in *"migration hook"*) fail "a rollback plans a migration: $out" ;; esac
}

# A rolling push whose master is killed after a recorded step; resume goes on from the batch
# in flight: every host ends on 2.0 with acting version 2.0, marker gone, status done.
rolling_crash_then_resume() {
  local point=$1 rc out st h
  begin
  add_host rr1; add_host rr2; add_host rr3; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  master_killed_at "$point" push "$SHARE" "$(make_release 2.0)" --version 2.0 --strategy rolling --batch 1 "${MASTER_OPTS[@]}"
  assert_eq "$(awk '$1=="step" {print $3 ($4 == "0" ? "" : "-" $4)}' "$SHARE/progress")" "${point%-done}" "recorded step"
  out=$("$INSTALL" resume "$SHARE" --dry-run 2>&1) || fail "resume --dry-run: $out"
  assert_contains "$out" "it would go on"
  set +e; out=$("$INSTALL" resume "$SHARE" --timeout 30s --stale-after 4s 2>&1); rc=$?; set -e
  assert_eq "$rc" 0 "$point: resume exit code ($out)"
  [ ! -e "$SHARE/MARKER" ] || fail "$point: marker left after resume"
  wait_until 10 all_run 2.0 || fail "$point: hosts not on 2.0 after resume"
  for h in rr1 rr2 rr3; do wait_until 10 alive_is $h 2.0 || fail "$point: $h agent not on 2.0"; done
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 2.0 "$point: current"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 2.0 "$point: acting version"
  ! grep -q '^host ' "$SHARE/current" || fail "$point: host lines left: $(cat "$SHARE/current")"
  set +e; st=$("$INSTALL" status "$SHARE" 2>&1); set -e
  assert_contains "$st" "rollout:  done to 2.0"
  "$INSTALL" verify "$SHARE" -q || fail "$point: verify"
}
test_rolling_resume_after_a_batch() { rolling_crash_then_resume start-1-done; }
test_rolling_resume_mid_batch() { rolling_crash_then_resume stop-2-done; }
test_rolling_resume_after_the_last_switch() { rolling_crash_then_resume switch-done; }

test_spooled_writes_wait_for_the_fence() {
  begin
  add_host sp1; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  set +e; NFSUP_CRASH_AT=switch-after-stopped "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --lease 60s --stale-after 4s -q; set -e
  # An upgrade is fenced: what the agent writes now must wait.
  mkdir -p "$T/hosts/sp1/state/spool"
  echo "order 42 (old format)" > "$T/hosts/sp1/state/spool/order-42"
  sleep 2
  [ ! -e "$SHARE/inbox/sp1/order-42" ] || fail "delivered while the upgrade fenced the share"
  "$INSTALL" abort "$SHARE" --force -q
  wait_until 10 test -e "$SHARE/inbox/sp1/order-42" || fail "spooled file never delivered"
  assert_file_eq "$SHARE/inbox/sp1/order-42" "order 42 (old format)"
  [ ! -e "$T/hosts/sp1/state/spool/order-42" ] || fail "spooled file not removed after delivery"
}

test_long_migration_keeps_every_host_stopped() {
  # The hook runs 2.5 x the lease (2s) while every host is stopped: the master renews the
  # lease meanwhile, so no host resumes the old release under it.
  begin
  add_host lm1; add_host lm2; start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 10 all_run 1.0 || fail "not on 1.0"
  cat > "$T/mig.sh" <<EOF
#!/bin/sh
sleep 5
for h in lm1 lm2; do
  echo "\$h \$(awk '\$1=="state" {print \$2}' "\$NFSUP_SHARE/hosts/\$h/status")"
  pid=\$(awk '\$1=="agent" {print \$2}' "$T/hosts/\$h/state/state")
  [ -n "\$pid" ] && [ "\$pid" != 0 ] && kill -0 "\$pid" 2>/dev/null && echo "\$h agent alive"
done > "$T/during.log"
exit 0
EOF
  chmod +x "$T/mig.sh"
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --migrate "$T/mig.sh" "${MASTER_OPTS[@]}" 2>&1) \
    || fail "push failed: $out"
  assert_eq "$(cat "$T/during.log")" "$(printf 'lm1 stopped\nlm2 stopped')" "hosts while the hook ran"
  for h in lm1 lm2; do
    ! grep -q "lease lapsed" "$T/hosts/$h/watchdog.log" || fail "$h saw the lease lapse during the migration"
    host_runs $h 2.0 || fail "$h not on 2.0"
  done
}

slow_heartbeat_hosts() {  # ah1 ah2 with a 10s heartbeat (the hosts read the pointer that rarely when idle), on 1.0
  local h
  for h in ah1 ah2; do
    add_host $h
    sed -i "s/^heartbeat_interval: .*/heartbeat_interval: 10s/" "$T/hosts/$h/watchdog.yaml"
    echo "  acting_signal: HUP" >> "$T/hosts/$h/watchdog.yaml"
  done
  start_all
  "$INSTALL" push "$SHARE" "$(make_release 1.0)" --version 1.0 --stale-after 30s --lease 2s --timeout 60s -q
  wait_until 15 all_run 1.0 || fail "fleet not on 1.0"
}

acting_taken_everywhere() {  # acting_taken_everywhere VERSION: every host's status and agent have it now
  local h
  for h in ah1 ah2; do
    assert_eq "$(host_field $h acting)" "$1" "$h status acting version"
    assert_file_eq "$T/hosts/$h/state/acting_version" "$1"
    grep -q "agent .* on $h acting now $1" "$T/hosts/$h/state/agent.log" || fail "$h agent was not told $1 yet"
  done
}

test_rollout_is_done_when_every_host_has_the_acting_version() {
  # As a cluster version is fenced before it moves on: push and finalize return only once
  # every live host reports the new acting version and has handed it to its agent.
  begin; slow_heartbeat_hosts
  out=$("$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --strategy rolling --stale-after 30s --lease 2s --timeout 60s 2>&1) \
    || fail "rolling push failed: $out"
  acting_taken_everywhere 2.0
  "$INSTALL" push "$SHARE" "$(make_release 3.0)" --version 3.0 --strategy rolling --hold-acting --stale-after 30s --lease 2s --timeout 60s -q
  acting_taken_everywhere 2.0
  out=$("$INSTALL" finalize "$SHARE" 2>&1) || fail "finalize failed: $out"
  assert_contains "$out" "acting version 2.0 -> 3.0"
  acting_taken_everywhere 3.0
  [ ! -e "$SHARE/MARKER" ] || fail "marker left behind"
}

test_hosts_take_a_new_acting_version_when_the_marker_goes() {
  # --no-wait does not fence the acting version: a host the switch did not stop still takes it
  # at the poll that finds the marker gone, not at its next heartbeat (10s here). (ah1 drains
  # for 0.3s, so that ah2, polling every 100ms, surely sees the marker.)
  begin; slow_heartbeat_hosts
  echo "  drain: {signal: USR1, timeout: 3s}" >> "$T/hosts/ah1/watchdog.yaml"
  stop_watchdog ah1; start_watchdog ah1
  wait_until 10 host_runs ah1 1.0 || fail "ah1 not back on 1.0"
  "$INSTALL" push "$SHARE" "$(make_release 2.0)" --version 2.0 --stale-after 30s --lease 2s --timeout 60s -q
  assert_eq "$(host_field ah2 acting)" 2.0 "ah2 acting version after the push"
  "$INSTALL" rollback "$SHARE" --to 1.0 --hosts ah1 --no-wait --stale-after 30s --lease 2s --timeout 60s -q
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "pointer acting version"
  wait_until 1 bash -c "grep -qx 'acting 1.0' $SHARE/hosts/ah2/status" || fail "ah2 did not take acting 1.0 within 1s: $(host_field ah2 acting)"
  wait_until 2 grep -q "agent 2.0 on ah2 acting now 1.0" "$T/hosts/ah2/state/agent.log" || fail "ah2 agent was not told 1.0"
}

run_tests
