#!/usr/bin/env bash
# Hosts that run several services (issue 18): each started, health-checked and restarted on a
# crash by itself; one service's crash never touches the others; a push moves them all.
source "$(dirname "$0")/lib.sh"

# add_services_host NAME: a daemon host with three services a, b, c (the fake agent each).
add_services_host() {
  local h=$1
  HOSTS+=("$h")
  HOST_SHARE[$h]=$SHARE
  mkdir -p "$T/hosts/$h/state"
  for s in a b c; do echo "service: $s" > "$T/hosts/$h/$s.yaml"; done
  cat > "$T/hosts/$h/watchdog.yaml" <<EOC
share: $SHARE
host: $h
poll_interval: 100ms
heartbeat_interval: 500ms
share_timeout: 3s
state_dir: $T/hosts/$h/state
services:
  - name: a
    command: [bin/agent, "{config}"]
    config: $T/hosts/$h/a.yaml
    modules: [core]
    stop_timeout: 2s
    start_grace: 300ms
    restart_limit: 5
    restart_window: 60s
  - name: b
    command: [bin/agent, "{config}"]
    config: $T/hosts/$h/b.yaml
    modules: [core, plugin]
    stop_timeout: 2s
    start_grace: 300ms
    restart_limit: 5
    restart_window: 60s
    health: {command: [bin/healthy], timeout: 2s}
  - name: c
    command: [bin/agent, "{config}"]
    config: $T/hosts/$h/c.yaml
    modules: [ui]
    stop_timeout: 2s
    start_grace: 300ms
    restart_limit: 5
    restart_window: 60s
EOC
}

svc_release() {  # svc_release VERSION
  local d
  d=$(make_release "$1")
  printf '#!/bin/sh\nexit 0\n' > "$d/bin/healthy"; chmod +x "$d/bin/healthy"
  echo "$d"
}

# svc_pid HOST SERVICE: the live pid of a service (a: the agent, from the state file).
svc_pid() {
  local p
  if [ "$2" = a ]; then p=$(awk '$1=="agent" {print $2}' "$T/hosts/$1/state/state" 2>/dev/null)
  else p=$(awk -v s="$2" '$1=="service" && $2==s {print $3}' "$T/hosts/$1/state/services" 2>/dev/null); fi
  [ -n "$p" ] && [ "$p" != 0 ] && kill -0 "$p" 2>/dev/null && echo "$p"
}
svc_state() { awk -v s="$2" '$1=="service" && $2==s {print $7}' "$T/hosts/$1/state/services" 2>/dev/null; }
svc_version() {  # the version the service's live process was started with
  local p; p=$(svc_pid "$1" "$2") || return 1
  tr '\0' '\n' < "/proc/$p/environ" | sed -n 's/^NFSUP_VERSION=//p'
}
svc_on() { [ "$(svc_version "$1" "$2")" = "$3" ]; }  # svc_on HOST SERVICE VERSION
all_svc_on() { local s; for s in a b c; do svc_on "$1" "$s" "$2" || return 1; done; }
svc_running() { [ "$(svc_state "$1" "$2")" = running ]; }
pid_changed() { local p; p=$(svc_pid "$1" "$2") && [ "$p" != "$3" ]; }

services_fleet() {
  add_services_host n1
  start_all
  svc_release 1.0 >/dev/null
  "$INSTALL" push "$SHARE" "$T/rel/1.0" --version 1.0 "${MASTER_OPTS[@]}" -q
  wait_until 15 all_svc_on n1 1.0 || fail "services not all on 1.0: a=$(svc_version n1 a) b=$(svc_version n1 b) c=$(svc_version n1 c)"
  wait_until 10 svc_running n1 b || fail "b never passed its health check: $(cat "$T/hosts/n1/state/services")"
}

test_services_each_start_with_their_own_config_and_log() {
  begin; services_fleet
  local s
  for s in b c; do
    wait_until 5 grep -q "config: service: $s" "$T/hosts/n1/state/$s.log" || fail "$s.log: $(cat "$T/hosts/n1/state/$s.log")"
    tr '\0' '\n' < "/proc/$(svc_pid n1 $s)/environ" | grep -qx "NFSUP_SERVICE=$s" || fail "$s lacks NFSUP_SERVICE"
  done
  grep -q "config: service: a" "$T/hosts/n1/state/agent.log" || fail "the first service logs to agent.log"
  assert_eq "$(svc_state n1 c)" running "c reported running"
}

test_a_crashing_service_is_restarted_alone() {
  begin; services_fleet
  local a b c
  a=$(svc_pid n1 a); b=$(svc_pid n1 b); c=$(svc_pid n1 c)
  kill -KILL "$b"
  wait_until 10 pid_changed n1 b "$b" || fail "b was not restarted"
  wait_until 10 svc_running n1 b || fail "b not running again"
  assert_eq "$(svc_pid n1 a)" "$a" "a untouched by b's crash"
  assert_eq "$(svc_pid n1 c)" "$c" "c untouched by b's crash"
  grep -q "service b 1.0 died (signal SIGKILL); restarting" "$T/hosts/n1/watchdog.log" || fail "b's crash not logged"
  # The agent (first service) crashing leaves b and c alone too.
  b=$(svc_pid n1 b)
  kill -KILL "$a"
  wait_until 10 pid_changed n1 a "$a" || fail "a was not restarted"
  assert_eq "$(svc_pid n1 b)" "$b" "b untouched by a's crash"
  assert_eq "$(svc_pid n1 c)" "$c" "c untouched by a's crash"
}

test_a_service_failing_its_health_check_is_restarted() {
  begin; services_fleet
  local b c
  b=$(svc_pid n1 b); c=$(svc_pid n1 c)
  # The health command runs from the release tree the service runs: make it fail there.
  local tree; tree=$(readlink "/proc/$b/cwd")
  rm -f "$tree/bin/healthy"; printf '#!/bin/sh\necho sick; exit 1\n' > "$tree/bin/healthy"; chmod +x "$tree/bin/healthy"
  kill -KILL "$b"  # restarted, and this time its health check fails
  wait_until 10 grep -q "service b 1.0 died (health check failed: exit code 1)" "$T/hosts/n1/watchdog.log" ||
    fail "b's failed health check not seen: $(tail -5 "$T/hosts/n1/watchdog.log")"
  assert_eq "$(svc_pid n1 c)" "$c" "c untouched"
}

test_a_push_moves_every_service_and_shutdown_stops_them() {
  begin; services_fleet
  local b
  b=$(svc_pid n1 b)
  svc_release 2.0 >/dev/null
  "$INSTALL" push "$SHARE" "$T/rel/2.0" --version 2.0 "${MASTER_OPTS[@]}" -q
  wait_until 15 all_svc_on n1 2.0 || fail "services not all on 2.0"
  kill -0 "$b" 2>/dev/null && fail "b's 1.0 process still runs"
  local c; c=$(svc_pid n1 c)
  stop_watchdog n1
  kill -0 "$c" 2>/dev/null && fail "c still runs after the watchdog stopped"
  assert_eq "$(svc_state n1 c)" stopped "c reported stopped"
}

# A release of three modules: core (bin), plugin (plugins, depends on core), ui (ui).
# mod_release VERSION CORE-TEXT UI-TEXT
mod_release() {
  local d
  d=$(svc_release "$1")
  mkdir -p "$d/plugins" "$d/ui"
  echo "core $2" > "$d/bin/core.txt"
  echo "plugin" > "$d/plugins/p.so"
  echo "ui $3" > "$d/ui/index.html"
  cat > "$T/modules-$1.yaml" <<EOM
modules:
  core:   {paths: [bin]}
  plugin: {paths: [plugins], depends: {core: "1.0"}}
  ui:     {paths: [ui]}
  meta:   {paths: [VERSION]}
EOM
}
mpush() { "$INSTALL" push "$SHARE" "$T/rel/$1" --version "$1" --modules "$T/modules-$1.yaml" "${MASTER_OPTS[@]}" -q; }
svc_change() { awk -v s="$2" '$1=="service" && $2==s {print $8}' "$T/hosts/$1/state/services" 2>/dev/null; }

modules_fleet() {
  add_services_host n1
  start_all
  mod_release 1.0 one one
  mpush 1.0
  wait_until 15 all_svc_on n1 1.0 || fail "services not all on 1.0"
  wait_until 10 svc_running n1 b || fail "b not running"
}

test_a_release_changing_only_ui_restarts_c_alone() {
  begin; modules_fleet
  local a b c
  a=$(svc_pid n1 a); b=$(svc_pid n1 b); c=$(svc_pid n1 c)
  mod_release 2.0 one two
  mpush 2.0
  wait_until 15 svc_on n1 c 2.0 || fail "c not restarted on 2.0: $(cat "$T/hosts/n1/state/services")"
  wait_until 15 host_runs n1 2.0 || fail "host not on 2.0: $(cat "$SHARE/hosts/n1/status")"
  assert_eq "$(svc_pid n1 a)" "$a" "a (core) keeps its pid"
  assert_eq "$(svc_pid n1 b)" "$b" "b (core+plugin) keeps its pid"
  assert_eq "$(svc_version n1 b)" 1.0 "b runs on from its old run tree"
  assert_eq "$(svc_change n1 b)" unchanged "b reports unchanged"
  assert_eq "$(svc_change n1 c)" replaced "c reports replaced"
  grep -q "services: a unchanged, b unchanged, c replaced" "$T/hosts/n1/watchdog.log" || fail "plan not logged"
  [ -d "$T/hosts/n1/state/cache/1.0" ] || fail "the run tree b runs from was pruned"
}

test_a_release_changing_core_keeps_c_running() {
  begin; modules_fleet
  local c
  c=$(svc_pid n1 c)
  mod_release 2.0 two one
  mpush 2.0
  wait_until 15 all_svc_on_but_c n1 2.0 || fail "a and b not on 2.0: $(cat "$T/hosts/n1/state/services")"
  assert_eq "$(svc_pid n1 c)" "$c" "c (ui) keeps its pid"
  assert_eq "$(svc_change n1 b)" replaced "b (runs core) is replaced"
  assert_eq "$(svc_change n1 c)" unchanged "c unchanged"
}
test_cron_ticks_run_the_services_and_restart_only_what_changed() {
  begin
  add_services_host k1
  sed -i "s/^poll_interval: 100ms/poll_interval: 100ms/" "$T/hosts/k1/watchdog.yaml"
  ( while :; do "$WATCHDOG" check -q -c "$T/hosts/k1/watchdog.yaml" >>"$T/hosts/k1/watchdog.log" 2>&1; sleep 0.2; done ) &
  local loop=$!
  mod_release 1.0 one one
  mpush 1.0 || { kill $loop; fail "push 1.0"; }
  wait_until 20 all_svc_on k1 1.0 || { kill $loop; fail "cron: services not all on 1.0: $(cat "$T/hosts/k1/state/services")"; }
  wait_until 10 svc_running k1 b || { kill $loop; fail "cron: b not running"; }
  local a b c
  a=$(svc_pid k1 a); b=$(svc_pid k1 b); c=$(svc_pid k1 c)
  kill -KILL "$c"
  wait_until 10 pid_changed k1 c "$c" || { kill $loop; fail "cron: c not restarted by a later tick"; }
  assert_eq "$(svc_pid k1 a)" "$a" "a untouched by c's crash" || { kill $loop; return 1; }
  assert_eq "$(svc_pid k1 b)" "$b" "b untouched by c's crash" || { kill $loop; return 1; }
  c=$(svc_pid k1 c)
  mod_release 2.0 one two
  mpush 2.0 || { kill $loop; fail "push 2.0"; }
  wait_until 20 svc_on k1 c 2.0 || { kill $loop; fail "cron: c not on 2.0"; }
  kill $loop; wait $loop 2>/dev/null || true
  assert_eq "$(svc_pid k1 a)" "$a" "a keeps its pid across ticks"
  assert_eq "$(svc_pid k1 b)" "$b" "b keeps its pid across ticks"
}

test_validate_names_the_services_and_refuses_agent_with_services() {
  begin
  add_services_host v1
  local out rc
  out=$("$WATCHDOG" validate -c "$T/hosts/v1/watchdog.yaml" 2>&1)
  assert_contains "$out" "; services a, b, c)"
  printf 'agent:\n  command: [bin/agent]\n' >> "$T/hosts/v1/watchdog.yaml"
  set +e; out=$("$WATCHDOG" validate -c "$T/hosts/v1/watchdog.yaml" 2>&1); rc=$?; set -e
  assert_eq "$rc" 2 "agent with services: usage exit code"
  assert_eq "$(wc -l <<<"$out")" 1 "one line"
  assert_contains "$out" "$T/hosts/v1/watchdog.yaml:8:3: 'agent' and 'services' cannot both be given"
}

all_svc_on_but_c() { svc_on "$1" a "$2" && svc_on "$1" b "$2"; }

run_tests
