# Shared helpers for nfsup's black-box integration tests (bash).
# Each test script sources this, defines test_* functions and calls run_tests.
# Binaries come from $NFSUP_BUILD (meson passes the build's src dir).
set -u
NFSUP_BUILD=${NFSUP_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build/src" && pwd)}
FIXTURES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures" && pwd)
INSTALL="$NFSUP_BUILD/nfsup-install"
WATCHDOG="$NFSUP_BUILD/nfsup-watchdog"
RECONFIG="$NFSUP_BUILD/nfsup-reconfig"
# Fast protocol timings for tests.
MASTER_OPTS=(--stale-after 4s --lease 2s --timeout 60s)

T=""            # the test's temp dir
SHARE=""        # the share root (a local directory unless a test sets FLEET_MNT)
declare -a HOSTS=()
declare -A WD_PID=()
declare -A HOST_SHARE=()   # path under which a host sees the share (its own mount in the sshfs harness)

_fail_msgs=()
fail() { _fail_msgs+=("$*"); echo "    FAIL: $*" >&2; return 1; }
assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"; }
assert_contains() { grep -qF -- "$2" <<<"$1" || fail "${3:-missing text}: expected to contain '$2', got: $(head -c 600 <<<"$1")"; }
assert_file_eq() { [ "$(cat "$1")" == "$2" ] || fail "$1: expected '$2', got '$(cat "$1")'"; }

# wait_until SECONDS CMD...: polls CMD every 0.1s until it succeeds.
wait_until() {
  local limit=$1; shift
  local end=$(( $(date +%s%N) + limit * 1000000000 ))
  while (( $(date +%s%N) < end )); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  "$@" >/dev/null 2>&1
}

new_env() {
  T=$(mktemp -d /tmp/nfsup-it.XXXXXX)
  SHARE=${1:-$T/share}
  mkdir -p "$SHARE"
  "$INSTALL" init --local "$SHARE" >/dev/null
  mkdir -p "$T/rel"
}

# make_release NAME [extra-file-content]: a release tree with bin/agent.
make_release() {
  local d="$T/rel/$1"
  mkdir -p "$d/bin"
  cp "$FIXTURES/fake-agent" "$d/bin/agent"
  echo "release $1 ${2:-}" > "$d/VERSION"
  echo "$d"
}

# add_host NAME [mode] [share-path-for-this-host]
add_host() {
  local h=$1 mode=${2:-daemon} hshare=${3:-$SHARE}
  HOSTS+=("$h")
  HOST_SHARE[$h]=$hshare
  mkdir -p "$T/hosts/$h/state"
  echo "level: one" > "$T/hosts/$h/agent.yaml"
  cat > "$T/hosts/$h/watchdog.yaml" <<EOC
share: $hshare
host: $h
poll_interval: ${POLL:-100ms}
heartbeat_interval: 500ms
share_timeout: ${SHARE_TIMEOUT:-3s}
state_dir: $T/hosts/$h/state
agent:
  command: [bin/agent, "{config}"]
  config: $T/hosts/$h/agent.yaml
  stop_timeout: 2s
  start_grace: 300ms
  restart_limit: 3
  restart_window: 60s
  reconfig_timeout: 5s
EOC
  # RUN_FROM=share runs a suite in the single-copy mode (agents run from the share).
  if [ -n "${RUN_FROM:-}" ]; then echo "run_from: $RUN_FROM" >> "$T/hosts/$h/watchdog.yaml"; fi
}

start_watchdog() {
  local h=$1
  "$WATCHDOG" run -c "$T/hosts/$h/watchdog.yaml" >>"$T/hosts/$h/watchdog.log" 2>&1 &
  WD_PID[$h]=$!
}

stop_watchdog() {
  local h=$1
  [ -n "${WD_PID[$h]:-}" ] || return 0
  kill -TERM "${WD_PID[$h]}" 2>/dev/null
  wait "${WD_PID[$h]}" 2>/dev/null
  WD_PID[$h]=""
}

# start_all: every host's daemon, then waits (up to 10 s) until each has written a status, so
# that a push right after it sees them live (a push that finds no live host fails).
start_all() {
  local h
  for h in "${HOSTS[@]}"; do start_watchdog "$h"; done
  for h in "${HOSTS[@]}"; do wait_until 10 test -s "$SHARE/hosts/$h/status" || true; done
}

host_field() {  # host_field HOST FIELD -> value from the host's status file
  awk -v k="$2" '$1==k {print $2}' "$SHARE/hosts/$1/status" 2>/dev/null
}
host_runs() { [ "$(host_field "$1" state)" == running ] && [ "$(host_field "$1" running)" == "$2" ]; }
all_run() { local v=$1 h; for h in "${HOSTS[@]}"; do host_runs "$h" "$v" || return 1; done; }
agent_alive_version() {  # the version the host's live agent process reports
  local h=$1 pid
  pid=$(awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state" 2>/dev/null)
  [ -n "$pid" ] && [ "$pid" != 0 ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's/^NFSUP_VERSION=//p'
}

alive_is() { [ "$(agent_alive_version "$1")" == "$2" ]; }  # alive_is HOST VERSION

share_snapshot() {  # a listing of everything on the share except host status files
  (cd "$SHARE" && find . -path ./hosts -prune -o -print | LC_ALL=C sort; cat current 2>/dev/null; cat MARKER 2>/dev/null; true)
}

cleanup_env() {
  set +e
  local h pid
  for h in "${!WD_PID[@]}"; do stop_watchdog "$h"; done
  # Agents of cron-mode hosts are detached: stop them by their recorded pids.
  for h in "${HOSTS[@]}"; do
    pid=$(awk '$1=="agent" {print $2}' "$T/hosts/$h/state/state" 2>/dev/null)
    [ -n "$pid" ] && [ "$pid" != 0 ] && kill -KILL -- "-$pid" 2>/dev/null
    # ... and the other services of a host that runs several (t_services.sh).
    for pid in $(awk '$1=="service" {print $3}' "$T/hosts/$h/state/services" 2>/dev/null); do
      [ "$pid" != 0 ] && kill -KILL -- "-$pid" 2>/dev/null
    done
  done
  HOSTS=(); WD_PID=(); HOST_SHARE=()
  if [ -n "$T" ] && [ -z "${KEEP:-}" ]; then rm -rf "$T"; fi
  T=""
}

run_tests() {
  local passed=0 failed=0 t names
  names=$(declare -F | awk '{print $3}' | grep '^test_' | grep -E -- "${ONLY:-.}")
  for t in $names; do
    _fail_msgs=()
    echo "--- $t"
    local start=$SECONDS
    set +e
    ( trap cleanup_env EXIT; set -e; "$t" )
    rc=$?
    if [ $rc -eq 0 ]; then
      passed=$((passed + 1)); echo "ok   $t ($((SECONDS - start))s)"
    else
      failed=$((failed + 1)); echo "FAIL $t ($((SECONDS - start))s)"
    fi
  done
  echo "$passed passed, $failed failed"
  [ $failed -eq 0 ]
}

# Each test runs in a subshell; make every failed assertion fail the test and always clean up.
begin() { new_env "$@"; }

# master_killed_at POINT ARGS...: runs nfsup-install ARGS with NFSUP_CRASH_AT=POINT (it kills
# itself there) and checks that it died there.
master_killed_at() {
  local point=$1 rc; shift
  set +e; NFSUP_CRASH_AT=$point "$INSTALL" "$@" -q; rc=$?; set -e
  assert_eq "$rc" 137 "nfsup-install killed at $point"
}
