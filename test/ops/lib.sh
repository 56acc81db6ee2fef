# Shared helpers for the operator-experience tests in test/ops (bash).
# A script sources this, defines check_* functions, and ends with `run_checks`. That runs each
# function in order (each in a subshell with `set -e`, so a failing step ends only its check),
# counts the results, and prints "N passed, M failed" as its last line. A check passes with
# status 0, fails with status 1, and is skipped with status 77 after it prints why.
set -u
OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFSUP_SRC=${NFSUP_SRC:-$(cd "$OPS_DIR/../.." && pwd)}
NFSUP_BUILD=${NFSUP_BUILD:-$NFSUP_SRC/build/src}
INSTALL="$NFSUP_BUILD/nfsup-install"
WATCHDOG="$NFSUP_BUILD/nfsup-watchdog"
RECONFIG="$NFSUP_BUILD/nfsup-reconfig"
FIXTURES="$NFSUP_SRC/test/fixtures"

# One temp dir per script; removed at exit unless NFSUP_KEEP_TMP=1.
TMP=$(mktemp -d /tmp/nfsup-ops.XXXXXX)
# on_exit CMD: run CMD when the current check ends (or the script exits), last one first.
# Kept in a file, because each check runs in a subshell.
on_exit() { printf '%s\n' "$*" >>"$TMP/.cleanup"; }
_run_cleanups() {
  [ -s "$TMP/.cleanup" ] || return 0
  local c
  while IFS= read -r c; do eval "$c" >/dev/null 2>&1 || true; done < <(tac "$TMP/.cleanup")
  : >"$TMP/.cleanup"
}
_at_exit() {
  _run_cleanups
  if [ "${NFSUP_KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap _at_exit EXIT

fail() { echo "    FAIL: $*" >&2; return 1; }
skip() { echo "    SKIP: $*" >&2; return 77; }
assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"; }
assert_contains() {
  grep -qF -- "$2" <<<"$1" || fail "${3:-missing text}: expected to contain '$2', got: $(head -c 800 <<<"$1")"
}

# wait_until SECONDS CMD...: runs CMD every 0.1s until it succeeds or the time is up.
wait_until() {
  local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while (( $(date +%s%N) < end )); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  "$@" >/dev/null 2>&1
}

# need_cmd CMD PACKAGE: makes sure CMD exists, installing PACKAGE with apt-get as root.
# Returns non-zero (and says why) when it cannot.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then echo "    $1 is missing; install it with: sudo apt-get install $2" >&2; return 1; fi
  echo "    installing $2 for $1" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$2" >"$TMP/apt.log" 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$TMP/apt.log" 2>&1 && apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$2" >>"$TMP/apt.log" 2>&1; } \
    || { tail -5 "$TMP/apt.log" >&2; return 1; }
  command -v "$1" >/dev/null 2>&1
}

# new_share DIR: an initialised nfsup share made with the built nfsup-install.
new_share() {
  mkdir -p "$1" && "$INSTALL" init --local "$1" >/dev/null
}

# make_release DIR LABEL: a release tree whose bin/agent is the test fixture agent.
make_release() {
  mkdir -p "$1/bin"
  cp "$FIXTURES/fake-agent" "$1/bin/agent"
  echo "release $2" >"$1/VERSION"
}

run_checks() {
  local passed=0 failed=0 skipped=0 f rc
  # In the order they appear in the script. Each runs in a subshell with `set -e`: the first
  # failing command fails the check (expected failures are written as `cmd || rc=$?`).
  for f in $(grep -oE '^check_[A-Za-z0-9_]+' "${BASH_SOURCE[1]}"); do
    echo "--- ${f#check_}" >&2
    ( set -eu; "$f" )
    rc=$?
    _run_cleanups
    case $rc in
      0) passed=$((passed + 1)); echo "ok   ${f#check_}" ;;
      77) skipped=$((skipped + 1)); echo "skip ${f#check_}" ;;
      *) failed=$((failed + 1)); echo "FAIL ${f#check_} (status $rc)" ;;
    esac
  done
  if [ $skipped -gt 0 ]; then echo "($skipped skipped)"; fi
  echo "$passed passed, $failed failed"
  if [ $failed -gt 0 ]; then exit 1; fi
  if [ $passed -eq 0 ] && [ $skipped -gt 0 ]; then exit 77; fi  # meson: SKIP
  exit 0
}
