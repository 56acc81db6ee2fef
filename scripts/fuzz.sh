#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (the files on the share, the watchdog config) with
# libFuzzer + ASan + UBSan, SECONDS per target (default 10; a longer run: scripts/fuzz.sh 600).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: record marker pointer status manifest signature config
#
# Builds with clang in ./build-fuzz (meson -Dfuzz=true; the normal ./build stays g++), installs
# clang and its fuzzer runtime if they are missing (as root, with apt-get), then runs each target
# over a fresh copy of test/fuzz/corpus/<target>/ plus test/fuzz/regressions/<target>/.
# A target passes if it ran its time without a crash, sanitizer report, leak, timeout or OOM.
# Whatever fails is saved under build-fuzz/fuzz-artifacts/<target>/; replay one with
#   build-fuzz/test/fuzz/fuzz_<target> FILE
# and keep a minimal copy in test/fuzz/regressions/<target>/ so every test run replays it.
#
# FUZZ_KEEP_GOING=1 keeps fuzzing after a crash (libFuzzer -fork=1 -ignore_crashes=1) and
# counts the artifacts; FUZZ_JOBS=N runs N targets at once (default 1).
# Ends with one line "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-10}
shift || true
case "$SECS" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
ALL=(record marker pointer status manifest signature config)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [ -f "test/fuzz/fuzz_$t.cpp" ] || { echo "fuzz.sh: unknown target '$t' (have: ${ALL[*]})" >&2; exit 2; }
done

# ---- toolchain: clang, libFuzzer runtime, the build dependencies
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz.sh: missing $*; install with: sudo apt-get install $*" >&2
    exit 1
  fi
  echo "fuzz.sh: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "$@" >/tmp/nfsup-fuzz-apt.log 2>&1; then
    apt-get update -qq >>/tmp/nfsup-fuzz-apt.log 2>&1 || true
    apt-get install -y -qq "$@" >>/tmp/nfsup-fuzz-apt.log 2>&1 || {
      echo "fuzz.sh: apt-get install failed; see /tmp/nfsup-fuzz-apt.log" >&2; exit 1; }
  fi
}
scripts/deps.sh build
command -v clang++ >/dev/null || apt_install clang
fuzzer_rt() { echo "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"; }
if [ ! -f "$(fuzzer_rt)" ]; then
  ver=$(clang++ --version | sed -nE 's/.*clang version ([0-9]+).*/\1/p' | head -1)
  apt_install "libclang-rt-${ver:-14}-dev"
  [ -f "$(fuzzer_rt)" ] || { echo "fuzz.sh: no libFuzzer runtime at $(fuzzer_rt)" >&2; exit 1; }
fi

# ---- build
B=build-fuzz
if [ ! -f "$B/build.ninja" ]; then
  CXX=clang++ meson setup "$B" -Dfuzz=true >/dev/null
elif ! meson configure "$B" 2>/dev/null | grep -qE '^\s*fuzz\s+true'; then
  meson configure "$B" -Dfuzz=true >/dev/null
fi
exes=()
for t in "${TARGETS[@]}"; do exes+=("test/fuzz/fuzz_$t"); done
if ! ninja -C "$B" "${exes[@]}" >"$B/fuzz-build.log" 2>&1; then
  tail -30 "$B/fuzz-build.log" >&2
  echo "fuzz.sh: build failed (full log: $B/fuzz-build.log)" >&2
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

# ---- run
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
WORK=$B/fuzz-work
ART=$B/fuzz-artifacts

run_target() {
  local t=$1 work=$WORK/$t art=$ART/$t log=$WORK/$t.log
  rm -rf "$work"
  mkdir -p "$work" "$art"
  cp -r "test/fuzz/corpus/$t/." "$work/"
  local dirs=("$work")
  [ -d "test/fuzz/regressions/$t" ] && dirs+=("test/fuzz/regressions/$t")
  local extra=()
  [ -n "${FUZZ_KEEP_GOING:-}" ] && extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  local rc=0
  ( cd "$ROOT" && "$B/test/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=1024 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$art/" "${extra[@]}" "${dirs[@]}" ) >"$log" 2>&1 || rc=$?
  echo "$rc" >"$WORK/$t.rc"
}

mkdir -p "$WORK"
jobs_max=${FUZZ_JOBS:-1}
for t in "${TARGETS[@]}"; do
  rm -f "$ART/$t"/* 2>/dev/null || true
  run_target "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
done
wait

passed=0
failed=0
printf '%-14s %-6s %12s %10s %6s %7s\n' target result execs exec/s cov corpus
for t in "${TARGETS[@]}"; do
  log=$WORK/$t.log
  rc=$(cat "$WORK/$t.rc")
  # Executions: the final stats, or (fork mode) the last status line.
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  [ -z "$execs" ] && execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  [ -z "$rate" ] && rate=$(sed -nE 's/.*exec\/s:? ([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(find "$WORK/$t" -type f | wc -l)
  artifacts=$(find "$ART/$t" -type f 2>/dev/null | wc -l)
  if [ "$rc" -eq 0 ] && [ "$artifacts" -eq 0 ]; then
    result=PASS
    passed=$((passed + 1))
  else
    result=FAIL
    failed=$((failed + 1))
  fi
  printf '%-14s %-6s %12s %10s %6s %7s\n' "fuzz_$t" "$result" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corp"
  if [ "$result" = FAIL ]; then
    grep -m3 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|property failed|terminate called|what\(\):' "$log" \
      | sed 's/^/    /' || true
    find "$ART/$t" -type f | head -5 | sed 's/^/    artifact: /'
    echo "    log: $log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
