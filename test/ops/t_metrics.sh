#!/usr/bin/env bash
# Prometheus text format (node_exporter's textfile collector): `metrics_file:` in watchdog.yaml
# makes the watchdog write this host's state, release, last switch, agent restarts and share
# latency at each status write; `nfsup-install status --prometheus` prints the fleet's.
source "$(dirname "$0")/lib.sh"

# config DIR HOST [EXTRA]: a watchdog config for HOST on DIR/share with the fixture agent.
config() {
  cat >"$1/$2.yaml" <<EOF2
share: $1/share
host: $2
poll_interval: 50ms
heartbeat_interval: 50ms
share_timeout: 2s
state_dir: $1/state-$2
metrics_file: $1/prom/$2.prom
agent:
  command: [bin/agent, "$1/agent.cfg"]
  start_grace: 100ms
  stop_timeout: 2s
EOF2
}

# metric FILE NAME{LABELS}: the value of that exact series.
metric() { grep -F "$2 " "$1" | tail -1 | awk '{ print $NF }'; }

kill_agent() {
  local p
  p=$(sed -n 's/.*started (pid \([0-9]*\)).*/\1/p' "$1/agent.log" | tail -1)
  [ -n "$p" ] && kill "$p" 2>/dev/null || true
}

check_watchdog_writes_the_textfile() {
  local d="$TMP/w"
  mkdir -p "$d/prom"
  echo "x: 1" >"$d/agent.cfg"
  new_share "$d/share"
  make_release "$d/r1" 1.0
  make_release "$d/r2" 2.0
  config "$d" h1
  on_exit "kill_agent $d/state-h1"
  "$WATCHDOG" check -q -c "$d/h1.yaml" || fail "first tick"
  [ -f "$d/prom/h1.prom" ] || fail "no metrics file after a tick"
  # No release yet: idle, no release series, share up.
  assert_eq "$(metric "$d/prom/h1.prom" 'nfsup_host_state{host="h1",state="idle"}')" 1
  assert_eq "$(metric "$d/prom/h1.prom" 'nfsup_share_up{host="h1"}')" 1
  ! grep -q '^nfsup_host_release_info{' "$d/prom/h1.prom" || fail "a release series before any release"
  # The first push, before the host counts as live for it (as in a first fleet).
  rm -rf "$d/share/hosts/h1"
  "$INSTALL" -q push "$d/share" "$d/r1" --version 1.0 --no-wait --allow-empty >/dev/null
  "$WATCHDOG" check -q -c "$d/h1.yaml" || true
  sleep 0.3
  "$WATCHDOG" check -q -c "$d/h1.yaml" || fail "tick on 1.0"
  local f="$d/prom/h1.prom"
  assert_eq "$(metric "$f" 'nfsup_host_state{host="h1",state="running"}')" 1
  assert_eq "$(metric "$f" 'nfsup_host_state{host="h1",state="idle"}')" 0
  grep -qE '^nfsup_host_release_info\{host="h1",release="1\.0",watchdog_version="[^"]+"\} 1$' "$f" \
    || fail "no release series for 1.0: $(cat "$f")"
  local t1 now; t1=$(metric "$f" 'nfsup_host_last_switch_timestamp_seconds{host="h1"}')
  now=$(date +%s)
  (( ${t1%.*} > now - 60 && ${t1%.*} <= now )) || fail "last switch time $t1 is not about now ($now)"
  assert_eq "$(metric "$f" 'nfsup_agent_restarts_total{host="h1"}')" 0
  local lat; lat=$(metric "$f" 'nfsup_share_latency_seconds{host="h1"}')
  awk -v l="$lat" 'BEGIN { exit !(l >= 0 && l < 2) }' || fail "share latency '$lat'"
  # Prometheus text format: every sample's metric has a HELP and a TYPE line.
  local m
  for m in $(grep -v '^#' "$f" | sed 's/[{ ].*//' | sort -u); do
    grep -q "^# TYPE $m " "$f" || fail "no TYPE for $m"
    grep -q "^# HELP $m " "$f" || fail "no HELP for $m"
  done
  # The agent dies and is restarted on the same release: restarts goes up, last switch stays.
  kill_agent "$d/state-h1"
  sleep 0.3
  # Ticks until the watchdog has restarted it (after its back-off).
  wait_until 10 sh -c "'$WATCHDOG' check -q -c '$d/h1.yaml' 2>/dev/null; grep -q 'nfsup_agent_restarts_total{host=\"h1\"} 1\$' '$f'" \
    || fail "restart not counted: $(grep restarts "$f")"
  assert_eq "$(metric "$f" 'nfsup_host_last_switch_timestamp_seconds{host="h1"}')" "$t1" "last switch after a restart"
  # No temp files are left beside it.
  assert_eq "$(ls "$d/prom")" "h1.prom" "files in the metrics directory"
}

check_metrics_file_is_validated() {
  local d="$TMP/v" out rc=0
  mkdir -p "$d"
  config "$d" h1
  sed -i "s|^metrics_file: .*|metrics_file: relative.prom|" "$d/h1.yaml"
  out=$("$WATCHDOG" validate -c "$d/h1.yaml" 2>&1) || rc=$?
  assert_eq "$rc" 2 "a relative metrics_file"
  assert_contains "$out" "metrics_file"
  rc=0
  sed -i "s|^metrics_file: .*|metrics_file: $d/share/x.prom|" "$d/h1.yaml"
  out=$("$WATCHDOG" validate -c "$d/h1.yaml" 2>&1) || rc=$?
  assert_eq "$rc" 2 "a metrics_file on the share"
  assert_contains "$out" "metrics_file"
}

check_status_prometheus_prints_the_fleet() {
  local d="$TMP/s" out rc=0
  mkdir -p "$d/prom"
  echo "x: 1" >"$d/agent.cfg"
  new_share "$d/share"
  make_release "$d/r1" 1.0
  "$INSTALL" -q push "$d/share" "$d/r1" --version 1.0 --no-wait >/dev/null
  config "$d" a1
  config "$d" b2
  on_exit "kill_agent $d/state-a1"
  on_exit "kill_agent $d/state-b2"
  for h in a1 b2; do
    "$WATCHDOG" check -q -c "$d/$h.yaml" || true; sleep 0.3; "$WATCHDOG" check -q -c "$d/$h.yaml" || true
  done
  out=$("$INSTALL" status "$d/share" --prometheus) || rc=$?
  assert_eq "$rc" 0 "exit code with every host running"
  assert_contains "$out" 'nfsup_fleet_release_info{release="1.0",generation="1"} 1'
  assert_contains "$out" 'nfsup_host_state{host="a1",state="running"} 1'
  assert_contains "$out" 'nfsup_host_state{host="b2",state="running"} 1'
  assert_contains "$out" 'nfsup_host_state{host="b2",state="stale"} 0'
  assert_contains "$out" 'nfsup_fleet_hosts{state="running"} 2'
  assert_contains "$out" 'nfsup_fleet_converged 1'
  grep -qE '^nfsup_host_heartbeat_age_seconds\{host="a1"\} [0-9.]+$' <<<"$out" || fail "no heartbeat age for a1"
  grep -q '^# TYPE nfsup_host_state gauge$' <<<"$out" || fail "no TYPE line"
  # --prometheus and --json together make no sense.
  rc=0; "$INSTALL" status "$d/share" --prometheus --json >/dev/null 2>&1 || rc=$?
  assert_eq "$rc" 2 "--prometheus with --json"
}

run_checks
