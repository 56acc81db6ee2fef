#!/usr/bin/env bash
# Issue 17 figures for run_from: local (the local object store), on a local-directory share;
# figures, not timed tests:
#  1. file-system bytes read per host (rchar of its watchdog, /proc/<pid>/io) for an upgrade of
#     a release of 50 x 1 MiB files in which one file changed (235c78d: 105 MB; target <= 2.2 MiB);
#  2. per-host downtime (old agent stopped -> new agent started, from the agents' own clocks)
#     for an all-at-once upgrade of a STORE_BIG_MIB MiB release whose every file changed
#     (STORE_BIG_MIB=0: a 1 KiB release, for the baseline of the same fleet).
# Usage: scripts/bench-store.sh   Knobs: NFSUP_BUILD=build/src STORE_HOSTS=2 STORE_BIG_MIB=512
#        STORE_ONLY="rchar downtime"
set -euo pipefail
cd "$(dirname "$0")/.."
B=${NFSUP_BUILD:-$PWD/build/src}
: "${STORE_HOSTS:=2}" "${STORE_BIG_MIB:=512}" "${STORE_ONLY:=rchar downtime}"
T=$(mktemp -d /tmp/nfsup-bench-store.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
MOPTS=(--stale-after 10s --lease 3s --timeout 180s -q)

agent() {  # the agent: says when it starts and stops, on its own clock
  mkdir -p "$1/bin"
  cat >"$1/bin/agent" <<'EOA'
#!/bin/sh
echo "start $NFSUP_VERSION $(date +%s%N)"
trap 'echo "stop $NFSUP_VERSION $(date +%s%N)"; exit 0' TERM INT
while :; do sleep 1 & wait $!; done
EOA
  chmod 755 "$1/bin/agent"
}
fleet() {  # fleet DIR: STORE_HOSTS daemons on DIR/share
  local d=$1 i
  "$B/nfsup-install" init --local "$d/share" >/dev/null
  for i in $(seq 1 "$STORE_HOSTS"); do
    mkdir -p "$d/h$i/state"
    cat >"$d/h$i/watchdog.yaml" <<EOC
share: $d/share
host: h$i
poll_interval: 100ms
heartbeat_interval: 2s
share_timeout: 5s
state_dir: $d/h$i/state
agent:
  command: [bin/agent]
  stop_timeout: 2s
  start_grace: 300ms
EOC
    "$B/nfsup-watchdog" run -q -c "$d/h$i/watchdog.yaml" >>"$d/h$i/watchdog.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$d/h$i/pid"
  done
  sleep 1
}
running() {  # running DIR VERSION: every host runs VERSION
  local i
  for i in $(seq 1 "$STORE_HOSTS"); do
    awk -v v="$2" '$1=="state" && $2=="running" {s=1} $1=="running" && $2==v {r=1} END {exit !(s && r)}' \
      "$1/share/hosts/h$i/status" 2>/dev/null || return 1
  done
}
wait_running() { local n=0; until running "$1" "$2"; do sleep 0.2; n=$((n + 1)); ((n < 1500)) || { echo "timeout" >&2; exit 1; }; done; }
rchar() { awk '$1=="rchar:" {print $2}' "/proc/$(cat "$1/pid")/io"; }

if [[ " $STORE_ONLY " == *" rchar "* ]]; then
  d=$T/rchar; mkdir -p "$d"; fleet "$d"
  agent "$d/r1"
  for i in $(seq -w 1 50); do head -c 1048576 /dev/urandom >"$d/r1/f$i"; done
  "$B/nfsup-install" push "$d/share" "$d/r1" --version 1.0 "${MOPTS[@]}"
  wait_running "$d" 1.0
  cp -a "$d/r1" "$d/r2"; head -c 1048576 /dev/urandom >"$d/r2/f07"
  sleep 2  # (settled)
  declare -A before
  for i in $(seq 1 "$STORE_HOSTS"); do before[$i]=$(rchar "$d/h$i"); done
  "$B/nfsup-install" push "$d/share" "$d/r2" --version 2.0 "${MOPTS[@]}"
  wait_running "$d" 2.0
  for i in $(seq 1 "$STORE_HOSTS"); do
    b=$(( $(rchar "$d/h$i") - before[$i] ))
    printf 'rchar h%s: %d bytes = %.2f MiB read for 1 of 50 x 1 MiB changed (235c78d: 105 MB; target <= 2.2 MiB)\n' \
      "$i" "$b" "$(echo "$b / 1048576" | bc -l)"
  done
fi

if [[ " $STORE_ONLY " == *" downtime "* ]]; then
  d=$T/down; mkdir -p "$d"; fleet "$d"
  n=$(( STORE_BIG_MIB / 64 )); ((n > 0)) || n=1
  size=$((64 << 20)); ((STORE_BIG_MIB > 0)) || size=1024  # STORE_BIG_MIB=0: a 1 KiB release, the baseline
  for v in 1 2; do
    agent "$d/r$v"
    for i in $(seq 1 "$n"); do head -c "$size" /dev/urandom >"$d/r$v/blob$i"; done
  done
  "$B/nfsup-install" push "$d/share" "$d/r1" --version 1.0 "${MOPTS[@]}"
  wait_running "$d" 1.0
  t0=$(date +%s%N)
  "$B/nfsup-install" push "$d/share" "$d/r2" --version 2.0 "${MOPTS[@]}"
  wait_running "$d" 2.0
  echo "push of 2.0 ($((n * size >> 10)) KiB, every file changed) -> all running: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  for i in $(seq 1 "$STORE_HOSTS"); do
    stop=$(awk '$1=="stop" && $2=="1.0" {print $3}' "$d/h$i/state/agent.log" | tail -1)
    start=$(awk '$1=="start" && $2=="2.0" {print $3}' "$d/h$i/state/agent.log" | tail -1)
    echo "downtime h$i: $(( (start - stop) / 1000000 )) ms (agent 1.0 stopped -> agent 2.0 started)"
  done
fi
