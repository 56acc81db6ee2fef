#!/usr/bin/env bash
# Releases made of modules: classes get their own module sets, unchanged modules are not copied
# again, votes and vetoes, targets, cross-host dependency checks, rollback, prune.
source "$(dirname "$0")/lib.sh"

module_release() {  # module_release VERSION [store-api version consumed by 'plugin']
  local d="$T/rel/$1"
  mkdir -p "$d/bin" "$d/plugins/edge" "$d/gpu"
  cp "$FIXTURES/fake-agent" "$d/bin/agent"
  echo "edge plugin $1" > "$d/plugins/edge/plugin.so"
  echo "gpu kernels $1" > "$d/gpu/kernels.bin"
  cat > "$T/modules-$1.yaml" <<EOM
modules:
  core:   {paths: [bin], provides: {agent-api: "2"}}
  edge:   {paths: [plugins/edge], depends: {core: "1.0"}, consumes: {agent-api: "2"${2:+, store-api: \"$2\"}}}
  gpu:    {paths: [gpu], depends: {core: "1.0"}, provides: {store-api: "1"}}
classes:
  edge: [core, edge]
  gpu:  {modules: [core, gpu], match: {accel: cuda}}
EOM
  echo "$d"
}
mpush() { local v=$1; shift; "$INSTALL" push "$SHARE" "$T/rel/$v" --version "$v" --modules "$T/modules-$v.yaml" "${MASTER_OPTS[@]}" --vote-timeout 10s "$@"; }

classes_fleet() {
  add_host e1; add_host e2; add_host g1
  for h in e1 e2; do sed -i "s/^host: $h$/host: $h\nclass: edge/" "$T/hosts/$h/watchdog.yaml"; done
  sed -i "s/^host: g1$/host: g1\ntraits: {accel: cuda, arch: x86_64}/" "$T/hosts/g1/watchdog.yaml"
  start_all
  module_release 1.0 >/dev/null
  mpush 1.0 -q
  wait_until 15 all_run 1.0 || fail "fleet not on 1.0"
}

agent_pid() { awk '$1=="agent" {print $2}' "$T/hosts/$1/state/state"; }

test_classes_get_their_own_module_sets() {
  begin; classes_fleet
  # Each runs its class's tree: from the share (run_from: share) or its local copy of it.
  local e1t g1t
  e1t=$(readlink /proc/$(agent_pid e1)/cwd); g1t=$(readlink /proc/$(agent_pid g1)/cwd)
  if [ "${RUN_FROM:-local}" = share ]; then
    assert_eq "$e1t" "$SHARE/releases/1.0/.nfsup/class/edge" "e1 runs the edge tree"
    assert_eq "$g1t" "$SHARE/releases/1.0/.nfsup/class/gpu" "g1 (traits) runs the gpu tree"
  else
    assert_eq "$e1t" "$T/hosts/e1/state/cache/1.0" "e1 runs its local tree"
    assert_eq "$g1t" "$T/hosts/g1/state/cache/1.0" "g1 runs its local tree"
  fi
  [ -f "$e1t/plugins/edge/plugin.so" ] && [ ! -e "$e1t/gpu" ] || fail "e1's tree is not the edge class's: $(cd "$e1t" && find . | head)"
  [ -e "$g1t/gpu" ] && [ ! -e "$g1t/plugins" ] || fail "g1's tree is not the gpu class's: $(cd "$g1t" && find . | head)"
  [ -f "$SHARE/releases/1.0/.nfsup/class/edge/plugins/edge/plugin.so" ] || fail "edge tree lacks its plugin"
  [ ! -e "$SHARE/releases/1.0/.nfsup/class/edge/gpu" ] || fail "edge tree has the gpu module"
  [ ! -e "$SHARE/releases/1.0/.nfsup/class/gpu/plugins" ] || fail "gpu tree has the edge module"
  grep -qx "module edge 1.0" "$SHARE/hosts/e1/status" || fail "e1 does not report its modules"
  grep -qx "module gpu 1.0" "$SHARE/hosts/g1/status" || fail "g1 does not report its modules"
  grep -q "^module edge" "$SHARE/hosts/g1/status" && fail "g1 reports a module it does not run"
  # The modules a host runs are kept in its local state: a restarted watchdog still reports them.
  stop_watchdog e1; start_watchdog e1
  wait_until 15 host_runs e1 1.0 || fail "e1 did not come back on 1.0"
  assert_eq "$(host_field e1 pid)" "${WD_PID[e1]}" "status written by the restarted watchdog"
  grep -qx "module edge 1.0" "$SHARE/hosts/e1/status" || fail "e1 does not report its modules after a restart"
  st=$("$INSTALL" status "$SHARE" --json)
  assert_contains "$st" '"class":"edge"'
  # A class tree is verified before start: tampering the gpu module stops g1, not e1.
  "$INSTALL" verify "$SHARE" -q
}

test_fifty_modules_one_changed_writes_under_five_percent() {
  begin
  local d="$T/rel/big" i
  mkdir -p "$d"
  printf 'modules:\n' > "$T/m50.yaml"
  for i in $(seq -w 1 50); do
    mkdir -p "$d/m$i"; head -c 200000 /dev/urandom > "$d/m$i/data.bin"
    printf '  m%s: {paths: [m%s]}\n' "$i" "$i" >> "$T/m50.yaml"
  done
  out=$("$INSTALL" push "$SHARE" "$d" --version 1.0 --modules "$T/m50.yaml" --no-wait 2>&1 -v)
  head -c 200000 /dev/urandom > "$d/m17/data.bin"
  out=$("$INSTALL" push "$SHARE" "$d" --version 1.1 --modules "$T/m50.yaml" --no-wait -v 2>&1)
  line=$(grep "staged 1.1" <<<"$out")
  total=$(sed -E 's/.*: ([0-9]+) bytes, ([0-9]+) written.*/\1/' <<<"$line")
  written=$(sed -E 's/.*: ([0-9]+) bytes, ([0-9]+) written.*/\2/' <<<"$line")
  [ -n "$written" ] && [ "$total" -gt 0 ] || fail "no staging line: $out"
  pct=$(( written * 1000 / total ))
  echo "    re-push of 50 modules with one changed: $written of $total bytes written ($((pct / 10)).$((pct % 10))%)"
  [ "$pct" -lt 50 ] || fail "wrote $written of $total bytes"
  m1=$(grep "^module m17 " "$SHARE/releases/1.0/.nfsup/manifest" | cut -d' ' -f4)
  m2=$(grep "^module m17 " "$SHARE/releases/1.1/.nfsup/manifest" | cut -d' ' -f4)
  [ "$m1" != "$m2" ] || fail "m17's module hash did not change"
  assert_eq "$(grep "^module m03 " "$SHARE/releases/1.0/.nfsup/manifest" | cut -d' ' -f4)" \
            "$(grep "^module m03 " "$SHARE/releases/1.1/.nfsup/manifest" | cut -d' ' -f4)" "unchanged module hash"
}

test_veto_stops_the_upgrade_before_any_host_stops() {
  begin; classes_fleet
  mkdir -p "$T/checks"
  printf '#!/bin/sh\necho "batch job 42 running; changing: $NFSUP_MODULES_CHANGING"\nexit 1\n' > "$T/checks/10-batch"
  chmod +x "$T/checks/10-batch"
  printf 'checks_dir: %s/checks\n' "$T" >> "$T/hosts/e2/watchdog.yaml"
  stop_watchdog e2; start_watchdog e2
  wait_until 10 host_runs e2 1.0
  declare -A before=(); for h in e1 e2 g1; do before[$h]=$(agent_pid $h); done
  module_release 2.0 >/dev/null
  set +e; out=$(mpush 2.0 2>&1); rc=$?; set -e
  assert_eq "$rc" 5 "exit code when vetoed"
  assert_contains "$out" "vetoed before any host stopped"
  assert_contains "$out" "e2: 10-batch: batch job 42 running; changing: edge"
  for h in e1 e2 g1; do assert_eq "$(agent_pid $h)" "${before[$h]}" "$h agent untouched"; done
  [ ! -e "$SHARE/MARKER" ] || fail "marker left after a veto"
  assert_eq "$(awk '$1=="release" {print $2}' "$SHARE/current")" 1.0
  ls "$SHARE/audit" | grep -q vetoed || "$INSTALL" history "$SHARE" | grep -q vetoed || fail "veto not audited"
  # --skip-vetoed: everyone but e2 moves.
  out=$(mpush 2.0 --skip-vetoed 2>&1) || fail "skip-vetoed push failed: $out"
  for h in e1 g1; do host_runs $h 2.0 || fail "$h not on 2.0"; done
  assert_eq "$(agent_pid e2)" "${before[e2]}" "e2 untouched by --skip-vetoed"
  assert_eq "$(host_field e2 running)" 1.0
  # --force: e2 too.
  out=$(mpush 2.0 --force 2>&1) || fail "forced push failed: $out"
  wait_until 10 host_runs e2 2.0 || fail "e2 not on 2.0 after --force"
  "$INSTALL" history "$SHARE" | grep -q "forced" || fail "--force not audited"
}

test_targets_hosts_and_class() {
  begin; classes_fleet
  module_release 2.0 >/dev/null
  g1pid=$(agent_pid g1); e2pid=$(agent_pid e2)
  out=$(mpush 2.0 --hosts e1 2>&1) || fail "push --hosts failed: $out"
  host_runs e1 2.0 || fail "e1 not on 2.0"
  assert_eq "$(agent_pid g1)" "$g1pid" "g1 untouched"; assert_eq "$(agent_pid e2)" "$e2pid" "e2 untouched"
  assert_contains "$(cat "$SHARE/current")" "host e1 2.0"
  module_release 3.0 >/dev/null
  out=$(mpush 3.0 --class edge 2>&1) || fail "push --class failed: $out"
  for h in e1 e2; do host_runs $h 3.0 || fail "$h not on 3.0"; done
  assert_eq "$(agent_pid g1)" "$g1pid" "g1 (class gpu) untouched by --class edge"
  assert_eq "$(awk '$1=="acting" {print $2}' "$SHARE/current")" 1.0 "acting = lowest installed"
  # Rollback of part of the fleet, configs restored.
  printf '#!/bin/sh\necho "level: four" > "$NFSUP_CONFIG"\n' > "$T/m4.sh"; chmod +x "$T/m4.sh"
  module_release 4.0 >/dev/null
  mpush 4.0 --reconfig "$T/m4.sh" -q
  for h in e1 e2 g1; do assert_file_eq "$T/hosts/$h/agent.yaml" "level: four"; done
  out=$("$INSTALL" rollback "$SHARE" --to 3.0 --hosts e1,e2 "${MASTER_OPTS[@]}" --vote-timeout 10s 2>&1) || fail "partial rollback: $out"
  for h in e1 e2; do host_runs $h 3.0 || fail "$h not back on 3.0"; assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"; done
  host_runs g1 4.0 || fail "g1 should stay on 4.0"
}

test_broken_cross_host_dependency_fails_the_push() {
  begin; classes_fleet
  # 2.0's edge module consumes store-api >= 2, but the gpu module (the only provider) offers 1.
  module_release 2.0 2 >/dev/null
  set +e; out=$(mpush 2.0 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "push exit code with a broken dependency"
  assert_contains "$out" "dependency: e1: module edge consumes API store-api >= 2, but live hosts provide only 1"
  assert_contains "$("$INSTALL" status "$SHARE")" "DEPENDENCY: e2: module edge consumes API store-api >= 2"
  # A rolling push checks the same once its last batch has moved.
  module_release 3.0 2 >/dev/null
  set +e; out=$(mpush 3.0 --strategy rolling --batch 2 2>&1); rc=$?; set -e
  assert_eq "$rc" 1 "rolling push exit code with a broken dependency"
  assert_contains "$out" "dependency: e1: module edge consumes API store-api >= 2, but live hosts provide only 1"
}

test_unchanged_modules_skip_the_restart() {
  begin; classes_fleet
  # 2.0 changes only the gpu module: edge hosts keep their agent, g1 restarts.
  cp -a "$T/rel/1.0" "$T/rel/2.0"; cp "$T/modules-1.0.yaml" "$T/modules-2.0.yaml"
  echo "gpu kernels 2.0" > "$T/rel/2.0/gpu/kernels.bin"
  declare -A before=(); for h in e1 e2 g1; do before[$h]=$(agent_pid $h); done
  out=$(mpush 2.0 2>&1) || fail "push failed: $out"
  assert_contains "$out" "3 host(s) ok, 0 failed"
  for h in e1 e2; do
    assert_eq "$(agent_pid $h)" "${before[$h]}" "$h agent not restarted"
    assert_eq "$(host_field $h running)" 2.0 "$h reports 2.0"
    grep -qx "runs_from 1.0" "$SHARE/hosts/$h/status" || fail "$h does not report where its agent runs from"
  done
  [ "$(agent_pid g1)" != "${before[g1]}" ] || fail "g1 was not restarted although its gpu module changed"
  # prune keeps 1.0: the edge agents still run from it.
  out=$("$INSTALL" prune "$SHARE" --keep 1 2>&1)
  [ -d "$SHARE/releases/1.0" ] || fail "pruned 1.0 while agents run from it"
}

test_rollback_with_unchanged_modules_restores_the_config() {
  begin; classes_fleet
  # 2.0 has the same modules and a reconfig script: every host restarts and its config is
  # rewritten. Back to 1.0 (same modules, no script) the backup of 1.0's config must come
  # back, and the agent restart to read it, although no module changes.
  cp -a "$T/rel/1.0" "$T/rel/2.0"; cp "$T/modules-1.0.yaml" "$T/modules-2.0.yaml"
  printf '#!/bin/sh\nsed -i "s/^level: .*/level: two/" "$NFSUP_CONFIG"\n' > "$T/migrate.sh"; chmod +x "$T/migrate.sh"
  out=$(mpush 2.0 --reconfig "$T/migrate.sh" 2>&1) || fail "push 2.0 failed: $out"
  for h in e1 e2 g1; do assert_file_eq "$T/hosts/$h/agent.yaml" "level: two"; done
  declare -A before=(); for h in e1 e2 g1; do before[$h]=$(agent_pid $h); done
  out=$("$INSTALL" rollback "$SHARE" --to 1.0 "${MASTER_OPTS[@]}" 2>&1) || fail "rollback failed: $out"
  assert_contains "$out" "3 host(s) ok, 0 failed"
  for h in e1 e2 g1; do
    assert_file_eq "$T/hosts/$h/agent.yaml" "level: one"
    [ "$(agent_pid $h)" != "${before[$h]}" ] || fail "$h kept the agent that read the 2.0 config"
    grep -q "level: one" <(tail -1 "$T/hosts/$h/state/agent.log") || fail "$h agent did not start with 1.0's config: $(tail -1 "$T/hosts/$h/state/agent.log")"
  done
}

test_prune_keeps_what_is_in_use() {
  begin; classes_fleet
  for v in 2.0 3.0 4.0 5.0; do module_release $v >/dev/null; done
  mpush 2.0 -q; mpush 3.0 -q              # current 3.0, rollback target 2.0
  mpush 4.0 --hosts g1 -q; mpush 5.0 --hosts e1 -q   # g1 runs 4.0, e1 5.0, e2 3.0
  out=$("$INSTALL" prune "$SHARE" --keep 1 2>&1)
  assert_contains "$out" "deleted 1.0"
  assert_contains "$out" "kept 2.0 (rollback target)"
  assert_contains "$out" "kept 4.0 ("
  for v in 2.0 3.0 4.0 5.0; do [ -d "$SHARE/releases/$v" ] || fail "pruned $v which is in use"; done
  [ ! -e "$SHARE/releases/1.0" ] || fail "1.0 not pruned"
  "$INSTALL" verify "$SHARE" -q || fail "verify after prune"
  for h in e1 e2 g1; do kill -0 "$(agent_pid $h)" || fail "$h agent died"; done
}

# On NFS, a file of a release still open on the pruning client is silly-renamed (.nfsXXXX) when
# prune deletes it, so the release's tree (already renamed out of sight) cannot be removed then.
# The next prune must finish it (found by the real-NFS suite, test/nfs/t_nfs.sh).
test_prune_finishes_what_an_earlier_prune_left() {
  begin
  local left="$SHARE/releases/.deleting-0.9.oldhost.4242"
  mkdir -p "$left/bin"
  : > "$left/bin/.nfs0000000000a1b2c300000001"
  out=$("$INSTALL" prune "$SHARE" --keep 1 2>&1) || fail "prune failed: $out"
  [ ! -e "$left" ] || fail "prune left the tree an earlier prune could not finish"
  assert_contains "$out" "removed .deleting-0.9.oldhost.4242"
  "$INSTALL" verify "$SHARE" -q || fail "verify after prune"
}

run_tests
