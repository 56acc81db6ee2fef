#!/usr/bin/env bash
# nfsup on real Linux kernel NFS clients: three user-mode Linux guests (Linux 6.1) mount one
# nfs-ganesha export with the kernel's default caches (acdirmin 30 s, acregmin 3 s, hard), run
# the master and the watchdogs, and the server, a guest or a guest's link fails under them.
# The scenarios run once over NFSv4.1 and once over NFSv3 (NFS_RUNS="4.1 3"), on the same
# guests. Prints per-scenario figures and a per-operation RPC table.
# Needs root, /dev/net/tun and Debian's user-mode-linux + nfs-ganesha (installed when missing);
# elsewhere it says why and exits 77 (meson: skipped).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib.sh"
source "$here/lib.sh"

miss=$(nfs_missing)
if [ -n "$miss" ] && [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ]; then
  nfs_deps >&2 || true
  miss=$(nfs_missing)
fi
if [ -n "$miss" ]; then
  echo "skipped: the real-NFS suite needs: $miss"
  echo "0 passed, 0 failed"
  exit 77
fi

# The guests see this machine's / read-only, but mount fresh tmpfs on /tmp, /run and /var/tmp:
# binaries built under those would be missing in them (every init would fail).
case "$(readlink -f "$NFSUP_BUILD")/" in
  /tmp/* | /run/* | /var/tmp/*)
    echo "t_nfs: $NFSUP_BUILD: the guests cannot see a build under /tmp, /run or /var/tmp (their own tmpfs); build elsewhere" >&2
    echo "0 passed, 1 failed"
    exit 1 ;;
esac

: "${NFS_RUNS:=4.1 3}"
# Other tests run beside this suite in CI (the package build among them): the guests' timings
# are what it measures, so it takes the CPU first where it may (root: a negative nice).
renice -n -5 $$ >/dev/null 2>&1 || true
nfs_gc
# (the traps first: a run stopped while it boots -- meson's timeout sends SIGTERM -- tears
# down what it made so far, not the next run's gc)
trap 'nfs_down' EXIT
trap 'exit 143' TERM INT
nfs_up 3 || { nfs_down; echo "nfs_up failed"; echo "0 passed, 1 failed"; exit 1; }
nfs_gc   # a live run is not abandoned: this one must survive its own gc
[ -e "$NFS_DIR/state" ] || { echo "nfs_gc removed the live run $NFS_DIR"; echo "0 passed, 1 failed"; exit 1; }
FIGFILE=$NFS_DIR/figures
RPCFILE=$NFS_DIR/rpc-table
fig() { echo "$VERS $1 = $2" >>"$FIGFILE"; }
MASTER_G=g1
SHARE_TIMEOUT=3s
MASTER_OPTS=(--stale-after 10s --lease 3s --timeout 90s --share-timeout 10s --vote-timeout 20s)
declare -A HOST_G=()   # nfsup host name -> guest it runs in

# ------------------------------------------------------------ helpers ----

gx() { nfs_exec "$@"; }   # gx GUEST CODE [SECONDS]

# A fresh share per test; MNT is the guests' mount of the export for this run's version.
nfs_env() {
  local name; name=s$RANDOM$RANDOM
  T=$NFS_DIR/t/$name
  mkdir -p "$T/rel"
  SHARE=$NFS_EXPORT/$name      # the server's own view
  GSHARE=$MNT/$name            # what every guest sees through its NFS mount
  gx $MASTER_G "'$INSTALL' init '$GSHARE' -q" >/dev/null || fail "init on the NFS share failed"
}

# gadd_host GUEST HOST MODE [poll] [heartbeat] [share-in-guest]
gadd_host() {
  local g=$1 h=$2 mode=$3 poll=${4:-500ms} hb=${5:-1s} gs=${6:-$GSHARE}
  HOSTS+=("$h"); HOST_G[$h]=$g
  mkdir -p "$T/hosts/$h/state"
  echo "level: one" >"$T/hosts/$h/agent.yaml"
  cat >"$T/hosts/$h/watchdog.yaml" <<EOC
share: $gs
host: $h
poll_interval: $poll
heartbeat_interval: $hb
share_timeout: $SHARE_TIMEOUT
${CHECKS_DIR:+checks_dir: $CHECKS_DIR
}state_dir: $T/hosts/$h/state
agent:
  command: [bin/agent, "{config}"]
  config: $T/hosts/$h/agent.yaml
  stop_timeout: ${STOP_TIMEOUT:-2s}
  ${STOP_SIGNAL:+stop_signal: $STOP_SIGNAL
  }start_grace: 300ms
  restart_limit: 3
  restart_window: 60s
  reconfig_timeout: 5s
EOC
  echo "$mode" >"$T/hosts/$h/mode"
}

# Daemons run setsid in their guest; a cron host gets a tick loop (every second).
gstart() {
  local h=$1 g=${HOST_G[$1]} d=$T/hosts/$1
  if [ "$(cat "$d/mode")" = daemon ]; then
    gx "$g" "setsid '$WATCHDOG' run -c '$d/watchdog.yaml' >>'$d/watchdog.log' 2>&1 </dev/null & echo \$! >'$d/wd.pid'"
  else
    gx "$g" "setsid bash -c 'while :; do timeout -s KILL 30 \"$WATCHDOG\" check -q -c \"$d/watchdog.yaml\" >>\"$d/watchdog.log\" 2>&1; sleep 1; done' </dev/null >/dev/null 2>&1 & echo \$! >'$d/wd.pid'"
  fi
}
gstart_all() { local h ps=(); for h in "${HOSTS[@]}"; do gstart "$h" & ps+=($!); done; wait "${ps[@]}"; }

# the guest pid of HOST's agent, and the release it runs (from its environment, in its guest)
agent_pid() { awk '$1=="agent" {print $2}' "$T/hosts/$1/state/state" 2>/dev/null; }
gagent_version() {
  local p; p=$(agent_pid "$1")
  [ -n "$p" ] && [ "$p" != 0 ] || return 1
  gx "${HOST_G[$1]}" "kill -0 $p && tr '\\0' '\\n' </proc/$p/environ | sed -n 's/^NFSUP_VERSION=//p'" 20
}
# assert_agents VERSION WHAT [HOST...]: each host's live agent runs VERSION (default: every
# host); the guests are asked at once, as one command each costs ~0.2-1 s on a loaded machine.
assert_agents() {
  local v=$1 what=$2 h; shift 2
  local -a hs=("$@"); ((${#hs[@]})) || hs=("${HOSTS[@]}")
  local -a ps=()
  for h in "${hs[@]}"; do gagent_version "$h" >"$T/agentv.$h" 2>/dev/null & ps+=($!); done
  wait "${ps[@]}" || true   # (a failed look is an empty answer, which the check below names)
  for h in "${hs[@]}"; do assert_eq "$(cat "$T/agentv.$h")" "$v" "$h agent $what"; done
}
galive() { local p; p=$(agent_pid "$1"); [ -n "$p" ] && gx "${HOST_G[$1]}" "kill -0 $p" 20; }

mpush() { gx $MASTER_G "'$INSTALL' push '$GSHARE' $* ${MASTER_OPTS[*]}" 200; }
hpush() { "$INSTALL" push "$SHARE" "$@" "${MASTER_OPTS[@]}"; }   # the master on the server's directory
all_noticed() { local h; for h in "${HOSTS[@]}"; do [ "$(host_field "$h" generation)" -ge "$1" ] || return 1; done; }
all_state() {  # all_state STATE GEN [RELEASE]: every host reports STATE for generation >= GEN
  local h
  for h in "${HOSTS[@]}"; do
    [ "$(host_field "$h" state)" == "$1" ] && [ "$(host_field "$h" generation)" -ge "$2" ] || return 1
    [ -z "${3:-}" ] || [ "$(host_field "$h" running)" == "$3" ] || return 1
  done
}

# Stops every watchdog and agent the test started, in their guests.
cleanup_env() {
  set +e
  local h d g
  declare -A wd=() ag=()
  for h in "${HOSTS[@]}"; do
    d=$T/hosts/$h; g=${HOST_G[$h]}
    wd[$g]+=" $d/wd.pid"; ag[$g]+=" $d/state/state"
  done
  for g in "${!wd[@]}"; do
    gx "$g" "w=\$(cat ${wd[$g]} 2>/dev/null); for p in \$w; do kill -TERM -- -\$p; done 2>/dev/null
             for i in 1 2 3 4 5 6; do kill -0 \$w 2>/dev/null || break; sleep 0.5; done
             for p in \$w \$(awk '\$1==\"agent\" && \$2!=0 {print \$2}' ${ag[$g]} 2>/dev/null); do kill -KILL -- -\$p; done 2>/dev/null; true" 30 >/dev/null &
  done
  wait
  HOSTS=(); HOST_G=()
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}

# ----------------------------------------------------------- scenarios ----

# Master in g1 with a cron host there; daemons in g2 and g3. Default caches: every host must
# notice the marker within one poll interval plus scheduling, not after acdirmin (30 s), and
# none may start the old release again after the unmark.
test_nfs_flow_push_rollback_abort_default_caches() {
  nfs_env
  gadd_host g1 c1 check 1s 2s; gadd_host g2 h2 daemon 1s 2s; gadd_host g3 h3 daemon 1s 2s
  gstart_all
  make_release 1.0 >/dev/null; make_release 2.0 >/dev/null
  local t0 p rc
  t0=$(nfs_now_ms)
  mpush "'$T/rel/1.0' --version 1.0 -q" || fail "push 1.0 failed"
  fig push_1.0_ms $(( $(nfs_now_ms) - t0 ))
  wait_until 30 all_run 1.0 || fail "hosts did not reach 1.0"
  # 2.0: watch the server's directory for the marker and each host's notice of it
  t0=$(nfs_now_ms)
  mpush "'$T/rel/2.0' --version 2.0 -q" >"$T/push.out" 2>&1 &
  p=$!
  local tm="" h worst=0 n limit
  declare -A seen=()
  while :; do
    n=$(nfs_now_ms)
    [ -z "$tm" ] && [ -e "$SHARE/MARKER" ] && tm=$n
    if [ -n "$tm" ]; then
      for h in "${HOSTS[@]}"; do
        [ -z "${seen[$h]:-}" ] && [ "$(host_field "$h" generation)" -ge 2 ] && seen[$h]=$(( n - tm ))
      done
      [ ${#seen[@]} -eq ${#HOSTS[@]} ] && break
    fi
    (( n - t0 < 60000 )) || break
    sleep 0.02
  done
  set +e; wait $p; rc=$?; set -e
  [ $rc -eq 0 ] || fail "push 2.0 failed: $(cat "$T/push.out")"
  fig push_2.0_ms $(( $(nfs_now_ms) - t0 ))
  [ -n "$tm" ] || fail "never saw the marker on the server"
  for h in "${HOSTS[@]}"; do
    [ -n "${seen[$h]:-}" ] || { fail "$h never answered the marker"; continue; }
    fig "marker_noticed_ms_$h" "${seen[$h]}"
    # A daemon: poll 1 s + scheduling on a loaded 2-core machine, 4 s. The cron host: its loop
    # sleeps 1 s between ticks, each a process started in a ptraced guest (0.5-1.5 s at load
    # ~14; 4.5 s seen in all), 6 s. Both far below the 30-60 s the directory cache alone allows.
    limit=4000; [ "$(cat "$T/hosts/$h/mode")" = daemon ] || limit=6000
    (( seen[$h] <= limit )) || fail "$h noticed the marker only after ${seen[$h]} ms (poll 1s, limit $limit ms)"
    (( seen[$h] > worst )) && worst=${seen[$h]}
  done
  wait_until 30 all_run 2.0 || fail "hosts not all on 2.0"
  local before
  before=$(cat "$T"/hosts/*/watchdog.log | grep -c "started agent 1.0" || true)
  sleep 4   # several polls and heartbeats after the unmark
  assert_agents 2.0 "after the push"
  assert_eq "$(cat "$T"/hosts/*/watchdog.log | grep -c "started agent 1.0" || true)" "$before" "starts of 1.0 after the unmark"
  t0=$(nfs_now_ms)
  out=$(gx $MASTER_G "'$INSTALL' rollback '$GSHARE' ${MASTER_OPTS[*]} 2>&1" 200)
  assert_contains "$out" "rollback 2.0 -> 1.0 (generation 3): 3 host(s) ok, 0 failed"
  fig rollback_ms $(( $(nfs_now_ms) - t0 ))
  assert_agents 1.0 "after the rollback"
  # Abort: a master killed right after every host stopped for its marker (generation 4). Nobody renews the
  # marker: after --stale-after the hosts resume the pointer's release (1.0) by themselves;
  # `abort` from another guest removes the marker and a re-run reaches everyone.
  local crash_opts=(--stale-after 5s --lease 3s --timeout 90s --share-timeout 10s --vote-timeout 20s)
  set +e
  out=$(gx $MASTER_G "NFSUP_CRASH_AT=switch-after-stopped '$INSTALL' push '$GSHARE' '$T/rel/2.0' --version 2.0 -q ${crash_opts[*]} 2>&1" 200)
  rc=$?; set -e
  assert_eq "$rc" 137 "master killed after the stop: $out"
  t0=$(nfs_now_ms)
  wait_until 60 all_state running 3 1.0 || fail "hosts did not resume 1.0 after the master died: $(for h in "${HOSTS[@]}"; do host_field "$h" state; done | tr '\n' ' ')"
  fig dead_master_recovery_ms $(( $(nfs_now_ms) - t0 ))
  [ -e "$SHARE/MARKER" ] || fail "the dead master's marker is gone before the abort"
  out=$(gx g2 "'$INSTALL' abort '$GSHARE' 2>&1" 120) || fail "abort failed: $out"
  [ ! -e "$SHARE/MARKER" ] || fail "abort left the marker"
  assert_agents 1.0 "after the abort"
  out=$(mpush "'$T/rel/2.0' --version 2.0 2>&1") || fail "re-run after the abort failed: $out"
  assert_contains "$out" "3 host(s) ok, 0 failed"
  assert_agents 2.0 "after the re-run"
  gx $MASTER_G "'$INSTALL' verify '$GSHARE' -q" || fail "verify failed"
}

# The server hangs for 2 x share_timeout: cron ticks (hard and soft mount) return within their
# deadline, daemons keep their agents, and a push after the server is back reaches everyone.
test_nfs_server_paused_twice_share_timeout() {
  nfs_env
  local soft=$NFS_DIR/mnt/soft$VERS
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  mpush "'$(make_release 1.0)' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 30 all_run 1.0 || fail "hosts did not reach 1.0"
  # the cron tick's own configs: one on g1's hard (default) mount, one on a soft mount
  gadd_host g1 c1 check 500ms 1s
  gadd_host g1 c2 check 500ms 1s "$soft/${GSHARE##*/}"
  local a2 a3 h rc out took t0
  a2=$(agent_pid h2); a3=$(agent_pid h3)
  nfs_server_pause
  t0=$(nfs_now_ms)
  for h in c1 c2; do
    out=$(gx g1 "s=\$(date +%s%N); timeout -s KILL 30 '$WATCHDOG' check -c '$T/hosts/$h/watchdog.yaml' 2>&1; echo rc=\$? ms=\$(( (\$(date +%s%N) - s) / 1000000 ))" 60)
    rc=$(sed -n 's/.*rc=\([0-9]*\) ms=.*/\1/p' <<<"$out"); took=$(sed -n 's/.*ms=//p' <<<"$out")
    fig "cron_tick_on_paused_server_${h}_ms" "$took"
    assert_eq "$rc" 3 "cron tick $h on a paused server: $out"
    (( took < 8000 )) || fail "cron tick $h took $took ms (share_timeout 3s)"
  done
  # the pause lasts at least 2 x share_timeout
  while (( $(nfs_now_ms) - t0 < 7000 )); do sleep 0.2; done
  galive h2 || fail "h2's agent died while the server hung"
  galive h3 || fail "h3's agent died while the server hung"
  nfs_server_resume
  t0=$(nfs_now_ms)
  wait_until 60 bash -c "grep -qx 'state running' '$SHARE/hosts/h2/status' && grep -qx 'state running' '$SHARE/hosts/h3/status'" || fail "hosts did not come back"
  assert_eq "$(agent_pid h2)" "$a2" "h2 agent pid after the pause"
  assert_eq "$(agent_pid h3)" "$a3" "h3 agent pid after the pause"
  mpush "'$(make_release 2.0)' --version 2.0 -q" || fail "push 2.0 after the pause failed"
  fig catch_up_push_ms $(( $(nfs_now_ms) - t0 ))
  assert_agents 2.0 "after the pause" h2 h3
}

# Two masters in two guests push at the same moment: exactly one holds the marker.
test_nfs_two_masters_race() {
  nfs_env
  # h3's agent ignores its stop signal (WINCH) and is killed after 5 s, so each push holds the
  # marker for at least that long: a second master that starts up to 5 s late (a loaded guest
  # takes ~1-2 s to start a command) still races.
  STOP_SIGNAL=WINCH STOP_TIMEOUT=5s gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  make_release 1.0 >/dev/null; make_release 2.0 >/dev/null
  # an agent must run, or a push has nothing to stop and ends before a late rival starts
  mpush "'$T/rel/1.0' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "h3 not on 1.0"
  local round rc1 rc2
  for round in 1 2; do
    rm -f "$T/go" "$T/wait".*
    gx g1 ": >'$T/wait.1'; until [ -e '$T/go' ]; do sleep 0.01; done; '$INSTALL' push '$GSHARE' '$T/rel/1.0' --version 1.$round -q ${MASTER_OPTS[*]}" 200 >"$T/m1.out" 2>&1 &
    local p1=$!
    gx g2 ": >'$T/wait.2'; until [ -e '$T/go' ]; do sleep 0.01; done; '$INSTALL' push '$GSHARE' '$T/rel/2.0' --version 2.$round -q ${MASTER_OPTS[*]}" 200 >"$T/m2.out" 2>&1 &
    local p2=$!
    wait_until 30 test -e "$T/wait.1" -a -e "$T/wait.2" || fail "the guests did not start waiting"
    touch "$T/go"
    set +e; wait $p1; rc1=$?; wait $p2; rc2=$?; set -e
    fig "race_round${round}_rc" "$rc1/$rc2"
    if [ "$rc1" = 0 ] && [ "$rc2" = 4 ]; then :
    elif [ "$rc1" = 4 ] && [ "$rc2" = 0 ]; then :
    else fail "round $round: exit codes $rc1 and $rc2 (want one 0, one 4): $(cat "$T/m1.out" "$T/m2.out")"; fi
    [ ! -e "$SHARE/MARKER" ] || fail "a marker is left after round $round"
    # how the loser lost: it found the marker at its start, or it lost the create itself
    fig "race_round${round}_loser" "$(cat "$T/m1.out" "$T/m2.out" | grep -m1 . | sed 's/.*error: //' | cut -c1-90)"
  done
  gx g1 "'$INSTALL' verify '$GSHARE' -q" || fail "verify after the races failed"
}

# prune deletes an old release while processes on two clients hold its files open: the one on
# the pruning client leaves a silly-renamed .nfsXXXX file; the other client's reads get ESTALE
# or keep working. Running agents are unharmed; verify, status and a second prune are not confused.
test_nfs_prune_with_open_files() {
  nfs_env
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  local v
  for v in 1.0 2.0 3.0; do
    mpush "'$(make_release $v)' --version $v -q" || fail "push $v failed"
  done
  wait_until 30 all_run 3.0 || fail "hosts not on 3.0"
  # holders of release 1.0's files: g1 (the master's client) and g3 (another client)
  gx g1 "setsid sleep 600 <'$GSHARE/releases/1.0/VERSION' >/dev/null 2>&1 & echo \$! >'$T/hold1'"
  gx g3 "setsid bash -c 'exec 3<\"$GSHARE/releases/1.0/bin/agent\"; read -r l <&3; echo \"\$l\" >\"$T/hold3.first\"; while :; do sleep 0.3; if [ -e \"$T/hold3.go\" ]; then cat <&3 >/dev/null; echo \$? >\"$T/hold3.rc\"; exec sleep 600; fi; done' </dev/null >'$T/hold3.err' 2>&1 & echo \$! >'$T/hold3'"
  wait_until 20 test -s "$T/hold3.first" || fail "g3 did not open release 1.0"
  # and a process on g3 whose working directory is in release 1.0: once another client has
  # deleted that directory, the handle g3 holds is stale (ESTALE), which no open file showed
  gx g3 "setsid bash -c 'cd \"$GSHARE/releases/1.0/bin\" && : >\"$T/cwd3.in\"; until [ -e \"$T/cwd3.go\" ]; do sleep 0.3; done; ls . >/dev/null 2>\"$T/cwd3.err\"; echo \$? >\"$T/cwd3.rc\"; exec sleep 600' </dev/null >/dev/null 2>&1 & echo \$! >'$T/cwd3'"
  wait_until 20 test -e "$T/cwd3.in" || fail "g3 did not enter release 1.0"
  local out rc
  set +e; out=$(gx g1 "'$INSTALL' prune '$GSHARE' --keep 1 2>&1"); rc=$?; set -e
  fig prune_with_open_files_rc "$rc"
  echo "    prune (files of 1.0 open on g1 and g3): rc $rc: $(tr '\n' ' ' <<<"$out")"
  local silly; silly=$(find "$SHARE/releases" -name '.nfs[0-9a-f]*' 2>/dev/null | wc -l)
  fig silly_renamed_files_after_prune "$silly"
  touch "$T/hold3.go"
  wait_until 20 test -s "$T/hold3.rc" || true
  fig other_client_read_after_delete "rc=$(cat "$T/hold3.rc" 2>/dev/null) $(tr '\n' ' ' <"$T/hold3.err" | head -c 120)"
  for v in h2 h3; do galive $v || fail "$v's agent died"; assert_eq "$(gagent_version $v)" 3.0 "$v agent"; done
  gx g2 "'$INSTALL' verify '$GSHARE' -q" || fail "verify confused after the prune (silly-renamed: $silly)"
  out=$(gx g2 "'$INSTALL' status '$GSHARE' 2>&1") || fail "status failed: $out"
  gx g1 "kill \$(cat '$T/hold1')"; gx g3 "kill \$(cat '$T/hold3')"
  sleep 1
  set +e; out=$(gx g1 "'$INSTALL' prune '$GSHARE' --keep 1 2>&1"); rc=$?; set -e
  assert_eq "$rc" 0 "second prune once the files are closed: $out"
  [ ! -e "$SHARE/releases/1.0" ] || fail "release 1.0 still there after the second prune"
  local left; left=$(find "$SHARE/releases" -mindepth 1 -maxdepth 1 -name '.deleting-*')
  [ -z "$left" ] || fail "the second prune left what the first could not remove: $left $(find $left | head -3)"
  gx g2 "'$INSTALL' verify '$GSHARE' -q" || fail "verify failed at the end"
  touch "$T/cwd3.go"
  wait_until 20 test -s "$T/cwd3.rc" || true
  fig cwd_in_deleted_release_on_other_client "rc=$(cat "$T/cwd3.rc" 2>/dev/null) $(tr '\n' ' ' <"$T/cwd3.err" 2>/dev/null | head -c 120)"
  # nfsup on the client holding the stale handle is not confused by it
  galive h3 || fail "h3's agent died"
  gx g3 "'$INSTALL' verify '$GSHARE' -q" || fail "verify on g3 (a stale handle held there) failed"
  out=$(gx g3 "'$INSTALL' status '$GSHARE' 2>&1") || fail "status on g3 failed: $out"
  gx g3 "kill \$(cat '$T/cwd3')" || true
}


# The per-operation RPC counts and the bytes read from the server of one host, from its guest's
# /proc/self/mountstats (the host has a mount of its own): idle for a minute
# (poll 2 s, heartbeat 10 s) and one upgrade of a 50 x 1 MiB release with one file changed.
# The master pushes from the server's side (hpush): only the host's mount is counted, and
# writing 2 x 50 MiB through a guest's NFS mount cost the suite ~30 s per run.
mstats() {  # mstats GUEST MNT: "OP count" lines and "BYTES_READ n"
  nfs_mountstats "$1" "$2" | awk '
    $1 == "bytes:" { print "BYTES_READ", $6 }
    /per-op statistics/ { ops = 1; next }
    ops && NF >= 9 && $1 ~ /:$/ { sub(/:$/, "", $1); print $1, $2 }'
}
mdelta() {  # mdelta FILE0 FILE1 [scale]: per-op differences, non-zero only
  awk -v k="${3:-1}" 'NR == FNR { a[$1] = $2; next } { d = ($2 - a[$1]) * k; if (d > 0) print $1, d }' "$1" "$2"
}
test_nfs_rpc_counts_idle_and_upgrade() {
  nfs_env
  local m=$NFS_DIR/mnt/rpc$VERS r r2 i
  nfs_mount g3 "$m" "$VERS" || fail "mount for the counts failed"
  gadd_host g3 h3 daemon 2s 10s "$m/${GSHARE##*/}"
  gstart_all
  r=$(make_release 1.0)
  for i in $(seq 1 50); do head -c 1048576 /dev/urandom >"$r/f$i"; done
  hpush "$r" --version 1.0 -q || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "h3 not on 1.0"
  wait_until 60 test -d "$T/hosts/h3/state/cache/1.0" || true
  sleep 3
  # a whole minute: at a 10 s heartbeat a 30 s window holds 3 or 4 of them (scaled: 6 or 8)
  mstats g3 "$m" >"$T/s0"; sleep 60; mstats g3 "$m" >"$T/s1"
  r2=$T/rel/2.0; cp -a "$r" "$r2"; echo "release 2.0" >"$r2/VERSION"
  head -c 1048576 /dev/urandom >"$r2/f1"
  mstats g3 "$m" >"$T/s2"
  hpush "$r2" --version 2.0 -q || fail "push 2.0 failed"
  wait_until 60 all_run 2.0 || fail "h3 not on 2.0"
  wait_until 60 test -d "$T/hosts/h3/state/cache/2.0" || true
  sleep 3
  mstats g3 "$m" >"$T/s3"
  mdelta "$T/s0" "$T/s1" >"$T/idle"; mdelta "$T/s2" "$T/s3" >"$T/upg"
  local idle_total upg_total idle_bytes upg_bytes
  idle_total=$(awk '$1 != "BYTES_READ" {t += $2} END {print t + 0}' "$T/idle")
  upg_total=$(awk '$1 != "BYTES_READ" {t += $2} END {print t + 0}' "$T/upg")
  idle_bytes=$(awk '$1 == "BYTES_READ" {print $2}' "$T/idle"); upg_bytes=$(awk '$1 == "BYTES_READ" {print $2}' "$T/upg")
  {
    echo "RPCs of one host (NFSv$VERS, default caches, poll 2s, heartbeat 10s), from /proc/self/mountstats:"
    printf '  %-14s %12s %16s\n' operation "idle/minute" "one upgrade"
    sort -u <(cut -d' ' -f1 "$T/idle") <(cut -d' ' -f1 "$T/upg") | grep -v BYTES_READ | while read -r op; do
      printf '  %-14s %12s %16s\n' "$op" "$(awk -v o="$op" '$1 == o {print $2}' "$T/idle")" "$(awk -v o="$op" '$1 == o {print $2}' "$T/upg")"
    done
    printf '  %-14s %12s %16s\n' total "$idle_total" "$upg_total"
    printf '  %-14s %12s %16s\n' "bytes read" "${idle_bytes:-0}" "${upg_bytes:-0}"
    echo "  (upgrade: 50 x 1 MiB release, one file changed; idle measured over 60 s)"
  } >>"$RPCFILE"
  fig idle_rpcs_per_minute "$idle_total"
  fig upgrade_rpcs "$upg_total"
  fig upgrade_server_bytes_read "${upg_bytes:-0}"
  (( idle_total >= 30 )) || fail "only $idle_total RPCs per idle minute: the host does not poll every 2 s"
  # (the budget of issue 17 is 40: 30 polls, 6 heartbeat touches, a few cache revalidations;
  # a status rewrite or pointer read at every heartbeat was 182; this bound catches that)
  (( idle_total <= 80 )) || fail "$idle_total RPCs per idle minute (budget 40)"
  (( ${upg_bytes:-0} >= 1048576 )) || fail "the upgrade read only ${upg_bytes:-0} bytes: not even the changed file"
}

# One guest's link is cut while the push switches, and restored: the push goes on without it
# (naming it) and the guest converges afterwards.
test_nfs_link_cut_mid_switch() {
  nfs_env
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  mpush "'$(make_release 1.0)' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 30 all_run 1.0 || fail "hosts not on 1.0"
  make_release 2.0 >/dev/null
  mpush "'$T/rel/2.0' --version 2.0 --assume-accept" >"$T/push.out" 2>&1 &
  local p=$! rc t0
  wait_until 60 test -e "$SHARE/MARKER" || fail "no marker"
  nfs_link g3 down
  set +e; wait $p; rc=$?; set -e
  fig link_cut_push_rc "$rc"
  host_runs h2 2.0 || fail "h2 not on 2.0: $(cat "$T/push.out")"
  [ $rc -eq 0 ] || assert_contains "$(cat "$T/push.out")" "h3"
  nfs_link g3 up
  t0=$(nfs_now_ms)
  wait_until 120 host_runs h3 2.0 || fail "h3 did not converge after its link came back"
  fig link_restored_converge_ms $(( $(nfs_now_ms) - t0 ))
  assert_eq "$(gagent_version h3)" 2.0 "h3 agent"
}

# An agent that holds no file of the share open: it execs sleep.
sleeper_release() {  # sleeper_release VERSION -> its directory
  local r; r=$(make_release "$1")
  printf '#!/bin/sh\necho "agent $NFSUP_VERSION started in $(pwd)"\nexec sleep 100000\n' >"$r/bin/agent"
  echo "$r"
}

# Two hosts lose their share (their guests' links are cut) and then their agents: each starts
# its agent again from the local copy in state_dir/cache: h2 signed (it runs every release from
# its verified copy there anyway), h3 unsigned (run_from: local, the default: its local tree).
# Once the links are back, status says so.
test_nfs_local_copy_when_share_unreachable() {
  nfs_env
  "$INSTALL" keygen --out "$T/keys" --name fleet -q
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  printf 'trusted_keys: [%s/keys/fleet.pub]\n' "$T" >>"$T/hosts/h2/watchdog.yaml"
  gstart_all
  mpush "'$(sleeper_release 1.0)' --version 1.0 --sign-key '$T/keys/fleet.key' -q" || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "hosts not on 1.0"
  local h old t0
  for h in h2 h3; do
    wait_until 30 test -d "$T/hosts/$h/state/cache/1.0" || fail "no local copy of 1.0 on $h"
  done
  declare -A old=()
  for h in h2 h3; do old[$h]=$(agent_pid $h); nfs_link "${HOST_G[$h]}" down; done
  for h in h2 h3; do gx "${HOST_G[$h]}" "kill -KILL ${old[$h]}" 20; done
  t0=$(nfs_now_ms)
  restarted() { local p; p=$(agent_pid "$1"); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "${old[$1]}" ] && gx "${HOST_G[$1]}" "kill -0 $p" 20; }
  for h in h2 h3; do
    wait_until 60 restarted $h || {
      nfs_link g2 up; nfs_link g3 up
      fail "$h did not restart its agent while its share was unreachable; its log: $(tail -6 "$T/hosts/$h/watchdog.log" | tr '\n' '|')"
      return 1
    }
    fig "local_copy_restart_ms_$h" $(( $(nfs_now_ms) - t0 ))
    assert_eq "$(gx "${HOST_G[$h]}" "readlink /proc/$(agent_pid $h)/cwd" 20)" "$T/hosts/$h/state/cache/1.0" "$h restarted from its local copy"
  done
  nfs_link g2 up; nfs_link g3 up
  for h in h2 h3; do
    wait_until 60 grep -q 'local%20copy' "$SHARE/hosts/$h/status" || fail "$h's status does not say it runs the local copy: $(cat "$SHARE/hosts/$h/status")"
  done
}

# A host's link is cut while it fetches and verifies a big release for the switch: the verification
# is allowed 6 x share_timeout (18 s) in all, but one share_timeout (3 s) without progress is a
# hang, which the host must report well before 18 s. Once the link is back the push goes through.
# The release is staged from the host onto the export's directory: writing it through a guest's
# NFS mount would cost the suite a minute; the switch itself is done by the master in g1.
test_nfs_hang_while_verifying_is_noticed_after_one_share_timeout() {
  nfs_env
  gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  local r r2 p t0 took
  r=$(sleeper_release 1.0)
  mpush "'$r' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "h3 not on 1.0"
  r2=$(sleeper_release 2.0)
  head -c $(( ${NFS_BIG_MB:-192} << 20 )) /dev/urandom >"$r2/big.bin"
  "$INSTALL" push "$SHARE" "$r2" --version 2.0 --hosts h3 --stale-after 30s --lease 3s --timeout 90s --share-timeout 20s -q >"$T/push.out" 2>&1 &
  p=$!
  # (run_from: local, the default: h3 fetches and verifies 2.0 into its store when it sees the
  # marker, before it stops; run_from: share: while it waits stopped)
  local begun="marker seen: push to 2.0"
  [ "${RUN_FROM:-local}" = share ] && begun="stopped agent 1.0"
  wait_until 90 grep -q "$begun" "$T/hosts/h3/watchdog.log" || { kill $p || true; fail "h3 did not begin on 2.0: $(cat "$T/push.out")"; return 1; }
  nfs_link g3 down
  t0=$(nfs_now_ms)
  if grep -q "2.0 verified while stopped\|2.0 fetched and verified" "$T/hosts/h3/watchdog.log"; then
    nfs_link g3 up; kill $p || true
    fail "h3 had verified 2.0 before its link was cut: the test did not hang it in time (NFS_BIG_MB)"; return 1
  fi
  wait_until 20 grep -q "share unreachable" "$T/hosts/h3/watchdog.log" || true
  took=$(( $(nfs_now_ms) - t0 ))
  fig hang_while_verifying_noticed_ms $took
  nfs_link g3 up
  grep -q "share unreachable" "$T/hosts/h3/watchdog.log" || fail "h3 never noticed its share hung: $(tail -4 "$T/hosts/h3/watchdog.log" | tr '\n' '|')"
  (( took < 9000 )) || fail "h3 noticed the hang only after $took ms (share_timeout 3s; the verification's cap is 18s)"
  t0=$(nfs_now_ms)
  wait $p || fail "push failed after the link came back: $(cat "$T/push.out")"
  wait_until 30 host_runs h3 2.0 || fail "h3 not on 2.0 after its link came back"
  fig hang_while_verifying_push_after_link_ms $(( $(nfs_now_ms) - t0 ))
}

# A guest paused for longer than the NFSv4 lease (15 s here): afterwards its watchdog goes on,
# its agent lives, and the next push reaches it. On NFSv3 the same 22 s pause, no lease.
test_nfs_guest_paused_past_lease() {
  # NFSv3 has no lease: the same pause there checks the same outcome (a guest that was gone
  # for 22 s catches up) without one.
  if [ "$VERS" != 3 ]; then nfs_server_restart 0 15 && : >"$NFS_DIR/srv/lease.changed"; fi
  nfs_env
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  mpush "'$(make_release 1.0)' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "hosts not on 1.0"
  local a3 t0; a3=$(agent_pid h3)
  nfs_guest_pause g3; sleep 22; nfs_guest_resume g3
  t0=$(nfs_now_ms)
  mpush "'$(make_release 2.0)' --version 2.0 -q" || fail "push 2.0 after the pause failed"
  wait_until 60 host_runs h3 2.0 || fail "h3 not on 2.0 after its pause"
  fig paused_past_lease_push_ms $(( $(nfs_now_ms) - t0 ))
  fig paused_past_lease_h3_log "$(grep -c -i 'error\|unreachable' "$T/hosts/h3/watchdog.log") error lines"
  assert_eq "$(gagent_version h3)" 2.0 "h3 agent"
  [ "$a3" != "$(agent_pid h3)" ] || fail "h3's agent was not restarted for 2.0"
}

# The server crashes while a push switches and comes back with a 15 s grace period: the push
# completes or backs out; nothing is left half-done (after an abort, every host runs one release
# and verify passes).
test_nfs_server_restart_with_grace_during_push() {
  nfs_env
  gadd_host g2 h2 daemon 500ms 1s; gadd_host g3 h3 daemon 500ms 1s
  gstart_all
  mpush "'$(make_release 1.0)' --version 1.0 -q" || fail "push 1.0 failed"
  wait_until 60 all_run 1.0 || fail "hosts not on 1.0"
  make_release 2.0 >/dev/null
  local p rc t0 out
  mpush "'$T/rel/2.0' --version 2.0" >"$T/push.out" 2>&1 &
  p=$!
  wait_until 60 test -e "$SHARE/MARKER" || fail "no marker"
  t0=$(nfs_now_ms)
  nfs_server_restart 15 15 && : >"$NFS_DIR/srv/lease.changed"
  set +e; wait $p; rc=$?; set -e
  fig grace_restart_push_rc "$rc"
  fig grace_restart_push_ms $(( $(nfs_now_ms) - t0 ))
  echo "    push across a server restart with grace: rc $rc: $(tail -n 2 "$T/push.out" | tr '\n' ' ')"
  if [ $rc -eq 0 ]; then
    wait_until 60 all_run 2.0 || fail "push said ok but hosts are not on 2.0"
  else
    if [ -e "$SHARE/MARKER" ]; then
      out=$(gx g1 "'$INSTALL' abort '$GSHARE' 2>&1" 120) || fail "abort failed: $out"
    fi
    local v; v=$(awk '$1 == "release" {print $2}' "$SHARE/current")
    wait_until 90 all_run "$v" || fail "hosts do not all run the pointer's release $v after the abort"
  fi
  gx g1 "'$INSTALL' verify '$GSHARE' -q" 120 || fail "verify failed after the restart"
}

# ---------------------------------------------------------------- run ----

run_suite() {  # every test_* (ONLY filters); counts into PASSED/FAILED, times into $TIMES
  local t rc start res
  for t in $(declare -F | awk '{print $3}' | grep '^test_nfs_' | grep -E -- "${ONLY:-.}"); do
    if [ -e "$NFS_DIR/srv/lease.changed" ]; then   # a test shortened the lease: back to the default
      rm -f "$NFS_DIR/srv/lease.changed"; nfs_server_restart 0 "$NFS_LEASE"
    fi
    echo "--- [$VERS] $t"
    start=$(nfs_now_ms)
    ( trap cleanup_env EXIT; set -e; "$t" ); rc=$?
    res=ok; [ $rc -eq 0 ] || res=FAIL
    if [ $rc -eq 0 ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
    start=$(( ($(nfs_now_ms) - start) / 100 ))
    echo "${t#test_nfs_} $VERS $res $((start / 10)).$((start % 10))" >>"$TIMES"
    printf '%-4s [%s] %s (%d.%d s)\n' "$res" "$VERS" "$t" $((start / 10)) $((start % 10))
  done
}

# scenario, then "result seconds" per protocol version run
print_times() {
  local v
  printf '  %-62s' scenario; for v in $NFS_RUNS; do printf ' %14s' "v$v"; done; echo
  awk '{print $1}' "$TIMES" | awk '!seen[$0]++' | while read -r t; do
    printf '  %-62s' "$t"
    for v in $NFS_RUNS; do
      printf ' %14s' "$(awk -v t="$t" -v v="$v" '$1 == t && $2 == v {print $3, $4 " s"}' "$TIMES")"
    done
    echo
  done
}

PASSED=0; FAILED=0
TIMES=$NFS_DIR/times
SUITE_T0=$(nfs_now_ms)
echo "boot: server + 3 guests in $NFS_BOOT_S s"
for VERS in $NFS_RUNS; do
  MNT=$NFS_DIR/mnt/v$VERS
  for g in g1 g2 g3; do nfs_mount $g "$MNT" "$VERS" & done; wait
  nfs_mount g1 "$NFS_DIR/mnt/soft$VERS" "$VERS" "soft,timeo=20,retrans=1"
  # NFSv3 reruns what differs there: the flow, the server pause and grace restart, the link
  # cut, prune's silly renames and the masters' race (no open state, NLM-free exclusive create,
  # soft timeouts). Left to NFS_V3_ALL=1 (the suite's 8-minute CI budget: the full set took
  # 509 s in CI on 2 cores): the RPC table, the lease pause (NFSv3 has no lease), and the hang
  # while verifying and the local-copy restart (client-side behaviour of a hard mount, the same
  # on both versions and covered on v3 by the server pause).
  if [ "$VERS" = 3 ] && [ -z "${ONLY:-}" ] && [ -z "${NFS_V3_ALL:-}" ]; then
    ONLY='^test_nfs_(flow|server|link_cut|prune|two_masters)' run_suite
  else
    run_suite
  fi
done
echo "figures (real NFS, default caches unless named):"
sort "$FIGFILE" 2>/dev/null | sed 's/^/  /'
[ -s "$RPCFILE" ] && cat "$RPCFILE"
echo "time per scenario (load: $(cut -d' ' -f1-3 /proc/loadavg)):"
[ -s "$TIMES" ] && print_times
t=$(( ($(nfs_now_ms) - SUITE_T0) / 1000 ))
echo "scenarios: ${t} s after a boot of $NFS_BOOT_S s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
