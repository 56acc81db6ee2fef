#!/usr/bin/env bash
# Performance figures for nfsup, each against a peer measured in the same run on the same
# machine: a cron tick against a POSIX sh one-liner and `monit validate`, the idle daemon
# against monit's daemon and a minimal C poller, reaction times on 100 local hosts and 8 sshfs
# hosts, rolling batches, push throughput against cp + sha256sum, `status` on 10,000 hosts,
# and the push's peak memory. Prints a table and writes it to bench-results/latest.md.
#
# Usage: scripts/bench.sh            (as root it apt-get installs what is missing)
# Knobs: BENCH_TICKS=200 BENCH_IDLE_S=20 BENCH_HOSTS=100 BENCH_ROLL_HOSTS=12
#        BENCH_ROLL_BATCHES="1 3 6" BENCH_SSHFS=auto|0 BENCH_SSHFS_HOSTS=8 BENCH_CACHE_S=3
#        BENCH_PUSH_MIB=512 BENCH_PUSH_ROUNDS=3 BENCH_STATUS_HOSTS="1000 5000 10000"
#        BENCH_BUILD_DIR=build-bench  BENCH_STATIC=1 (0: default dynamic linking)
#        BENCH_ONLY="1 2 4 4s 5 6 st" (parts to run: 2 includes 3, 4s = sshfs, 5 includes 7,
#        st = the local store: scripts/bench-store.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HELPER="$ROOT/scripts/bench-helper.py"
FIXTURES="$ROOT/test/fixtures"
T_ALL=$(date +%s%N)

: "${BENCH_TICKS:=200}" "${BENCH_IDLE_S:=20}" "${BENCH_HOSTS:=100}" "${BENCH_ROLL_HOSTS:=12}"
: "${BENCH_ROLL_BATCHES:=1 3 6}" "${BENCH_SSHFS:=auto}" "${BENCH_SSHFS_HOSTS:=8}" "${BENCH_CACHE_S:=3}"
: "${BENCH_PUSH_MIB:=512}" "${BENCH_PUSH_ROUNDS:=3}" "${BENCH_STATUS_HOSTS:=1000 5000 10000}"
: "${BENCH_BUILD_DIR:=build-bench}" "${BENCH_STATIC:=1}" "${BENCH_ONLY:=1 2 4 4s 5 6 st}"
want() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
S1=0 S2=0 S4=0 S4S=0 S5=0 S6=0

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- dependencies
need_pkgs=()
for p in g++ meson ninja-build pkg-config libyaml-cpp-dev libcli11-dev libfmt-dev libssl-dev \
         python3 monit strace time procps; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: missing packages: ${need_pkgs[*]}; install them with: sudo apt-get install ${need_pkgs[*]}" >&2
    exit 1
  fi
  say "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/tmp/nfsup-bench-apt.log 2>&1 || {
    apt-get update -qq >>/tmp/nfsup-bench-apt.log 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >>/tmp/nfsup-bench-apt.log 2>&1 ||
      { echo "bench: apt-get install failed, see /tmp/nfsup-bench-apt.log" >&2; exit 1; }
  }
fi
# monit's package may have started a system monit; ours run with their own control files only.

# ---------------------------------------------------------------- build (its own build dir)
T_BUILD=$(date +%s%N)
static_flag=()
if [ "$BENCH_STATIC" = 1 ] && grep -q "static_tools" meson_options.txt; then static_flag=(-Dstatic_tools=true); fi
if [ ! -f "$BENCH_BUILD_DIR/build.ninja" ]; then
  say "configuring $BENCH_BUILD_DIR (release${static_flag:+, static tools})"
  meson setup "$BENCH_BUILD_DIR" --buildtype=release "${static_flag[@]}" >/tmp/nfsup-bench-meson.log 2>&1 ||
    { tail -20 /tmp/nfsup-bench-meson.log >&2; exit 1; }
fi
say "building nfsup tools in $BENCH_BUILD_DIR"
ninja -C "$BENCH_BUILD_DIR" src/nfsup-install src/nfsup-watchdog src/nfsup-reconfig >/tmp/nfsup-bench-ninja.log 2>&1 ||
  { grep -E "error|Error" /tmp/nfsup-bench-ninja.log | head -20 >&2; exit 1; }
BUILD_S=$(( ($(date +%s%N) - T_BUILD) / 1000000 ))
INSTALL="$ROOT/$BENCH_BUILD_DIR/src/nfsup-install"
WD="$ROOT/$BENCH_BUILD_DIR/src/nfsup-watchdog"
LINKAGE=$(file -b "$WD" | grep -o -E "statically linked|dynamically linked" || echo "?")

# ---------------------------------------------------------------- work area and cleanup
W=$(mktemp -d /var/tmp/nfsup-bench.XXXXXX)
PIDS=()
FLEET_SOURCED=0
SHM=""
cleanup() {
  set +e
  local p f a
  if [ "$FLEET_SOURCED" = 1 ]; then fleet_down >/dev/null 2>&1; FLEET_SOURCED=0; fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  # detached agents of cron-mode hosts
  for f in "$W"/p1/*/state/state "${SHM:-/nonexistent}"/*/state/state; do
    [ -f "$f" ] || continue
    a=$(awk '$1=="agent" {print $2}' "$f")
    [ -n "$a" ] && [ "$a" != 0 ] && kill -KILL -- "-$a" 2>/dev/null
  done
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf --one-file-system "$W" ${SHM:+"$SHM"}; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RES="$W/results.tsv"   # section \t measurement \t nfsup \t peer \t ratio \t target \t result
: >"$RES"
NOTES="$W/notes.md"
: >"$NOTES"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES"; }
note() { printf '%s\n' "$*" >>"$NOTES"; }
jget() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d=d[int(k)] if isinstance(d,list) else d[k]
print(d)' "$1" "$2"; }
calc() { python3 -c "import math; print($*)"; }
fmt() { python3 -c "import sys; v=float(sys.argv[2]); print(format(v, sys.argv[1]))" "$1" "$2"; }
# verdict VALUE OP LIMIT -> MET / MISSED
verdict() { if python3 -c "import sys; sys.exit(0 if float('$1') $2 float('$3') else 1)"; then echo MET; else echo MISSED; fi; }

make_release() {  # make_release DIR VERSION: bin/agent + VERSION
  mkdir -p "$1/bin"
  cp "$FIXTURES/fake-agent" "$1/bin/agent"
  echo "release $2" >"$1/VERSION"
}
mk_host() {  # mk_host DIR HOST SHARE POLL HEARTBEAT [SHARE_TIMEOUT]
  local d=$1/$2
  mkdir -p "$d/state"
  echo "level: one" >"$d/agent.yaml"
  cat >"$d/watchdog.yaml" <<EOF
share: $3
host: $2
poll_interval: $4
heartbeat_interval: $5
share_timeout: ${6:-3s}
state_dir: $d/state
agent:
  command: [bin/agent, "{config}"]
  config: $d/agent.yaml
  stop_timeout: 2s
  start_grace: 300ms
  restart_limit: 3
  restart_window: 60s
EOF
}
start_wd() { "$WD" run -q -c "$1/watchdog.yaml" >>"$1/watchdog.log" 2>&1 & PIDS+=($!); }
count_running() {  # count_running HOSTS_DIR VERSION -> hosts whose status says running VERSION
  local f n=0
  for f in "$1"/*/status; do
    [ -f "$f" ] || continue
    awk -v v="$2" '$1=="state" && $2=="running" {s=1} $1=="running" && $2==v {r=1} END {exit !(s && r)}' "$f" && n=$((n + 1))
  done
  echo $n
}
wait_running() {  # wait_running HOSTS_DIR VERSION N SECONDS
  local end=$(( $(now_ms) + $4 * 1000 ))
  while (( $(now_ms) < end )); do
    [ "$(count_running "$1" "$2")" -ge "$3" ] && return 0
    sleep 0.25
  done
  echo "bench: only $(count_running "$1" "$2")/$3 hosts run $2 after $4 s" >&2
  return 1
}
stop_pids() {  # stop_pids PID...: TERM, wait, and forget them
  local p q keep=()
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  for q in "${PIDS[@]}"; do
    case " $* " in *" $q "*) ;; *) keep+=("$q") ;; esac
  done
  PIDS=("${keep[@]}")
}

# Fleet settings shared by the reaction parts (4 local, 4 rolling, 4 sshfs).
POLL_MS=200; GRACE_MS=300
MOPTS=(--stale-after 10s --lease 3s --timeout 90s)
react() {  # react TAG SHARE_VIEW HOSTDIR VERSION HOSTS_CSV PUSH-ARGS...
  local tag=$1 view=$2 hdir=$3 ver=$4 hosts=$5; shift 5
  python3 "$HELPER" react --share-view "$view" --status-fmt "$view/hosts/{h}/status" \
    --state-fmt "$hdir/{h}/state/state" --hosts "$hosts" --target "$ver" --timeout 150 \
    --scan-ms 10 --push-log "$W/$tag.push.log" -- "$@" >"$W/$tag.json"
}
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
FSTYPE=$(stat -f -c %T "$W")
say "work dir $W ($FSTYPE); load average $LOAD0"

# ================================================================ 1. idle cron tick
T1=$(date +%s%N)
say "1. idle cron tick: nfsup-watchdog check vs sh one-liner vs monit validate ($BENCH_TICKS runs each, interleaved)"
P1=$W/p1
mkdir -p "$P1"
"$INSTALL" init --local "$P1/share" -q
make_release "$P1/rel" 1.0
"$INSTALL" push "$P1/share" "$P1/rel" --version 1.0 --no-wait -q
mk_host "$P1" cron1 "$P1/share" 2s 10s
"$WD" check -q -c "$P1/cron1/watchdog.yaml"   # starts the agent: later ticks are idle
cat >"$P1/monitrc" <<EOF
set daemon 1
set logfile $P1/monit.log
set pidfile $P1/monit.pid
set idfile $P1/monit.id
set statefile $P1/monit.state
check file nfsup_marker with path $P1/share/MARKER
  if exist then exec "/bin/true"
EOF
chmod 600 "$P1/monitrc"
monit -c "$P1/monitrc" -t >/dev/null 2>&1
if want 1; then
SH_LINE='[ -e "$0/MARKER" ] && systemctl stop myagent'
cmds=(
  "{\"name\":\"nfsup\",\"argv\":[\"$WD\",\"check\",\"-q\",\"-c\",\"$P1/cron1/watchdog.yaml\"]}"
  "$(python3 -c 'import json,sys; print(json.dumps({"name":"sh","argv":["sh","-c",sys.argv[1],sys.argv[2]]}))' "$SH_LINE" "$P1/share")"
  "{\"name\":\"monit\",\"argv\":[\"monit\",\"-c\",\"$P1/monitrc\",\"validate\"]}"
  "{\"name\":\"validate\",\"argv\":[\"$WD\",\"validate\",\"-q\",\"-c\",\"$P1/cron1/watchdog.yaml\"]}"
)
python3 "$HELPER" ticks --runs "$BENCH_TICKS" --warmup 10 "${cmds[@]}" >"$W/ticks.json"
# A tick whose heartbeat is due (heartbeat_interval 50ms, ticks 80 ms apart): it also reads
# the pointer and rewrites the status on the share and the local state (two fsyncs). With
# cron's one tick a minute and the default heartbeat_interval (10s), every real tick is one.
mk_host "$P1" cron3 "$P1/share" 50ms 50ms
"$WD" check -q -c "$P1/cron3/watchdog.yaml"
python3 "$HELPER" ticks --runs 60 --warmup 3 --gap-ms 80 \
  "{\"name\":\"nfsup-hb\",\"argv\":[\"$WD\",\"check\",\"-q\",\"-c\",\"$P1/cron3/watchdog.yaml\"]}" \
  "$(python3 -c 'import json,sys; print(json.dumps({"name":"sh","argv":["sh","-c",sys.argv[1],sys.argv[2]]}))' "$SH_LINE" "$P1/share")" \
  >"$W/ticks-hb.json"
strace -f -qq -o "$W/tick-hb.trace" "$WD" check -q -c "$P1/cron3/watchdog.yaml" || true
sleep 0.1
strace -f -qq -o "$W/tick-hb.trace" "$WD" check -q -c "$P1/cron3/watchdog.yaml" || true
HB_FSYNC=$(grep -c -E '^[0-9]+ +fsync\(' "$W/tick-hb.trace" || true)
# Peak RSS as GNU time reports it (max of 5 runs).
rss() { local i m=0 v; for i in 1 2 3 4 5; do v=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1); ((v > m)) && m=$v; done; echo $m; }
RSS_NF=$(rss "$WD" check -q -c "$P1/cron1/watchdog.yaml")
RSS_SH=$(rss sh -c "$SH_LINE" "$P1/share")
RSS_MON=$(rss monit -c "$P1/monitrc" validate)
# What one idle tick does (strace).
strace -f -qq -o "$W/tick.trace" "$WD" check -q -c "$P1/cron1/watchdog.yaml" || true
TICK_SYS=$(grep -v -c -E 'resumed>|\+\+\+|---' "$W/tick.trace" || true)
TICK_FSYNC=$(grep -c -E '^[0-9]+ +fsync\(' "$W/tick.trace" || true)
TICK_RENAME=$( (grep -E '^[0-9]+ +rename\(' "$W/tick.trace" || true) | sed -E 's/.*, "([^"]*)"\).*/\1/' | tr '\n' ' ')
TICK_SHARE=$(grep -v -E 'resumed>' "$W/tick.trace" | grep -c -F "$P1/share" || true)
for n in nfsup sh monit validate; do
  eval "W_$n=\$(jget \"$W/ticks.json\" $n.wall_ms_median)"
  eval "C_$n=\$(jget \"$W/ticks.json\" $n.cpu_ms_median)"
done
r_sh=$(calc "$W_nfsup / $W_sh"); r_mon=$(calc "$W_nfsup / $W_monit")
row "1 cron tick" "wall per idle tick, median of $BENCH_TICKS (ms)" "$(fmt .2f "$W_nfsup")" \
  "sh $(fmt .2f "$W_sh"); monit $(fmt .2f "$W_monit")" "$(fmt .1f "$r_sh")x sh; $(fmt .2f "$r_mon")x monit" \
  "<= 1.2x sh" "$(verdict "$r_sh" '<=' 1.2)"
row "1 cron tick" "wall: faster than monit validate" "$(fmt .2f "$W_nfsup")" "monit $(fmt .2f "$W_monit")" \
  "$(fmt .2f "$r_mon")x" "< 1.0x monit" "$(verdict "$r_mon" '<' 1.0)"
row "1 cron tick" "CPU (user+sys) per idle tick, median (ms)" "$(fmt .2f "$C_nfsup")" \
  "sh $(fmt .2f "$C_sh"); monit $(fmt .2f "$C_monit")" \
  "$(fmt .1f "$(calc "$C_nfsup / $C_sh")")x sh; $(fmt .2f "$(calc "$C_nfsup / $C_monit")")x monit" "-" "info"
row "1 cron tick" "peak RSS (GNU time %M, KiB)" "$RSS_NF" "sh $RSS_SH; monit $RSS_MON" \
  "$(fmt .1f "$(calc "$RSS_NF / $RSS_SH")")x sh; $(fmt .2f "$(calc "$RSS_NF / $RSS_MON")")x monit" "-" "info"
diag="validate (exec + config only): $(fmt .2f "$W_validate") ms wall, $(fmt .2f "$C_validate") ms CPU"
W_hb=$(jget "$W/ticks-hb.json" nfsup-hb.wall_ms_median); C_hb=$(jget "$W/ticks-hb.json" nfsup-hb.cpu_ms_median)
W_hbsh=$(jget "$W/ticks-hb.json" sh.wall_ms_median)
row "1 cron tick" "wall of a tick with its heartbeat due (pointer read, status + local state written, $HB_FSYNC fsync; median of 60, ms)" \
  "$(fmt .2f "$W_hb") (CPU $(fmt .2f "$C_hb"))" "sh $(fmt .2f "$W_hbsh")" "$(fmt .1f "$(calc "$W_hb / $W_hbsh")")x sh" "-" "info"
row "1 cron tick" "breakdown (diagnostic rows, same run)" "$diag" "-" "-" "-" "info"
note "- **1. cron tick**: one idle \`check\` makes $TICK_SYS system calls, $TICK_SHARE of them on share paths, with $TICK_FSYNC fsync; it renames: ${TICK_RENAME:-nothing} (an idle tick reads only the marker; the pointer is read again and the status and local state rewritten when heartbeat_interval has passed, 10s here, so not between these back-to-back ticks; the heartbeat row measures such a tick, 80 ms apart with heartbeat_interval 50ms). sh one-liner: \`sh -c '$SH_LINE' SHARE\`. monit: \`monit -c monitrc validate\` with one \`check file ... if exist\` rule (monit exits 1 when the file is absent; it also walks /proc on every cycle). All commands are exec'd directly (no shell in front), interleaved in random order each round; wall = spawn to reap."
fi
S1=$(( ($(date +%s%N) - T1) / 1000000 ))

# ================================================================ 2 + 3. idle daemon
T2=$(date +%s%N)
if want 2; then
say "2. idle daemon: nfsup-watchdog run (poll 50ms) vs monit daemon (1 s) vs a minimal C poller, ${BENCH_IDLE_S}s"
mk_host "$P1" d1 "$P1/share" 50ms 1h
start_wd "$P1/d1"; NF_PID=${PIDS[-1]}
sed -e "s|^set pidfile .*|set pidfile $P1/monitd.pid|" -e "s|^set statefile .*|set statefile $P1/monitd.state|" \
  "$P1/monitrc" >"$P1/monitrc.d"
chmod 600 "$P1/monitrc.d"
monit -c "$P1/monitrc.d" -I >"$P1/monitd.log" 2>&1 & PIDS+=($!); MON_PID=${PIDS[-1]}
cat >"$W/floor.c" <<'EOF'
/* The least an idle poll can cost: one thread, poll() for the interval, then open(dir),
   openat(dir, "MARKER"), close -- the same three calls as nfsup's idle poll. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char** argv) {
  if (argc != 3) return 2;
  int ms = atoi(argv[2]);
  for (;;) {
    poll(NULL, 0, ms);
    if (argv[1][0] == '-') continue;  /* "-": the timer wake-up alone */
    int d = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return 1;
    int f = openat(d, "MARKER", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f >= 0) { close(f); close(d); return 0; }
    close(d);
  }
}
EOF
cc -O2 -o "$W/floor" "$W/floor.c"
"$W/floor" "$P1/share" 50 & PIDS+=($!); FL_PID=${PIDS[-1]}
"$W/floor" - 50 & PIDS+=($!); WK_PID=${PIDS[-1]}
wait_running "$P1/share/hosts" 1.0 2 20 >/dev/null || true   # cron1 + d1
sleep 2
python3 "$HELPER" procstat "$NF_PID" "$MON_PID" "$FL_PID" "$WK_PID" >"$W/idle0.json"
PERF_OK=0
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_openat -x, -o /dev/null true 2>/dev/null; then PERF_OK=1; fi
if [ $PERF_OK = 1 ]; then
  perf stat -e syscalls:sys_enter_openat -x, -o "$W/idle.perf" -p "$NF_PID" -- sleep "$BENCH_IDLE_S" 2>/dev/null
else
  sleep "$BENCH_IDLE_S"
fi
python3 "$HELPER" procstat "$NF_PID" "$MON_PID" "$FL_PID" "$WK_PID" >"$W/idle1.json"
python3 - "$W/idle0.json" "$W/idle1.json" "$W/idle.perf" "$PERF_OK" >"$W/idle.json" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
el = b[0]["time"] - a[0]["time"]
out = {"seconds": el}
if sys.argv[4] == "1":
    n = [l for l in open(sys.argv[3]) if "sys_enter_openat" in l][0]
    polls = int(n.split(",")[0]) / 2  # open(dir) + openat(MARKER) per idle poll
    out["poll_count"] = "perf: openat/2"
else:
    polls = el / 0.0505
    out["poll_count"] = "estimated: elapsed / (50 ms + 0.5 ms)"
for name, x, y, n in (("nfsup", a[0], b[0], polls), ("monit", a[1], b[1], el / 1.0), ("floor", a[2], b[2], el / 0.050),
                      ("wakeup", a[3], b[3], el / 0.050)):
    d = y["cpu_ns"] - x["cpu_ns"]
    sw = lambda z: sum(t["voluntary"] + t["nonvoluntary"] for t in z["threads"])
    out[name] = {"polls": n, "us_per_poll": d / n / 1e3, "ms_per_1000": d / n / 1e3,
                 "switches_per_poll": (sw(y) - sw(x)) / n,
                 "ticks_us_per_poll": (y["ticks"] - x["ticks"]) * 1e6 / y["clk_tck"] / n,
                 "rss_kb": y.get("VmRSS"), "hwm_kb": y.get("VmHWM"), "anon_kb": y.get("RssAnon"),
                 "threads": len(y["threads"])}
json.dump(out, sys.stdout)
EOF
U_NF=$(jget "$W/idle.json" nfsup.us_per_poll); U_MON=$(jget "$W/idle.json" monit.us_per_poll); U_FL=$(jget "$W/idle.json" floor.us_per_poll)
U_WK=$(jget "$W/idle.json" wakeup.us_per_poll)
TK_NF=$(jget "$W/idle.json" nfsup.ticks_us_per_poll)
POLLS=$(jget "$W/idle.json" nfsup.polls)
RSS_D=$(jget "$W/idle.json" nfsup.rss_kb); HWM_D=$(jget "$W/idle.json" nfsup.hwm_kb); ANON_D=$(jget "$W/idle.json" nfsup.anon_kb)
RSS_M=$(jget "$W/idle.json" monit.rss_kb); RSS_F=$(jget "$W/idle.json" floor.rss_kb)
row "2 idle daemon" "CPU per idle poll (us; per 1000 polls: $(fmt .1f "$(calc "$U_NF")") ms)" "$(fmt .1f "$U_NF")" \
  "monit $(fmt .0f "$U_MON") per check; C floor $(fmt .1f "$U_FL")" \
  "$(fmt .3f "$(calc "$U_NF / $U_MON")")x monit; $(fmt .1f "$(calc "$U_NF / $U_FL")")x floor" "<= 20 us" "$(verdict "$U_NF" '<=' 20)"
row "2 idle daemon" "what this machine charges for a 50 ms timer wake-up alone (C, poll() and nothing else; us)" \
  "$(fmt .1f "$U_NF")" "wake-up $(fmt .1f "$U_WK"); + 3 calls (C floor) $(fmt .1f "$U_FL")" \
  "$(fmt .1f "$(calc "$U_NF / $U_WK")")x wake-up" "-" "info"
row "2 idle daemon" "context switches per idle poll (all threads)" "$(fmt .1f "$(jget "$W/idle.json" nfsup.switches_per_poll)")" \
  "C floor $(fmt .1f "$(jget "$W/idle.json" floor.switches_per_poll)")" \
  "$(fmt .1f "$(calc "$(jget "$W/idle.json" nfsup.switches_per_poll) / max($(jget "$W/idle.json" floor.switches_per_poll), 0.01)")")x" "-" "info"
row "2 idle daemon" "CPU per poll below monit's per check" "$(fmt .1f "$U_NF")" "monit $(fmt .0f "$U_MON")" \
  "$(fmt .3f "$(calc "$U_NF / $U_MON")")x" "< 1.0x monit" "$(verdict "$U_NF" '<' "$U_MON")"
row "2 idle daemon" "VmRSS / VmHWM (KiB)" "$RSS_D / $HWM_D (anon $ANON_D)" "monit $RSS_M; C floor $RSS_F" \
  "$(fmt .2f "$(calc "$RSS_D / $RSS_M")")x monit" "<= 4096 KiB" "$(verdict "$RSS_D" '<=' 4096)"
row "2 idle daemon" "RSS below monit's" "$RSS_D" "monit $RSS_M" "$(fmt .2f "$(calc "$RSS_D / $RSS_M")")x" "< 1.0x monit" \
  "$(verdict "$RSS_D" '<' "$RSS_M")"
note "- **2. idle daemon**: ${BENCH_IDLE_S} s window, $(fmt .0f "$POLLS") nfsup polls ($(jget "$W/idle.json" poll_count)); poll_interval 50ms (the config's minimum; 10ms is refused), heartbeat_interval 1h. CPU = sum of /proc/PID/task/*/schedstat run time (ns); the /proc/PID/stat utime+stime cross-check gives $(fmt .1f "$TK_NF") us/poll at 1/$(getconf CLK_TCK) s resolution. monit: \`set daemon 1\` (its fastest), one \`check file\` rule, normalised per check cycle (elapsed / 1 s). C floor: a single-threaded C loop doing the same three calls every 50 ms, i.e. what any poller pays on this machine for a timer wake-up and three syscalls; wake-up: the same loop without the calls. On this VM a thread that wakes after 50 ms asleep runs with cold caches: the wake-up alone costs $(fmt .0f "$U_WK") us, above the 20 us target, so that target cannot be met here by any program that polls every 50 ms; nfsup's poll is measured against the two floors instead."

say "3. share calls per idle poll (strace)"
timeout -s INT 3 strace -f -qq -p "$NF_PID" -o "$W/idle.trace" 2>/dev/null || true
python3 - "$W/idle.trace" >"$W/calls.json" <<'EOF'
import json, re, sys
lines = [re.sub(r"^\d+\s+", "", l) for l in open(sys.argv[1]) if "resumed>" not in l and "+++" not in l and "---" not in l]
polls = sum(1 for l in lines if "O_DIRECTORY" in l)
file_calls = [l for l in lines if not re.match(r"(poll|ppoll|futex|wait4|restart_syscall|clock_nanosleep)\(", l)
              and not re.match(r"read\(\d+, .*, 64\)", l)]
names = {}
for l in lines:
    n = l.split("(", 1)[0]
    names[n] = names.get(n, 0) + 1
json.dump({"polls": polls, "file_calls": len(file_calls), "all_calls": len(lines), "by_name": names}, sys.stdout)
EOF
CP=$(jget "$W/calls.json" polls); CF=$(jget "$W/calls.json" file_calls); CA=$(jget "$W/calls.json" all_calls)
per_file=$(calc "$CF / max($CP, 1)"); per_all=$(calc "$CA / max($CP, 1)")
row "3 share calls" "file/desc calls per idle poll (strace, $CP polls)" "$(fmt .2f "$per_file")" "C floor 3" \
  "$(fmt .2f "$(calc "$per_file / 3")")x" "<= 3" "$(verdict "$per_file" '<=' 3)"
row "3 share calls" "all system calls per idle poll" "$(fmt .1f "$per_all")" "C floor 4 (poll + 3)" \
  "$(fmt .1f "$(calc "$per_all / 4")")x" "-" "info"
note "- **3. calls per poll**: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p=max(d["polls"],1); print(", ".join(f"{k} {v/p:.1f}" for k,v in sorted(d["by_name"].items(), key=lambda x:-x[1])))' "$W/calls.json") per poll (threads: $(jget "$W/idle.json" nfsup.threads); futex = hand-off of each probe to the share-worker thread and back)."
stop_pids "$NF_PID" "$MON_PID" "$FL_PID"
S2=$(( ($(date +%s%N) - T2) / 1000000 ))
fi

# ================================================================ 4. reaction, local share
T4=$(date +%s%N)
if want 4; then
say "4. reaction: $BENCH_HOSTS watchdog daemons on a local share, poll ${POLL_MS}ms"
P4=$W/p4
mkdir -p "$P4/hosts"
"$INSTALL" init --local "$P4/share" -q
for v in 1.0 2.0 3.0; do make_release "$P4/rel/$v" "$v"; done
"$INSTALL" push "$P4/share" "$P4/rel/1.0" --version 1.0 --no-wait -q
H4=()
for i in $(seq -f "%03g" 1 "$BENCH_HOSTS"); do mk_host "$P4/hosts" "n$i" "$P4/share" ${POLL_MS}ms 2s; H4+=("n$i"); done
p4pids=()
for h in "${H4[@]}"; do start_wd "$P4/hosts/$h"; p4pids+=("${PIDS[-1]}"); done
wait_running "$P4/share/hosts" 1.0 "$BENCH_HOSTS" 120
sleep 1
hosts_csv=$(IFS=,; echo "${H4[*]}")
for v in 2.0 3.0; do
  react "local-$v" "$P4/share" "$P4/hosts" "$v" "$hosts_csv" "$INSTALL" push "$P4/share" "$P4/rel/$v" --version "$v" "${MOPTS[@]}"
  sleep 1
done
stop_pids "${p4pids[@]}"
python3 - "$W/local-2.0.json" "$W/local-3.0.json" "$POLL_MS" "$GRACE_MS" >"$W/local.json" <<'EOF'
import json, statistics, sys
rs = [json.load(open(f)) for f in sys.argv[1:3]]
poll, grace = float(sys.argv[3]), float(sys.argv[4])
def worst(k):
    v = [r[k] for r in rs]
    return None if None in v else max(v)
out = {k: worst(k) for k in ("marker_after_push_ms", "all_gone_after_marker_ms", "median_gone_after_marker_ms",
                             "stop_phase_after_marker_ms", "all_gone_after_stop_phase_ms", "unmark_after_marker_ms", "all_running_after_unmark_ms", "all_running_after_push_ms",
                             "first_running_after_unmark_ms", "median_running_after_unmark_ms",
                             "push_wall_ms")}
out["push_rc"] = [r["push_rc"] for r in rs]
out["hosts"] = rs[0]["hosts"]
json.dump(out, sys.stdout)
EOF
L=$W/local.json
STOP_MS=$(jget "$L" all_gone_after_marker_ms); ALL_MS=$(jget "$L" all_running_after_push_ms)
lim_stop=$(calc "1.1 * $POLL_MS"); lim_all=$(calc "1.1 * (2 * $POLL_MS + $GRACE_MS)")
row "4 reaction local" "$BENCH_HOSTS hosts: marker written -> every agent stopped (worst of 2 pushes, ms)" "$(fmt .0f "$STOP_MS")" \
  "poll $POLL_MS ms, cache 0" "$(fmt .2f "$(calc "$STOP_MS / $POLL_MS")") polls" "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_stop") ms" \
  "$(verdict "$STOP_MS" '<=' "$lim_stop")"
row "4 reaction local" "$BENCH_HOSTS hosts: push start -> every host running the new version (ms)" "$(fmt .0f "$ALL_MS")" \
  "poll $POLL_MS, start_grace $GRACE_MS" "$(fmt .2f "$(calc "$ALL_MS / $POLL_MS")") polls" \
  "<= 1.1 x (2 polls + start) = $(fmt .0f "$lim_all") ms" "$(verdict "$ALL_MS" '<=' "$lim_all")"
STOPP_MS=$(jget "$L" all_gone_after_stop_phase_ms)
row "4 reaction local" "$BENCH_HOSTS hosts: marker's stop phase -> every agent stopped (ms)" "$(fmt .0f "$STOPP_MS")" \
  "poll $POLL_MS ms, cache 0" "$(fmt .2f "$(calc "$STOPP_MS / $POLL_MS")") polls" "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_stop") ms" \
  "$(verdict "$STOPP_MS" '<=' "$lim_stop")"
row "4 reaction local" "phases (ms): push->marker / vote round (0: skipped) / stop phase->all stopped / marker->unmark / unmark->all running / push wall" \
  "$(fmt .0f "$(jget "$L" marker_after_push_ms)") / $(fmt .0f "$(jget "$L" stop_phase_after_marker_ms)") / $(fmt .0f "$STOPP_MS") / $(fmt .0f "$(jget "$L" unmark_after_marker_ms)") / $(fmt .0f "$(jget "$L" all_running_after_unmark_ms)") / $(fmt .0f "$(jget "$L" push_wall_ms)")" \
  "median host stopped $(fmt .0f "$(jget "$L" median_gone_after_marker_ms)") ms after the marker; first / median host running $(fmt .0f "$(jget "$L" first_running_after_unmark_ms)") / $(fmt .0f "$(jget "$L" median_running_after_unmark_ms)") ms after the unmark" "-" "-" "info"
note "- **4. reaction (local)**: $BENCH_HOSTS \`nfsup-watchdog run\` daemons (poll ${POLL_MS}ms, heartbeat 2s, start_grace ${GRACE_MS}ms, fake agent from test/fixtures), two all-at-once pushes (1.0 -> 2.0 -> 3.0), push exit codes $(jget "$L" push_rc), the last said: \`$(tail -1 "$W/local-3.0.push.log")\`. Times come from an observer on the server's view of the share ($(jget "$W/local-3.0.json" observer): it sleeps in inotify until the share root or a host's status directory changes and then reads only what changed, so it takes next to no CPU from the fleet; an earlier observer that polled the marker every 1 ms and read all 100 status files every 10 ms used 10-13% of the two CPUs during a push and added up to 10 ms of scan delay): the marker is timed when it first exists and again when it first reads without \`phase vote\` (with hosts that vote, the master rewrites it to its stop phase once every host has voted; these hosts report \`checks no\` in their status, so the marker starts in its stop phase and the vote round is 0), each agent's exit through a pidfd, 'running' when the host's status file says so. The master re-reads the statuses of the hosts it still waits for every quarter of the fastest host's poll_interval (here 50 ms; 20 to 250 ms), scaled down by the share of hosts still pending (at least 10 ms; the same reads per second as its first round) and never less than its last round took; each host verifies the target release while it waits stopped (the marker names it), so the switch after the unmark only re-reads the manifest; a stopped host polls every quarter of its poll_interval (at least 50 ms) while the marker is up."

say "4. rolling: $BENCH_ROLL_HOSTS hosts, batches: $BENCH_ROLL_BATCHES"
P4R=$W/p4r
mkdir -p "$P4R/hosts"
"$INSTALL" init --local "$P4R/share" -q
rvers=(1.0 1.5); k=1; for b in $BENCH_ROLL_BATCHES; do k=$((k + 1)); rvers+=("$k.0"); done
for v in "${rvers[@]}"; do make_release "$P4R/rel/$v" "$v"; done
"$INSTALL" push "$P4R/share" "$P4R/rel/1.0" --version 1.0 --no-wait -q
HR=()
for i in $(seq -f "%02g" 1 "$BENCH_ROLL_HOSTS"); do mk_host "$P4R/hosts" "r$i" "$P4R/share" ${POLL_MS}ms 2s; HR+=("r$i"); done
prpids=()
for h in "${HR[@]}"; do start_wd "$P4R/hosts/$h"; prpids+=("${PIDS[-1]}"); done
wait_running "$P4R/share/hosts" 1.0 "$BENCH_ROLL_HOSTS" 60
sleep 1
roll_csv=$(IFS=,; echo "${HR[*]}")
# First an all-at-once push on these few hosts: the per-host path without 100 hosts' CPU
# contention on this machine's cores.
react "small-1.5" "$P4R/share" "$P4R/hosts" 1.5 "$roll_csv" "$INSTALL" push "$P4R/share" "$P4R/rel/1.5" --version 1.5 "${MOPTS[@]}"
SMALL_ALL=$(jget "$W/small-1.5.json" all_running_after_push_ms); SMALL_STOP=$(jget "$W/small-1.5.json" all_gone_after_marker_ms)
row "4 reaction local" "$BENCH_ROLL_HOSTS hosts (same settings, all-at-once): marker -> all stopped / push start -> all running (ms)" \
  "$(fmt .0f "$SMALL_STOP") / $(fmt .0f "$SMALL_ALL")" "poll $POLL_MS, start_grace $GRACE_MS" \
  "$(fmt .2f "$(calc "$SMALL_ALL / $POLL_MS")") polls" "<= $(fmt .0f "$lim_stop") / $(fmt .0f "$lim_all") ms" \
  "$(verdict "$SMALL_ALL" '<=' "$lim_all")"
sleep 0.5
k=1; roll_pts=""
for b in $BENCH_ROLL_BATCHES; do
  k=$((k + 1))
  react "roll-$b" "$P4R/share" "$P4R/hosts" "$k.0" "$roll_csv" \
    "$INSTALL" push "$P4R/share" "$P4R/rel/$k.0" --version "$k.0" --strategy rolling --batch "$b" "${MOPTS[@]}"
  roll_pts+="$b:$(jget "$W/roll-$b.json" all_running_after_push_ms):$(jget "$W/roll-$b.json" push_rc) "
  sleep 0.5
done
stop_pids "${prpids[@]}"
python3 - "$BENCH_ROLL_HOSTS" $roll_pts >"$W/roll.json" <<'EOF'
import json, math, sys
n = int(sys.argv[1])
pts = []
for p in sys.argv[2:]:
    b, t, rc = p.split(":")
    pts.append((int(b), math.ceil(n / int(b)), float(t), int(rc)))
xs, ys = [p[1] for p in pts], [p[2] for p in pts]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
sxx = sum((x - mx) ** 2 for x in xs)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
icpt = my - slope * mx
ss_tot = sum((y - my) ** 2 for y in ys)
r2 = 1 - sum((y - (icpt + slope * x)) ** 2 for x, y in zip(xs, ys)) / ss_tot if ss_tot else 1.0
json.dump({"points": pts, "slope_ms_per_batch": slope, "intercept_ms": icpt, "r2": r2}, sys.stdout)
EOF
R2=$(jget "$W/roll.json" r2); SLOPE=$(jget "$W/roll.json" slope_ms_per_batch)
pts_txt=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("; ".join(f"b={b}: {k} batches {t/1000:.1f} s" for b,k,t,rc in d["points"]))' "$W/roll.json")
row "4 rolling" "$BENCH_ROLL_HOSTS hosts, push start -> all on target ($pts_txt)" \
  "$(fmt .0f "$SLOPE") ms per batch + $(fmt .0f "$(jget "$W/roll.json" intercept_ms)") ms" "linear fit in N/b" \
  "$(fmt .1f "$(calc "$SLOPE / $POLL_MS")") polls per batch" "~linear in N/b (R^2 >= 0.95)" "$(verdict "$R2" '>=' 0.95) (R^2 $(fmt .3f "$R2"))"
note "- **4. rolling**: \`push --strategy rolling --batch b\` on $BENCH_ROLL_HOSTS daemons (same host settings); time from push start until every host reports running the target; the pushes said: $(for b in $BENCH_ROLL_BATCHES; do printf '`%s` ' "$(tail -1 "$W/roll-$b.push.log")"; done); exit codes: $(python3 -c 'import json,sys; print(", ".join(f"b={p[0]}: {p[3]}" for p in json.load(open(sys.argv[1]))["points"]))' "$W/roll.json")."
S4=$(( ($(date +%s%N) - T4) / 1000000 ))
fi

# ================================================================ 4. reaction, sshfs harness
T4S=$(date +%s%N)
if want 4s; then
run_sshfs=0
if [ "$BENCH_SSHFS" != 0 ]; then
  if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ]; then run_sshfs=1
  else note "- **4. sshfs**: skipped: needs root and /dev/fuse."; row "4 reaction sshfs" "skipped (needs root and /dev/fuse)" "-" "-" "-" "-" "skipped"
  fi
fi
if [ $run_sshfs = 1 ]; then
  say "4. reaction on the sshfs harness: $BENCH_SSHFS_HOSTS hosts + master mount, cache ${BENCH_CACHE_S}s"
  scripts/deps.sh harness
  # shellcheck source=../test/harness/fleet.sh
  source "$ROOT/test/harness/fleet.sh"
  FLEET_SOURCED=1
  FLEET_CACHE_S=$BENCH_CACHE_S
  NM=$((BENCH_SSHFS_HOSTS + 1))
  if fleet_up "$NM" 2>"$W/fleet.log"; then
    P4S=$W/p4s
    mkdir -p "$P4S/hosts"
    SV="$FLEET_EXPORT/bench"
    MS="${FLEET_MNT[$NM]}/bench"
    "$INSTALL" init --local "$MS" -q
    for v in 1.0 2.0; do make_release "$P4S/rel/$v" "$v"; done
    "$INSTALL" push "$MS" "$P4S/rel/1.0" --version 1.0 --no-wait -q --share-timeout 20s
    HS=(); pspids=()
    for i in $(seq 1 "$BENCH_SSHFS_HOSTS"); do
      mk_host "$P4S/hosts" "s$i" "${FLEET_MNT[$i]}/bench" ${POLL_MS}ms 2s 2s; HS+=("s$i")
      start_wd "$P4S/hosts/s$i"; pspids+=("${PIDS[-1]}")
    done
    wait_running "$SV/hosts" 1.0 "$BENCH_SSHFS_HOSTS" 90
    # Longer than the mounts' cache time: the master's listing of hosts/ must include them all.
    sleep $((BENCH_CACHE_S + 1))
    react "sshfs-2.0" "$SV" "$P4S/hosts" 2.0 "$(IFS=,; echo "${HS[*]}")" \
      "$INSTALL" push "$MS" "$P4S/rel/2.0" --version 2.0 --stale-after 10s --lease 3s --timeout 90s --share-timeout 20s
    stop_pids "${pspids[@]}"
    J=$W/sshfs-2.0.json
    C_MS=$((BENCH_CACHE_S * 1000))
    SSTOP=$(jget "$J" all_gone_after_marker_ms); SALL=$(jget "$J" all_running_after_push_ms)
    lim_s=$(calc "1.1 * ($POLL_MS + $C_MS)"); lim_a=$(calc "1.1 * (2 * ($POLL_MS + $C_MS) + $GRACE_MS)")
    row "4 reaction sshfs" "$BENCH_SSHFS_HOSTS hosts: marker written -> every agent stopped (ms)" "$(fmt .0f "$SSTOP")" \
      "poll $POLL_MS, cache $C_MS" "$(fmt .2f "$(calc "$SSTOP / $POLL_MS")") polls" \
      "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_s") ms" "$(verdict "$SSTOP" '<=' "$lim_s")"
    row "4 reaction sshfs" "$BENCH_SSHFS_HOSTS hosts: push start -> every host running the new version (ms)" "$(fmt .0f "$SALL")" \
      "poll $POLL_MS, cache $C_MS, start_grace $GRACE_MS" "$(fmt .2f "$(calc "$SALL / $POLL_MS")") polls" \
      "<= 1.1 x (2 x (poll + cache) + start) = $(fmt .0f "$lim_a") ms" "$(verdict "$SALL" '<=' "$lim_a")"
    SSTOPP=$(jget "$J" all_gone_after_stop_phase_ms)
    row "4 reaction sshfs" "$BENCH_SSHFS_HOSTS hosts: marker's stop phase -> every agent stopped (ms)" "$(fmt .0f "$SSTOPP")" \
      "poll $POLL_MS, cache $C_MS" "$(fmt .2f "$(calc "$SSTOPP / $POLL_MS")") polls" \
      "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_s") ms" "$(verdict "$SSTOPP" '<=' "$lim_s")"
    row "4 reaction sshfs" "phases (ms): push->marker / vote round / stop phase->all stopped / marker->unmark / unmark->all running / push wall" \
      "$(fmt .0f "$(jget "$J" marker_after_push_ms)") / $(fmt .0f "$(jget "$J" stop_phase_after_marker_ms)") / $(fmt .0f "$SSTOPP") / $(fmt .0f "$(jget "$J" unmark_after_marker_ms)") / $(fmt .0f "$(jget "$J" all_running_after_unmark_ms)") / $(fmt .0f "$(jget "$J" push_wall_ms)")" \
      "median host stopped $(fmt .0f "$(jget "$J" median_gone_after_marker_ms)") ms after the marker" "-" "-" "info"
    note "- **4. sshfs**: test/harness/fleet.sh, $BENCH_SSHFS_HOSTS hosts each with its own sshfs mount in its own network namespace plus one mount for the master (FLEET_CACHE_S=$BENCH_CACHE_S: kernel and sshfs metadata caches); push exit code $(jget "$J" push_rc), it said: \`$(tail -1 "$W/sshfs-2.0.push.log")\`. Marker and status times are taken on the server's directory (no cache); the cache time is counted once per direction in the limit for the whole upgrade."
  else
    row "4 reaction sshfs" "fleet_up failed: $(tail -1 "$W/fleet.log")" "-" "-" "-" "-" "error"
  fi
  fleet_down >/dev/null 2>&1 || true
  FLEET_SOURCED=0
fi
S4S=$(( ($(date +%s%N) - T4S) / 1000000 ))
fi

# ================================================================ 5 + 7. push throughput and memory
T5=$(date +%s%N)
if want 5; then
say "5. push of a ${BENCH_PUSH_MIB} MiB release vs cp + sha256sum; 7. peak RSS at 64 and ${BENCH_PUSH_MIB} MiB"
P5=$W/p5
mkdir -p "$P5/src"
head -c "${BENCH_PUSH_MIB}M" /dev/urandom >"$P5/src/big.bin"
head -c 64M /dev/urandom >"$P5/src/small.bin"
CACHE_MODE=warm
drop() { :; }
if [ -w /proc/sys/vm/drop_caches ] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
  CACHE_MODE=cold
  drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
fi
timed() {  # timed OUTFILE CMD...: GNU time: wall user sys maxrss(KiB) fs-outputs(512 B)
  /usr/bin/time -f "%e %U %S %M %O" -o "$1" "${@:2}" >/dev/null 2>&1
}
push_once() {  # push_once FILE VERSION OUT
  rm -rf "$P5/share"; "$INSTALL" init --local "$P5/share" -q; drop
  timed "$3" "$INSTALL" push "$P5/share" "$1" --version "$2" --no-wait -q
}
cp_once() {  # cp_once FILE OUT
  rm -f "$P5/copy.bin"; drop
  timed "$2" sh -c 'cp "$1" "$2" && sha256sum "$2"' sh "$1" "$P5/copy.bin"
  rm -f "$P5/copy.bin"
}
for r in 1 2; do push_once "$P5/src/small.bin" 1.0 "$P5/small.$r"; done
for r in $(seq 1 "$BENCH_PUSH_ROUNDS"); do
  if ((r % 2)); then push_once "$P5/src/big.bin" 1.0 "$P5/push.$r"; cp_once "$P5/src/big.bin" "$P5/cp.$r"
  else cp_once "$P5/src/big.bin" "$P5/cp.$r"; push_once "$P5/src/big.bin" 1.0 "$P5/push.$r"; fi
done
med() { python3 -c 'import statistics,sys; f=int(sys.argv[1]); print(statistics.median(float(open(p).read().split()[f]) for p in sys.argv[2:]))' "$@"; }
PW=$(med 0 "$P5"/push.*); CW=$(med 0 "$P5"/cp.*)
PCPU=$(python3 -c 'import statistics,sys; print(statistics.median(sum(map(float, open(p).read().split()[1:3])) for p in sys.argv[1:]))' "$P5"/push.*)
CCPU=$(python3 -c 'import statistics,sys; print(statistics.median(sum(map(float, open(p).read().split()[1:3])) for p in sys.argv[1:]))' "$P5"/cp.*)
RSS_BIG=$(med 3 "$P5"/push.*); RSS_SMALL=$(med 3 "$P5"/small.*)
OUT_BIG=$(med 4 "$P5"/push.*)
r5=$(calc "$PW / $CW")
row "5 push" "${BENCH_PUSH_MIB} MiB single-file push --no-wait, no hosts ($CACHE_MODE cache, median of $BENCH_PUSH_ROUNDS, s)" \
  "$(fmt .2f "$PW") ($(fmt .0f "$(calc "$BENCH_PUSH_MIB / $PW")") MiB/s, CPU $(fmt .2f "$PCPU") s)" \
  "cp+sha256sum $(fmt .2f "$CW") (CPU $(fmt .2f "$CCPU") s)" "$(fmt .2f "$r5")x" "<= 1.0x" "$(verdict "$r5" '<=' 1.0)"
# Re-push: same content, new version name, onto the share that already has it (the last push_once).
du0=$(du -sb "$P5/share" | cut -f1)
/usr/bin/time -f "%e %U %S %M %O" -o "$P5/repush" "$INSTALL" push "$P5/share" "$P5/src/big.bin" --version 1.1 --no-wait -v \
  >"$P5/repush.out" 2>&1
du1=$(du -sb "$P5/share" | cut -f1)
RE_OUT=$(( $(cut -d' ' -f5 "$P5/repush") * 512 ))
RE_W=$(grep -o -E "[0-9]+ written to the share" "$P5/repush.out" | cut -d' ' -f1 || echo "?")
row "5 push" "re-push, same content as a new version: bytes written" \
  "$RE_OUT (write_bytes); share grew $((du1 - du0)) B; push says $RE_W" "first push wrote $(( ${OUT_BIG%.*} * 512 / 1048576 )) MiB" \
  "$(fmt .6f "$(calc "$RE_OUT / ($BENCH_PUSH_MIB * 1048576)")")x" "~0" "$(verdict "$RE_OUT" '<=' 1048576)"
row "5 push" "re-push wall (s)" "$(cut -d' ' -f1 "$P5/repush")" "first push $(fmt .2f "$PW")" \
  "$(fmt .2f "$(calc "$(cut -d' ' -f1 "$P5/repush") / $PW")")x" "-" "info"
row "7 push memory" "peak RSS of push, 64 MiB vs ${BENCH_PUSH_MIB} MiB release (KiB)" "$(fmt .0f "$RSS_SMALL") / $(fmt .0f "$RSS_BIG")" \
  "-" "$(fmt .3f "$(calc "$RSS_BIG / $RSS_SMALL")")x" "bounded: growth <= 1 MiB" "$(verdict "$(calc "$RSS_BIG - $RSS_SMALL")" '<=' 1024)"
note "- **5. push**: \`nfsup-install push SHARE big.bin --version V --no-wait\` on a fresh share (no hosts), against \`cp big.bin copy.bin && sha256sum copy.bin\` on the same file system ($FSTYPE), alternating order, page cache ${CACHE_MODE}$([ $CACHE_MODE = cold ] && echo " (sync; drop_caches before every run)"). Bytes written = GNU time %O (write_bytes / 512). By design the push reads the data three times (hash the source, copy while hashing, verify the published release before the marker) and fsyncs the object; cp + sha256sum reads it twice and does not fsync."
S5=$(( ($(date +%s%N) - T5) / 1000000 ))
fi

# ================================================================ 6. fleet scale
T6=$(date +%s%N)
if want 6; then
say "6. status with $BENCH_STATUS_HOSTS host status files; master wait round at the largest"
P6=$W/p6
mkdir -p "$P6"
"$INSTALL" init --local "$P6/share" -q
make_release "$P6/rel1" 1.0; make_release "$P6/rel2" 2.0
"$INSTALL" push "$P6/share" "$P6/rel1" --version 1.0 --no-wait -q
# One share per fleet size, measured interleaved (a load change on the machine then hits every
# size alike, and the linear fit compares like with like).
have=0; st_pts=""; st_cmds=()
for n in $BENCH_STATUS_HOSTS; do
  "$INSTALL" init --local "$P6/s$n" -q
  "$INSTALL" push "$P6/s$n" "$P6/rel1" --version 1.0 --no-wait -q
  python3 "$HELPER" genstatus "$P6/s$n/hosts" 0 "$n"
  st_cmds+=("{\"name\":\"status-$n\",\"argv\":[\"$INSTALL\",\"status\",\"$P6/s$n\"]}")
  have=$n
done
python3 "$HELPER" ticks --runs 7 --warmup 1 "${st_cmds[@]}" >"$W/status.json"
for n in $BENCH_STATUS_HOSTS; do
  st_pts+="$n:$(jget "$W/status.json" "status-$n.wall_ms_median") "
  rm -rf "$P6/s$n"
done
python3 "$HELPER" genstatus "$P6/share/hosts" 0 "$have"   # fresh mtimes: every host is live
# A push with every host live and none ever stopping: its wait loop reads every status each
# round, then sleeps 250 ms; it gives up after --timeout and backs out. Votes (if this build has
# them) are skipped quickly; a long lease keeps renewals out of the way, so the first rename onto
# MARKER is the marker's stop phase and the 250 ms sleeps after it are the wait loop's.
vote_flags=()
if "$INSTALL" push --help 2>&1 | grep -q -- --vote-timeout; then vote_flags=(--vote-timeout 1s --assume-accept); fi
strace --seccomp-bpf -f -qq -ttt -e trace=clock_nanosleep,rename -o "$W/round.trace" \
  "$INSTALL" push "$P6/share" "$P6/rel2" --version 2.0 --no-wait --timeout 3s --stale-after 60s --lease 60s \
  "${vote_flags[@]}" -q >/dev/null 2>"$W/round.err" || true
python3 - "$W/round.trace" "${#vote_flags[@]}" >"$W/round.json" <<'PY'
import json, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
start = 0
if sys.argv[2] != "0":  # skip the vote loop: start at the stop-phase rewrite of MARKER
    for i, l in enumerate(lines):
        if " rename(" in l and '/MARKER"' in l:
            start = i
            break
ts = [float(l.split()[1]) for l in lines[start:] if "clock_nanosleep" in l and "tv_nsec=250000000" in l]
gaps = [(b - a) * 1000 - 250 for a, b in zip(ts, ts[1:])]
json.dump({"rounds": len(ts), "round_ms": statistics.median(gaps) if gaps else None}, sys.stdout)
PY
read -r -a sp <<<"$st_pts"
last=${sp[-1]}; first=${sp[0]}
N_LAST=${last%%:*}; T_LAST=${last#*:}; N_FIRST=${first%%:*}; T_FIRST=${first#*:}
row "6 fleet scale" "status with $N_LAST host status files (ms, median of 7, sizes interleaved)" "$(fmt .0f "$T_LAST")" "-" \
  "$(fmt .1f "$(calc "$T_LAST * 1000 / $N_LAST")") us per host" "<= 1000 ms" "$(verdict "$T_LAST" '<=' 1000)"
python3 - $st_pts >"$W/status-fit.json" <<'PY'
import json, sys
pts = [tuple(map(float, p.split(":"))) for p in sys.argv[1:]]
xs, ys = [p[0] for p in pts], [p[1] for p in pts]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
sxx = sum((x - mx) ** 2 for x in xs)
k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0
a = my - k * mx
tot = sum((y - my) ** 2 for y in ys)
r2 = 1 - sum((y - a - k * x) ** 2 for x, y in zip(xs, ys)) / tot if tot else 1.0
json.dump({"us_per_host": k * 1000, "fixed_ms": a, "r2": r2}, sys.stdout)
PY
SR2=$(jget "$W/status-fit.json" r2)
row "6 fleet scale" "status cost by fleet size (ms)" "$(for p in $st_pts; do printf '%s: %s; ' "${p%%:*}" "$(fmt .0f "${p#*:}")"; done)" "-" \
  "fit: $(fmt .1f "$(jget "$W/status-fit.json" us_per_host)") us/host + $(fmt .0f "$(jget "$W/status-fit.json" fixed_ms)") ms" \
  "linear (R^2 >= 0.98)" "$(verdict "$SR2" '>=' 0.98) (R^2 $(fmt .4f "$SR2"))"
RND=$(jget "$W/round.json" round_ms)
if [ "$RND" != None ]; then
  row "6 fleet scale" "master wait loop, one round over $N_LAST live hosts (ms, strace timestamps of its 250 ms sleeps)" \
    "$(fmt .0f "$RND")" "status $(fmt .0f "$T_LAST")" "$(fmt .2f "$(calc "$RND / $T_LAST")")x status" "-" "info"
fi
note "- **6. fleet scale**: host status files written in the format of pack_status (src/core/share.cpp). \`status\` lists hosts/, reads and stats every status file. The master's wait loop was timed in a real push with $N_LAST live hosts that never stop (\`--timeout 3s --lease 60s ${vote_flags[*]}\`; it then backs out): $(jget "$W/round.json" rounds) rounds after the stop phase; a round = lease renewal + one read_status (open, read, close, lstat) per host, then a fixed 250 ms sleep. Note: with unsigned hosts, \`status\` prints one warning line naming every host ($("$INSTALL" status "$P6/share" 2>/dev/null | awk '/WARNING/ {print length($0); exit}') characters at $N_LAST hosts)."
S6=$(( ($(date +%s%N) - T6) / 1000000 ))
fi

# ================================================================ st: the local store (issue 17)
if want st; then
  say "st: local store, file-system bytes read per host for 1 of 50 x 1 MiB changed, downtime"
  st_out=$(NFSUP_BUILD="$ROOT/$BENCH_BUILD_DIR/src" "$ROOT/scripts/bench-store.sh" 2>&1) || say "st: $st_out"
  st_mib=$(awk '/^rchar h1:/ {print $6}' <<<"$st_out")
  st_down=$(awk '/^downtime h1:/ {print $3}' <<<"$st_out")
  row "st local store" "file-system bytes read per host, 1 of 50 x 1 MiB changed (rchar, MiB)" "${st_mib:-?}" \
    "235c78d: 105 MB" "-" "<= 2.2 MiB" "$([ -n "$st_mib" ] && verdict "$st_mib" "<=" 2.2 || echo "?")"
  row "st local store" "per-host downtime, 512 MiB release, every file changed (ms, stop -> start)" "${st_down:-?}" \
    "-" "-" "stop + start + 100 ms" "-"
  note "- **st. local store**: scripts/bench-store.sh (run_from: local, 2 daemons on a local-directory share): $(tr '\n' ';' <<<"$st_out")"
fi

# ================================================================ report
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
TOTAL_S=$(( ($(date +%s%N) - T_ALL) / 1000000000 ))
MD=$ROOT/bench-results/latest.md
mkdir -p "$ROOT/bench-results"
{
  echo "# nfsup benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(git describe --always --dirty 2>/dev/null || echo "no git")"
  echo
  echo "- machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  echo "- load average at start $LOAD0, at end $LOAD1 (other work on the machine shows up in every figure; ratios compare runs made side by side)"
  echo "- build: $BENCH_BUILD_DIR, buildtype=release, tools $LINKAGE ($((BUILD_S / 1000)) s to build); work dir file system: $FSTYPE"
  echo "- run time: ${TOTAL_S} s (build $((BUILD_S / 1000)) s; 1: $((S1 / 1000)) s, 2+3: $((S2 / 1000)) s, 4 local: $((S4 / 1000)) s, 4 sshfs: $((S4S / 1000)) s, 5+7: $((S5 / 1000)) s, 6: $((S6 / 1000)) s)"
  echo
  echo "| # | measurement | nfsup | peer | ratio | target | result |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' '{ r=$7; if (r ~ /^MISSED/) r="**" r "**"; printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, r }' "$RES"
  echo
  echo "## How each figure was taken"
  echo
  cat "$NOTES"
} >"$MD"
echo
column -t -s $'\t' -N "#,measurement,nfsup,peer,ratio,target,result" "$RES" 2>/dev/null || cat "$RES"
echo
echo "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r); load $LOAD0 -> $LOAD1; ${TOTAL_S} s"
echo "written: $MD"
