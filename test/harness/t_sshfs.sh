#!/usr/bin/env bash
# nfsup on real remote mounts: 4 hosts, each in its own network namespace with its own sshfs
# mount (caches on, like NFS defaults) of one export served by a per-run sshd, plus a fifth
# mount for the master. Faults: a hung client mount, a cut link, a stopped file server, a
# master killed mid-push. Prints the figures the real-mounts issue asks for.
# Needs root and /dev/fuse; elsewhere it says so and skips. With NFSUP_TEST_MOUNTS set to five
# mounted directories of one real NFS export, the same flows run there (fault tests skip).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib.sh"
source "$here/fleet.sh"

if [ -z "${NFSUP_TEST_MOUNTS:-}" ] && { [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; }; then
  echo "skipped: needs root and /dev/fuse for sshfs mounts in network namespaces"
  echo "0 passed, 0 failed"
  exit 0
fi
fleet_deps >/dev/null
FLEET_CACHE_S=${FLEET_CACHE_S:-3}
fleet_up 5 || { echo "fleet_up failed"; echo "0 passed, 1 failed"; exit 1; }
trap 'fleet_down' EXIT
MASTER=5
N_HOSTS=4
FIGFILE=$(mktemp /tmp/nfsup-figures.XXXXXX)
fig() { echo "$1 = $2" >> "$FIGFILE"; }
MASTER_OPTS=(--stale-after 8s --lease 3s --timeout 90s --share-timeout 10s --vote-timeout 20s)
POLL=200ms
SHARE_TIMEOUT=2s

# A fresh share per test inside the one export; hosts see it through their own mounts.
sshfs_env() {
  T=$(mktemp -d /tmp/nfsup-sshfs.XXXXXX)
  local name; name=s$RANDOM$RANDOM
  SHARE="$FLEET_EXPORT/$name"            # the server's view: what is really there
  MSHARE="${FLEET_MNT[$MASTER]}/$name"   # the master's own mount
  "$INSTALL" init "$MSHARE" -q
  mkdir -p "$T/rel"
  local i
  for i in $(seq 1 $N_HOSTS); do add_host "h$i" daemon "${FLEET_MNT[$i]}/$name"; done
}
mpush() { "$INSTALL" push "$MSHARE" "$@" "${MASTER_OPTS[@]}"; }
now_ms() { date +%s%3N; }
all_state() {  # all_state STATE GEN: every host reports STATE for generation >= GEN
  local h
  for h in "${HOSTS[@]}"; do
    [ "$(host_field "$h" state)" == "$1" ] && [ "$(host_field "$h" generation)" -ge "$2" ] || return 1
  done
}

all_noticed() {  # all_noticed GEN: every host's status answers generation >= GEN (stopped or later)
  local h
  for h in "${HOSTS[@]}"; do
    [ "$(host_field "$h" generation)" -ge "$1" ] || return 1
  done
}

test_sshfs_push_rollback_abort_four_hosts() {
  sshfs_env; start_all
  mpush "$(make_release 1.0)" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "hosts did not reach 1.0"
  printf '#!/bin/sh\necho "level: two" > "$NFSUP_CONFIG"\n' > "$T/m.sh"; chmod +x "$T/m.sh"
  # Time from the start of the push to every host reporting stopped (marker noticed).
  local r2; r2=$(make_release 2.0)
  t0=$(now_ms)
  mpush "$r2" --version 2.0 --reconfig "$T/m.sh" -q > "$T/push.out" 2>&1 &
  p=$!
  # (every host stopped for generation 2 and may already be past it: pushes are quick)
  wait_until 30 all_noticed 2 || fail "hosts never all answered the marker"
  fig notice_ms $(( $(now_ms) - t0 ))
  wait $p || fail "push failed: $(cat "$T/push.out")"
  fig push_ms $(( $(now_ms) - t0 ))
  for h in h1 h2 h3 h4; do
    host_runs $h 2.0 || fail "$h not on 2.0"
    assert_eq "$(agent_alive_version $h)" 2.0 "$h agent"
    assert_file_eq "$T/hosts/$h/agent.yaml" "level: two"
  done
  out=$("$INSTALL" rollback "$MSHARE" "${MASTER_OPTS[@]}" 2>&1)
  assert_contains "$out" "rollback 2.0 -> 1.0 (generation 3): 4 host(s) ok, 0 failed"
  for h in h1 h2 h3 h4; do assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"; done
  # A master killed right after writing the marker; abort from the master's mount; re-run.
  set +e; NFSUP_CRASH_AT=switch-after-stopped mpush "$r2" --version 2.0 --reconfig "$T/m.sh" -q 2>"$T/crash.err"; rc=$?; set -e
  [ "$rc" == 137 ] || cat "$T/crash.err" >&2
  assert_eq "$rc" 137
  wait_until 30 all_state stopped 4 || fail "hosts did not stop for the dead master's marker"
  t0=$(now_ms)
  wait_until 30 all_state running 3 || fail "hosts did not resume after the master died"
  fig dead_master_recovery_ms $(( $(now_ms) - t0 ))
  "$INSTALL" abort "$MSHARE" -q
  out=$(mpush "$r2" --version 2.0 --reconfig "$T/m.sh" 2>&1)
  assert_contains "$out" "4 host(s) ok, 0 failed"
  "$INSTALL" verify "$MSHARE" -q || fail "verify failed"
}

test_sshfs_idle_poll_costs_three_share_calls() {
  command -v strace >/dev/null || { echo "    skipped: no strace"; return 0; }
  sshfs_env
  mpush "$(make_release 1.0)" --version 1.0 --no-wait -q
  sed -i 's/^heartbeat_interval: .*/heartbeat_interval: 1h/' "$T/hosts/h1/watchdog.yaml"
  start_watchdog h1
  wait_until 20 host_runs h1 1.0 || fail "h1 not running"
  sleep 1
  timeout -s INT 3 strace -f -qq -p "${WD_PID[h1]}" -o "$T/trace" -e trace=%file,%desc 2>/dev/null || true
  grep -v -E ' (poll|ppoll|futex)\(|resumed>' "$T/trace" | sed -E 's/^[0-9]+ +//' > "$T/calls"
  polls=$(grep -c O_DIRECTORY "$T/calls" || true)
  total=$(grep -c "${FLEET_MNT[1]}\|openat([0-9]*, \"MARKER\"\|close(" "$T/calls" || true)
  [ "$polls" -ge 5 ] || fail "only $polls polls in 3 s"
  assert_eq "$(wc -l < "$T/calls")" "$((polls * 3))" "calls per idle poll on sshfs"
  fig share_calls_per_idle_poll $(( $(wc -l < "$T/calls") / polls ))
}

test_sshfs_hung_mount_never_blocks_the_host() {
  sshfs_env; start_all
  mpush "$(make_release 1.0)" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "not on 1.0"
  agent2=$(awk '$1=="agent" {print $2}' "$T/hosts/h2/state/state")
  fleet_mount_hang 2
  # A cron tick on the hung host returns within its deadline, exit 3, agent untouched.
  cp "$T/hosts/h2/watchdog.yaml" "$T/h2-check.yaml"
  sed -i "s|^state_dir: .*|state_dir: $T/h2-check-state|" "$T/h2-check.yaml"
  t0=$(now_ms)
  set +e; out=$(timeout -s KILL 20 "$WATCHDOG" check -c "$T/h2-check.yaml" 2>&1); rc=$?; set -e
  took=$(( $(now_ms) - t0 )); fig check_on_hung_mount_ms $took
  assert_eq "$rc" 3 "check on a hung mount"
  assert_contains "$out" "did not answer within 2s"
  [ "$took" -lt 6000 ] || fail "check took $took ms"
  kill -0 "$agent2" || fail "h2's agent died while its mount hung"
  # The push goes on without h2 (named), and h2 converges when its mount comes back.
  set +e; out=$(mpush "$(make_release 2.0)" --version 2.0 --assume-accept 2>&1); rc=$?; set -e
  kill -0 "$agent2" || fail "h2's agent was stopped although h2 never saw the marker"
  fleet_mount_resume 2
  assert_contains "$out" "h2"
  for h in h1 h3 h4; do host_runs $h 2.0 || fail "$h not on 2.0"; done
  t0=$(now_ms)
  wait_until 30 host_runs h2 2.0 || fail "h2 did not converge after its mount came back"
  fig hung_host_converge_ms $(( $(now_ms) - t0 ))
  grep -q "share unreachable" "$T/hosts/h2/watchdog.log" || fail "h2 never reported the hung share"
}

test_sshfs_link_down_during_push() {
  sshfs_env; start_all
  mpush "$(make_release 1.0)" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "not on 1.0"
  mpush "$(make_release 2.0)" --version 2.0 --assume-accept -q > "$T/push.out" 2>&1 &
  p=$!
  fleet_link_down 3
  set +e; wait $p; rc=$?; set -e
  for h in h1 h2 h4; do host_runs $h 2.0 || fail "$h not on 2.0: $(cat "$T/push.out")"; done
  [ $rc -eq 0 ] || assert_contains "$(cat "$T/push.out")" "h3"
  fleet_link_up 3
  t0=$(now_ms)
  wait_until 45 host_runs h3 2.0 || fail "h3 did not converge after the link came back"
  fig link_down_converge_ms $(( $(now_ms) - t0 ))
}

test_sshfs_file_server_stopped_mid_push() {
  sshfs_env; start_all
  mpush "$(make_release 1.0)" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "not on 1.0"
  local r2; r2=$(make_release 2.0)
  # h4's watchdog is paused: its status stays fresh, so the master keeps waiting for it and
  # the push is still in progress when the server goes away.
  local w4; w4=$(host_field h4 pid)
  kill -STOP "$w4"
  "$INSTALL" push "$MSHARE" "$r2" --version 2.0 --stale-after 8s --lease 3s --timeout 90s --share-timeout 4s -q > "$T/push.out" 2>&1 &
  p=$!
  # Look every 10 ms for the marker.
  local end=$(( $(date +%s) + 20 ))
  until [ -e "$SHARE/MARKER" ]; do
    (( $(date +%s) < end )) && kill -0 $p 2>/dev/null || fail "no marker seen while the push ran: $(cat "$T/push.out")"
    sleep 0.01
  done
  fleet_server_stop
  kill -CONT "$w4"
  set +e; timeout -s KILL 30 tail --pid=$p -f /dev/null; wait $p; rc=$?; set -e
  assert_eq "$rc" 3 "master on a stopped server: $(cat "$T/push.out")"
  assert_contains "$(cat "$T/push.out")" "did not answer within 4s"
  sleep 2
  declare -A hb=()
  for h in h1 h2 h3 h4; do hb[$h]=$(host_field $h heartbeat); done
  fleet_server_start
  t0=$(now_ms)
  # Nobody renews the marker: hosts resume 1.0 by themselves (fresh heartbeats, agents up);
  # abort + re-run finish the job.
  for h in h1 h2 h3 h4; do
    wait_until 40 bash -c "[ \$(awk '\$1==\"heartbeat\" {print \$2}' $SHARE/hosts/$h/status) -gt ${hb[$h]} ] && grep -qx 'state running' $SHARE/hosts/$h/status" \
      || fail "$h did not resume after the server came back"
    kill -0 "$(awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state")" || fail "$h has no agent"
  done
  fig server_stop_recovery_ms $(( $(now_ms) - t0 ))
  "$INSTALL" abort "$MSHARE" -q
  out=$(mpush "$r2" --version 2.0 2>&1) || fail "re-run failed: $out"
  assert_contains "$out" "4 host(s) ok, 0 failed"
  "$INSTALL" verify "$MSHARE" -q || fail "verify failed"
}

# wd_threads HOST: where each thread of HOST's watchdog daemon is (kernel stack and system
# call), for a test that finds the daemon not doing what it should.
wd_threads() {
  local p=${WD_PID[$1]:-} t
  [ -n "$p" ] || return 0
  for t in /proc/$p/task/*; do
    echo "  thread ${t##*/} ($(cat $t/comm 2>/dev/null)): wchan $(cat $t/wchan 2>/dev/null), syscall $(cut -d' ' -f1 $t/syscall 2>/dev/null)" >&2
    sed 's/^/    /' $t/stack >&2 2>/dev/null || true
  done
  ps -o pid,stat,wchan:32,args --ppid "$p" >&2 || true
}

test_sshfs_local_copy_when_share_unreachable() {
  sshfs_env; start_all
  # An agent that holds no file open on the share (a shell script would: FUSE blocks its exit
  # in close() while the mount hangs, where NFS would not for a file opened read-only).
  r=$(make_release 1.0); printf '#!/bin/sh\necho "agent $NFSUP_VERSION started in $(pwd)"\nexec sleep 100000\n' > "$r/bin/agent"
  mpush "$r" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "not on 1.0"
  wait_until 10 test -d "$T/hosts/h4/state/cache/1.0" || fail "no local copy of 1.0 on h4"
  fleet_mount_hang 4
  old=$(awk '$1=="agent" {print $2}' "$T/hosts/h4/state/state")
  kill -KILL "$old"
  t0=$(now_ms)
  wait_until 45 bash -c "p=\$(awk '\$1==\"agent\" {print \$2}' $T/hosts/h4/state/state); [ \"\$p\" != $old ] && [ \"\$p\" != 0 ] && kill -0 \$p" \
    || { wd_threads h4; fleet_mount_resume 4; fail "h4 did not restart its agent while its share hung; its log: $(tail -6 "$T/hosts/h4/watchdog.log" | tr '\n' '|')"; }
  fig local_copy_restart_ms $(( $(now_ms) - t0 ))
  new=$(awk '$1=="agent" {print $2}' "$T/hosts/h4/state/state")
  assert_eq "$(readlink /proc/$new/cwd)" "$T/hosts/h4/state/cache/1.0" "restarted from the local copy"
  fleet_mount_resume 4
  wait_until 20 bash -c "grep -q local%20copy $SHARE/hosts/h4/status" || fail "status does not say it runs the local copy: $(cat $SHARE/hosts/h4/status)"
}

test_sshfs_hang_while_verifying_is_noticed_after_one_share_timeout() {
  sshfs_env; start_all
  r=$(make_release 1.0); printf '#!/bin/sh\necho "agent $NFSUP_VERSION started in $(pwd)"\nexec sleep 100000\n' > "$r/bin/agent"
  mpush "$r" --version 1.0 -q
  wait_until 20 all_run 1.0 || fail "not on 1.0"
  # 2.0 carries 512 MiB: h4 reads it all to fetch and verify it into its local store when it
  # sees the marker (before it stops; with run_from: share, while it waits stopped), and its
  # mount hangs in the middle of that. The verification is allowed 6 x share_timeout (12s) in
  # all, but one share_timeout (2s) without progress is a hang: h4 must say its share is
  # unreachable well before 12s.
  r2=$(make_release 2.0); cp "$r/bin/agent" "$r2/bin/agent"
  head -c $((512 << 20)) /dev/urandom > "$r2/big.bin"
  "$INSTALL" push "$MSHARE" "$r2" --version 2.0 --hosts h4 --stale-after 30s --lease 3s --timeout 90s --share-timeout 20s -q > "$T/push.out" 2>&1 &
  local p=$!
  local begun="marker seen: push to 2.0"
  [ "${RUN_FROM:-local}" = share ] && begun="stopped agent 1.0"
  wait_until 60 grep -q "$begun" "$T/hosts/h4/watchdog.log" || { kill $p || true; fail "h4 did not begin on 2.0: $(cat "$T/push.out")"; return 1; }
  fleet_mount_hang 4
  local t0; t0=$(now_ms)
  if grep -q "2.0 verified while stopped\|2.0 fetched and verified" "$T/hosts/h4/watchdog.log"; then
    fleet_mount_resume 4; kill $p || true
    fail "h4 had verified 2.0 before its mount hung: the test did not hang it in time"; return 1
  fi
  wait_until 20 grep -q "share unreachable" "$T/hosts/h4/watchdog.log" || true
  local took=$(( $(now_ms) - t0 ))
  fig hang_while_verifying_noticed_ms $took
  fleet_mount_resume 4
  grep -q "share unreachable" "$T/hosts/h4/watchdog.log" || fail "h4 never noticed its share hung: $(tail -4 "$T/hosts/h4/watchdog.log" | tr '\n' '|')"
  [ "$took" -lt 6000 ] || fail "h4 noticed the hang only after $took ms (share_timeout 2s; the verification's cap is 12s)"
  # Once the mount answers again, the push goes through.
  wait $p || fail "push failed after the mount came back: $(cat "$T/push.out")"
  wait_until 20 host_runs h4 2.0 || fail "h4 not on 2.0 after the mount came back"
}

if [ -n "${NFSUP_TEST_MOUNTS:-}" ]; then
  ONLY=${ONLY:-push_rollback_abort|idle_poll}
fi
run_tests; rc=$?
echo "figures (sshfs, cache ${FLEET_CACHE_S}s, poll $POLL):"
sort "$FIGFILE" | sed 's/^/  /'; rm -f "$FIGFILE"
exit $rc
