#!/usr/bin/env bash
# Performance figures for nfsup, each beside a peer measured in the same run on the same machine
# (issue 20). Rows, numbered as in the issue:
#  1 idle cron tick of the binary the .deb installs (built as packaging/debian/rules builds it)
#    and of the static build, against a POSIX sh one-liner and `monit validate`;
#  2 the idle daemon's CPU per poll against a minimal C poller doing the same system calls, its
#    RSS against monit's daemon, and its system calls per poll;
#  3 real NFS (scripts/bench-nfs.sh: user-mode Linux guests against nfs-ganesha, 4 hosts);
#  4 the shell way as the peer (rsync + `current` symlink + parallel-ssh restart, the Capistrano
#    pattern) against an nfsup push, on the sshfs harness hosts, also with one host unreachable;
#  5 fleet scale: `status` and the master's wait round at 1,000 / 10,000 / 100,000 hosts, and the
#    in-process simulator at 10,000 hosts for one all-at-once switch;
#  6 push of 512 MiB against cp + sha256sum and rsync; re-push of unchanged content; peak RSS;
#  r reaction times and rolling batches on 100 local daemons; st the local store.
# Prints machine facts and a table, and writes it to bench-results/latest.md.
#
# Usage: scripts/bench.sh            (as root it apt-get installs what is missing)
# Knobs: BENCH_TICKS=200 BENCH_IDLE_S=20 BENCH_HOSTS=100 BENCH_ROLL_HOSTS=12
#        BENCH_ROLL_BATCHES="1 3 6" BENCH_SSHFS=auto|0 BENCH_SSHFS_HOSTS=8 BENCH_CACHE_S=3
#        BENCH_PUSH_MIB=512 BENCH_PUSH_ROUNDS=3 BENCH_STATUS_HOSTS="1000 10000 100000"
#        BENCH_SIM_HOSTS=10000 BENCH_NFS=auto|0 BENCH_NFS_HOSTS=4
#        BENCH_BUILD_DIR=build-bench (static release)  BENCH_PKG_DIR=build-pkg-static (as
#        packaging/debian/rules builds the .deb, its dh_auto_configure arguments included)
#        BENCH_DYN_DIR=build-pkg (the same flags without those arguments: dynamic linking)
#        BENCH_ONLY="1 2 3 4 5 6" (rows to run; add "r st" for the 100-host reaction, rolling
#        batches and local-store rows of earlier issues: about 8 more minutes on a loaded machine)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HELPER="$ROOT/scripts/bench-helper.py"
FIXTURES="$ROOT/test/fixtures"
T_ALL=$(date +%s%N)

: "${BENCH_TICKS:=200}" "${BENCH_IDLE_S:=20}" "${BENCH_HOSTS:=100}" "${BENCH_ROLL_HOSTS:=12}"
: "${BENCH_ROLL_BATCHES:=1 3 6}" "${BENCH_SSHFS:=auto}" "${BENCH_SSHFS_HOSTS:=8}" "${BENCH_CACHE_S:=3}"
: "${BENCH_PUSH_MIB:=512}" "${BENCH_PUSH_ROUNDS:=3}" "${BENCH_STATUS_HOSTS:=1000 10000 100000}"
: "${BENCH_SIM_HOSTS:=10000}" "${BENCH_NFS:=auto}" "${BENCH_NFS_HOSTS:=4}"
: "${BENCH_BUILD_DIR:=build-bench}" "${BENCH_PKG_DIR:=build-pkg-static}" "${BENCH_DYN_DIR:=build-pkg}"
: "${BENCH_ONLY:=1 2 3 4 5 6}"
want() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
S1=0 S2=0 S3=0 S4=0 S4S=0 S5=0 S6=0

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- dependencies
need_pkgs=()
for p in g++ meson ninja-build pkg-config libyaml-cpp-dev libcli11-dev libfmt-dev libssl-dev \
         python3 monit strace time procps rsync pssh dpkg-dev; do
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

# ---------------------------------------------------------------- builds (their own build dirs)
# The packaged build: what dh_auto_configure (debhelper's meson build system) runs, with the
# flags dpkg-buildflags gives under packaging/debian/rules (hardening=+all), plus the configure
# arguments debian/rules adds (its override_dh_auto_configure line, if any).
# The static build: -Dstatic_tools=true, buildtype release (the figures before issue 20).
T_BUILD=$(date +%s%N)
pkg_args=()
read -r -a pkg_args <<<"$(sed -n 's/^[[:space:]]*dh_auto_configure -- //p' packaging/debian/rules | head -1)"
configure() {  # configure DIR ARGS...: meson setup, again when the arguments changed
  # (a build dir this script did not make, e.g. BENCH_PKG_DIR=build, is used as it is)
  if [ -f "$1/build.ninja" ] && { [ ! -f "$1/.bench-args" ] || [ "$(cat "$1/.bench-args")" = "${*:2}" ]; }; then return 0; fi
  [ ! -f "$1/.bench-args" ] || rm -rf --one-file-system "$1"
  say "configuring $1 (${*:2})"
  meson setup "$@" >"/tmp/nfsup-bench-meson.$$.log" 2>&1 || { tail -20 "/tmp/nfsup-bench-meson.$$.log" >&2; exit 1; }
  echo "${*:2}" >"$1/.bench-args"
}
pkg_configure() {  # pkg_configure DIR EXTRA-ARGS...: as dh_auto_configure does, with dpkg-buildflags
  (
    eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
    configure "$1" --wrap-mode=nodownload --buildtype=plain --prefix=/usr --sysconfdir=/etc \
      --localstatedir=/var --libdir="lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" "${@:2}"
  )
}
pkg_configure "$BENCH_PKG_DIR" "${pkg_args[@]}"
pkg_configure "$BENCH_DYN_DIR"
configure "$BENCH_BUILD_DIR" --buildtype=release -Dstatic_tools=true
for d in "$BENCH_PKG_DIR" "$BENCH_DYN_DIR" "$BENCH_BUILD_DIR"; do
  say "building nfsup tools in $d"
  tools=(src/nfsup-install src/nfsup-watchdog src/nfsup-reconfig)
  [ "$d" != "$BENCH_DYN_DIR" ] || tools=(src/nfsup-watchdog)   # only its tick is measured
  ninja -C "$d" "${tools[@]}" >/tmp/nfsup-bench-ninja.$$.log 2>&1 ||
    { grep -E "error|Error" /tmp/nfsup-bench-ninja.$$.log | head -20 >&2; exit 1; }
done
if want 5; then ninja -C build test/sim/nfsup-sim >/tmp/nfsup-bench-ninja.$$.log 2>&1 || say "no simulator: $(tail -1 /tmp/nfsup-bench-ninja.$$.log)"; fi
BUILD_S=$(( ($(date +%s%N) - T_BUILD) / 1000000 ))
# What users run: the packaged tools, everywhere but the static build's own tick row.
INSTALL="$ROOT/$BENCH_PKG_DIR/src/nfsup-install"
WD="$ROOT/$BENCH_PKG_DIR/src/nfsup-watchdog"
WD_STATIC="$ROOT/$BENCH_BUILD_DIR/src/nfsup-watchdog"
WD_DYN="$ROOT/$BENCH_DYN_DIR/src/nfsup-watchdog"
linkage() { file -b "$1" | grep -o -E "statically linked|static-pie linked|dynamically linked" || echo "?"; }
LINKAGE="packaged watchdog $(linkage "$WD") (${pkg_args[*]:-no extra configure arguments}); the same flags without them $(linkage "$WD_DYN"), $(ldd "$WD_DYN" 2>/dev/null | grep -c '=>' || true) shared objects; static release build $(linkage "$WD_STATIC")"

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

perf_top() {  # perf_top DATA SORT N: "name pct%; ..." of the N biggest entries of a perf profile
  perf report -i "$1" --stdio --sort "$2" 2>/dev/null |
    awk -v n="$3" '/^ +[0-9.]+%/ && c < n {p = $1; $1 = ""; sub(/^ +(\[[.k]\] +)?/, ""); printf "%s %s; ", $0, p; c++}'
}
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
  "{\"name\":\"static\",\"argv\":[\"$WD_STATIC\",\"check\",\"-q\",\"-c\",\"$P1/cron1/watchdog.yaml\"]}"
  "{\"name\":\"dynamic\",\"argv\":[\"$WD_DYN\",\"check\",\"-q\",\"-c\",\"$P1/cron1/watchdog.yaml\"]}"
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
# Where the packaged tick's time goes before main(): the dynamic loader's own statistics.
LDSTAT=$(LD_DEBUG=statistics "$WD_DYN" check -q -c "$P1/cron1/watchdog.yaml" 2>&1 >/dev/null |
  sed -n -E 's/^ *[0-9]+:[[:space:]]*//; s/^[[:space:]]*(total startup time in dynamic loader|time needed for relocation|number of relocations|number of relative relocations): *(.*)$/\1 \2/p' | paste -sd';' -)
NSO=$(ldd "$WD_DYN" 2>/dev/null | grep -c '=>' || true)
# perf profile of 100 packaged and 100 static ticks (cpu-clock samples, by shared object).
PERF_TICK=""
if command -v perf >/dev/null; then
  for b in "$WD" "$WD_DYN"; do
    perf record -q -e cpu-clock -F 10000 -o "$W/tick.perf" -- \
      sh -c 'for i in $(seq 100); do "$1" check -q -c "$2"; done' sh "$b" "$P1/cron1/watchdog.yaml" >/dev/null 2>&1 || true
    PERF_TICK+="$( [ "$b" = "$WD" ] && echo "packaged ($(linkage "$WD"))" || echo dynamic): $(perf_top "$W/tick.perf" dso 6)/ "
  done
fi
# What one idle tick does (strace).
strace -f -qq -o "$W/tick.trace" "$WD" check -q -c "$P1/cron1/watchdog.yaml" || true
TICK_SYS=$(grep -v -c -E 'resumed>|\+\+\+|---' "$W/tick.trace" || true)
TICK_FSYNC=$(grep -c -E '^[0-9]+ +fsync\(' "$W/tick.trace" || true)
TICK_RENAME=$( (grep -E '^[0-9]+ +rename\(' "$W/tick.trace" || true) | sed -E 's/.*, "([^"]*)"\).*/\1/' | tr '\n' ' ')
TICK_SHARE=$(grep -v -E 'resumed>' "$W/tick.trace" | grep -c -F "$P1/share" || true)
for n in nfsup static dynamic sh monit validate; do
  eval "W_$n=\$(jget \"$W/ticks.json\" $n.wall_ms_median)"
  eval "C_$n=\$(jget \"$W/ticks.json\" $n.cpu_ms_median)"
done
r_sh=$(calc "$W_nfsup / $W_sh"); r_mon=$(calc "$W_nfsup / $W_monit")
r_ssh=$(calc "$W_static / $W_sh"); r_smon=$(calc "$W_static / $W_monit")
row "1 cron tick" "packaged watchdog ($(linkage "$WD")): wall per idle tick, median of $BENCH_TICKS (ms)" "$(fmt .2f "$W_nfsup")" \
  "sh $(fmt .2f "$W_sh"); monit $(fmt .2f "$W_monit")" "$(fmt .2f "$r_sh")x sh; $(fmt .2f "$r_mon")x monit" \
  "<= 1.3x sh" "$(verdict "$r_sh" '<=' 1.3)"
row "1 cron tick" "static build (-Dstatic_tools=true, release): wall per idle tick (ms)" "$(fmt .2f "$W_static")" \
  "sh $(fmt .2f "$W_sh"); monit $(fmt .2f "$W_monit")" "$(fmt .2f "$r_ssh")x sh; $(fmt .2f "$r_smon")x monit" \
  "-" "info"
r_dsh=$(calc "$W_dynamic / $W_sh")
row "1 cron tick" "the packaged flags linked dynamically (the .deb before issue 20): wall per idle tick (ms)" "$(fmt .2f "$W_dynamic")" \
  "sh $(fmt .2f "$W_sh"); monit $(fmt .2f "$W_monit")" "$(fmt .2f "$r_dsh")x sh; $(fmt .2f "$(calc "$W_dynamic / $W_monit")")x monit" \
  "-" "info"
row "1 cron tick" "CPU (user+sys) per idle tick, median (ms): packaged / static release / dynamic" "$(fmt .2f "$C_nfsup") / $(fmt .2f "$C_static") / $(fmt .2f "$C_dynamic")" \
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
row "1 cron tick" "dynamic tick before main(): LD_DEBUG=statistics (cycles)" "${LDSTAT:-?}; $NSO shared objects" "-" "-" "-" "info"
row "1 cron tick" "perf, 100 ticks each, CPU samples by object (incl. the sh loop)" "${PERF_TICK:-perf not installed}" "-" "-" "-" "info"
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
PERF_IDLE=""
if command -v perf >/dev/null; then
  perf record -q -e cpu-clock -F 10000 -o "$W/idle.perf.data" -p "$NF_PID" -- sleep 5 >/dev/null 2>&1 || true
  PERF_IDLE="by object: $(perf_top "$W/idle.perf.data" dso 5)/ by symbol: $(perf_top "$W/idle.perf.data" sym 8)"
fi
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
row "2 idle daemon" "CPU per idle poll, packaged watchdog (us)" "$(fmt .1f "$U_NF")" \
  "C poller, same calls $(fmt .1f "$U_FL"); monit $(fmt .0f "$U_MON") per check" \
  "$(fmt .2f "$(calc "$U_NF / $U_FL")")x C poller; $(fmt .3f "$(calc "$U_NF / $U_MON")")x monit" "<= 1.1x C poller" \
  "$(verdict "$(calc "$U_NF / $U_FL")" '<=' 1.1)"
row "2 idle daemon" "what this machine charges for a 50 ms timer wake-up alone (C, poll() and nothing else; us)" \
  "$(fmt .1f "$U_NF")" "wake-up $(fmt .1f "$U_WK"); + 3 calls (C poller) $(fmt .1f "$U_FL")" \
  "$(fmt .1f "$(calc "$U_NF / $U_WK")")x wake-up" "-" "info"
row "2 idle daemon" "context switches per idle poll (all threads)" "$(fmt .1f "$(jget "$W/idle.json" nfsup.switches_per_poll)")" \
  "C poller $(fmt .1f "$(jget "$W/idle.json" floor.switches_per_poll)")" \
  "$(fmt .1f "$(calc "$(jget "$W/idle.json" nfsup.switches_per_poll) / max($(jget "$W/idle.json" floor.switches_per_poll), 0.01)")")x" "-" "info"
row "2 idle daemon" "perf, 5 s of the idle daemon (cpu-clock samples)" "${PERF_IDLE:-perf not installed}" "-" "-" "-" "info"
row "2 idle daemon" "VmRSS (KiB; VmHWM, anon)" "$RSS_D ($HWM_D, anon $ANON_D)" "monit daemon $RSS_M; C poller $RSS_F" \
  "$(fmt .2f "$(calc "$RSS_D / $RSS_M")")x monit" "< 1.0x monit" "$(verdict "$RSS_D" '<' "$RSS_M")"
note "- **2. idle daemon**: ${BENCH_IDLE_S} s window, $(fmt .0f "$POLLS") nfsup polls ($(jget "$W/idle.json" poll_count)); poll_interval 50ms (the config's minimum; 10ms is refused), heartbeat_interval 1h. CPU = sum of /proc/PID/task/*/schedstat run time (ns); the /proc/PID/stat utime+stime cross-check gives $(fmt .1f "$TK_NF") us/poll at 1/$(getconf CLK_TCK) s resolution. monit: \`set daemon 1\` (its fastest), one \`check file\` rule, normalised per check cycle (elapsed / 1 s). C floor: a single-threaded C loop doing the same three calls every 50 ms, i.e. what any poller pays on this machine for a timer wake-up and three syscalls; wake-up: the same loop without the calls. The target is a ratio to the C poller measured in the same window (issue 20), as the wake-up alone costs $(fmt .0f "$U_WK") us on this machine."

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
row "2 share calls" "file/desc calls per idle poll (strace, $CP polls)" "$(fmt .2f "$per_file")" "C poller 3" \
  "$(fmt .2f "$(calc "$per_file / 3")")x" "<= 3" "$(verdict "$per_file" '<=' 3)"
row "2 share calls" "all system calls per idle poll" "$(fmt .1f "$per_all")" "C poller 4 (poll + 3)" \
  "$(fmt .1f "$(calc "$per_all / 4")")x" "-" "info"
note "- **2. calls per poll**: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p=max(d["polls"],1); print(", ".join(f"{k} {v/p:.1f}" for k,v in sorted(d["by_name"].items(), key=lambda x:-x[1])))' "$W/calls.json") per poll (threads: $(jget "$W/idle.json" nfsup.threads); futex = hand-off of each probe to the share-worker thread and back)."
stop_pids "$NF_PID" "$MON_PID" "$FL_PID"
S2=$(( ($(date +%s%N) - T2) / 1000000 ))
fi

# ================================================================ 3. real NFS (scripts/bench-nfs.sh)
T3=$(date +%s%N)
if want 3; then
if [ "$BENCH_NFS" = 0 ]; then
  row "3 real NFS" "not run (BENCH_NFS=0)" "-" "-" "-" "-" "not run"
else
  say "3. real NFS: $BENCH_NFS_HOSTS user-mode Linux guests against nfs-ganesha (scripts/bench-nfs.sh)"
  nrc=0
  NFSUP_BUILD="$ROOT/$BENCH_PKG_DIR/src" BENCH_NFS_HOSTS=$BENCH_NFS_HOSTS "$ROOT/scripts/bench-nfs.sh" 4.1 >"$W/nfs.out" 2>"$W/nfs.err" || nrc=$?
  nf() { awk -v k="nfs.$1" '$1 == k {$1 = ""; sub(/^ /, ""); print; exit}' "$W/nfs.out"; }
  if [ $nrc = 77 ]; then
    row "3 real NFS" "not run: $(tail -1 "$W/nfs.out")" "-" "-" "-" "-" "not run"
  elif [ -z "$(nf marker_to_all_stopped_ms)" ]; then
    row "3 real NFS" "failed (exit $nrc): $(tail -1 "$W/nfs.err" | head -c 200)" "-" "-" "-" "-" "error"
  else
    row "3 real NFS" "$BENCH_NFS_HOSTS hosts, NFSv4.1 default mount: marker written -> every agent stopped (ms)" "$(nf marker_to_all_stopped_ms)" \
      "poll_interval 2000" "$(fmt .2f "$(calc "$(nf marker_to_all_stopped_ms) / 2000")") polls" "<= 1.1 x poll = 2200 ms" \
      "$(verdict "$(nf marker_to_all_stopped_ms)" '<=' 2200)"
    row "3 real NFS" "push start -> every host running the new release (ms; push exit $(nf push_rc))" "$(nf push_to_all_running_ms)" \
      "poll 2000, start_grace 300" "$(fmt .2f "$(calc "$(nf push_to_all_running_ms) / 2000")") polls" "-" "info"
    row "3 real NFS" "downtime per host (ms, old agent's stop -> new agent's start, agents' clocks)" "$(nf downtime_ms)" "-" "-" "-" "info"
    row "3 real NFS" "idle NFS RPCs per host per minute (g1 by operation: $(nf idle_ops_g1))" "$(nf idle_rpcs_per_min)" \
      "one poll = 30/min" "-" "-" "info"
    row "3 real NFS" "server bytes read per host, 1 of 50 x 1 MiB changed (mountstats)" "$(nf upgrade_bytes_read)" \
      "whole release 52428800" "$(fmt .3f "$(calc "$(nf upgrade_bytes_read_max) / 52428800")")x whole" "<= 2.2 MiB" \
      "$(verdict "$(nf upgrade_bytes_read_max)" '<=' 2306867)"
    note "- **3. real NFS**: scripts/bench-nfs.sh (test/nfs/lib.sh): $BENCH_NFS_HOSTS user-mode Linux guests (Linux 6.1) boot in $(nf boot_s) s and mount one nfs-ganesha export (NFSv4.1, the kernel's default options: acregmin 3 s, acdirmin 30 s, hard), each runs \`nfsup-watchdog run\` (packaged build) with the default poll_interval 2s and heartbeat_interval 10s (run_from: local); the master pushes from the server's directory (only the hosts' mounts are counted). RPCs from /proc/self/mountstats over 30 s, x2. The marker is timed on the server's directory, the agents' stops and starts in their own logs. Human table: $(sed -n '1,/^upgrade/p' "$W/nfs.out" | grep -v '^nfs\.' | tr '\n' ' ' | sed 's/  */ /g')"
  fi
fi
S3=$(( ($(date +%s%N) - T3) / 1000000 ))
fi

# ================================================================ r. reaction, local share
T4=$(date +%s%N)
if want r; then
say "r. reaction: $BENCH_HOSTS watchdog daemons on a local share, poll ${POLL_MS}ms"
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
row "r reaction local" "$BENCH_HOSTS hosts: marker written -> every agent stopped (worst of 2 pushes, ms)" "$(fmt .0f "$STOP_MS")" \
  "poll $POLL_MS ms, cache 0" "$(fmt .2f "$(calc "$STOP_MS / $POLL_MS")") polls" "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_stop") ms" \
  "$(verdict "$STOP_MS" '<=' "$lim_stop")"
row "r reaction local" "$BENCH_HOSTS hosts: push start -> every host running the new version (ms)" "$(fmt .0f "$ALL_MS")" \
  "poll $POLL_MS, start_grace $GRACE_MS" "$(fmt .2f "$(calc "$ALL_MS / $POLL_MS")") polls" \
  "<= 1.1 x (2 polls + start) = $(fmt .0f "$lim_all") ms" "$(verdict "$ALL_MS" '<=' "$lim_all")"
STOPP_MS=$(jget "$L" all_gone_after_stop_phase_ms)
row "r reaction local" "$BENCH_HOSTS hosts: marker's stop phase -> every agent stopped (ms)" "$(fmt .0f "$STOPP_MS")" \
  "poll $POLL_MS ms, cache 0" "$(fmt .2f "$(calc "$STOPP_MS / $POLL_MS")") polls" "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_stop") ms" \
  "$(verdict "$STOPP_MS" '<=' "$lim_stop")"
row "r reaction local" "phases (ms): push->marker / vote round (0: skipped) / stop phase->all stopped / marker->unmark / unmark->all running / push wall" \
  "$(fmt .0f "$(jget "$L" marker_after_push_ms)") / $(fmt .0f "$(jget "$L" stop_phase_after_marker_ms)") / $(fmt .0f "$STOPP_MS") / $(fmt .0f "$(jget "$L" unmark_after_marker_ms)") / $(fmt .0f "$(jget "$L" all_running_after_unmark_ms)") / $(fmt .0f "$(jget "$L" push_wall_ms)")" \
  "median host stopped $(fmt .0f "$(jget "$L" median_gone_after_marker_ms)") ms after the marker; first / median host running $(fmt .0f "$(jget "$L" first_running_after_unmark_ms)") / $(fmt .0f "$(jget "$L" median_running_after_unmark_ms)") ms after the unmark" "-" "-" "info"
note "- **r. reaction (local)**: $BENCH_HOSTS \`nfsup-watchdog run\` daemons (poll ${POLL_MS}ms, heartbeat 2s, start_grace ${GRACE_MS}ms, fake agent from test/fixtures), two all-at-once pushes (1.0 -> 2.0 -> 3.0), push exit codes $(jget "$L" push_rc), the last said: \`$(tail -1 "$W/local-3.0.push.log")\`. Times come from an observer on the server's view of the share ($(jget "$W/local-3.0.json" observer): it sleeps in inotify until the share root or a host's status directory changes and then reads only what changed, so it takes next to no CPU from the fleet; an earlier observer that polled the marker every 1 ms and read all 100 status files every 10 ms used 10-13% of the two CPUs during a push and added up to 10 ms of scan delay): the marker is timed when it first exists and again when it first reads without \`phase vote\` (with hosts that vote, the master rewrites it to its stop phase once every host has voted; these hosts report \`checks no\` in their status, so the marker starts in its stop phase and the vote round is 0), each agent's exit through a pidfd, 'running' when the host's status file says so. The master re-reads the statuses of the hosts it still waits for every quarter of the fastest host's poll_interval (here 50 ms; 20 to 250 ms), scaled down by the share of hosts still pending (at least 10 ms; the same reads per second as its first round) and never less than its last round took; each host verifies the target release while it waits stopped (the marker names it), so the switch after the unmark only re-reads the manifest; a stopped host polls every quarter of its poll_interval (at least 50 ms) while the marker is up."

say "r. rolling: $BENCH_ROLL_HOSTS hosts, batches: $BENCH_ROLL_BATCHES"
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
row "r reaction local" "$BENCH_ROLL_HOSTS hosts (same settings, all-at-once): marker -> all stopped / push start -> all running (ms)" \
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
row "r rolling" "$BENCH_ROLL_HOSTS hosts, push start -> all on target ($pts_txt)" \
  "$(fmt .0f "$SLOPE") ms per batch + $(fmt .0f "$(jget "$W/roll.json" intercept_ms)") ms" "linear fit in N/b" \
  "$(fmt .1f "$(calc "$SLOPE / $POLL_MS")") polls per batch" "~linear in N/b (R^2 >= 0.95)" "$(verdict "$R2" '>=' 0.95) (R^2 $(fmt .3f "$R2"))"
note "- **4. rolling**: \`push --strategy rolling --batch b\` on $BENCH_ROLL_HOSTS daemons (same host settings); time from push start until every host reports running the target; the pushes said: $(for b in $BENCH_ROLL_BATCHES; do printf '`%s` ' "$(tail -1 "$W/roll-$b.push.log")"; done); exit codes: $(python3 -c 'import json,sys; print(", ".join(f"b={p[0]}: {p[3]}" for p in json.load(open(sys.argv[1]))["points"]))' "$W/roll.json")."
S4=$(( ($(date +%s%N) - T4) / 1000000 ))
fi

# ---- row 4 helpers (the sshfs harness must be up: FLEET_*, P4S, MS, SV, HS)
# nfsup with one host unreachable: s1's wire is cut during a push to 3.0; the push names it;
# then the wire comes back and s1 converges by itself (time from link up to s1 running 3.0).
sshfs_nfsup_unreachable() {
  make_release "$P4S/rel/3.0" 3.0
  fleet_link_down 1
  local t0 t1 rc=0
  t0=$(now_ms)
  "$INSTALL" push "$MS" "$P4S/rel/3.0" --version 3.0 --stale-after 10s --lease 3s --timeout 90s --share-timeout 20s \
    >"$W/sshfs-3.0.push.log" 2>&1 || rc=$?
  t1=$(now_ms)
  NU_PUSH_MS=$((t1 - t0)); NU_RC=$rc
  NU_OTHERS=$(( $(count_running "$SV/hosts" 3.0) ))
  NU_SAID=$(grep -m1 -E 's1\b' "$W/sshfs-3.0.push.log" | head -c 160 || true)
  fleet_link_up 1
  t0=$(now_ms)
  NU_BACK_MS="-"
  local end=$((t0 + 60000))
  while (( $(now_ms) < end )); do
    if awk '$1=="state" && $2=="running" {s=1} $1=="running" && $2=="3.0" {r=1} END {exit !(s && r)}' "$SV/hosts/s1/status" 2>/dev/null; then
      NU_BACK_MS=$(( $(now_ms) - t0 )); break
    fi
    sleep 0.2
  done
  NU_END=$(count_running "$SV/hosts" 3.0)
}
# The shell way on the same hosts (Capistrano): rsync the release to releases/V on the share
# (through the master's mount), flip the `current` symlink (ln -sfn + mv -T: atomic), then
# parallel-ssh a restart to every host; each host's agent runs current/bin/agent from its own
# sshfs mount and logs its start and stop (ms). Each ssh connection leaves from the host's own
# network namespace (an `ssh` wrapper first in PATH), so a cut wire makes it time out.
cap_agent() {  # cap_agent DIR VERSION
  mkdir -p "$1/bin"
  cat >"$1/bin/agent" <<'EOA'
#!/bin/sh
log="$(dirname "$1")/agent.log"
v=$(cat "$(dirname "$0")/../VERSION")
echo "start $v $(date +%s%3N)" >>"$log"
trap 'echo "stop $v $(date +%s%3N)" >>"$log"; exit 0' TERM INT
while :; do sleep 1 & wait $!; done
EOA
  chmod 755 "$1/bin/agent"
  echo "$2" >"$1/VERSION"
}
cap_deploy() {  # cap_deploy VERSION TAG: rsync + flip + pssh restart; sets CAP_* figures
  local v=$1 t0 t1 t2 t3 rc=0
  t0=$(now_ms)
  rsync -a "$CAP/rel/$v/" "$MS/../cap/releases/$v/"
  t1=$(now_ms)
  ln -sfn "releases/$v" "$MS/../cap/current.tmp" && mv -T "$MS/../cap/current.tmp" "$MS/../cap/current"
  t2=$(now_ms)
  PATH="$CAP/bin:$PATH" parallel-ssh -h "$CAP/hosts.txt" -x "-F $FLEET_DIR/ssh/ssh_config" -t 20 -p 64 \
    -o "$CAP/out.$2" -e "$CAP/err.$2" "$CAP/restart.sh" >"$CAP/pssh.$2" 2>&1 || rc=$?
  t3=$(now_ms)
  CAP_RC=$rc; CAP_RSYNC_MS=$((t1 - t0)); CAP_FLIP_MS=$((t2 - t1)); CAP_WALL_MS=$((t3 - t0))
  CAP_T0=$t0
}
cap_figures() {  # cap_figures VERSION OLD: all-running time (ms after start) and downtimes
  python3 - "$CAP" "$1" "$2" "$CAP_T0" "$BENCH_SSHFS_HOSTS" <<'PY'
import sys
d, v, old, t0, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
starts, down = [], []
for i in range(1, n + 1):
    st = sp = None
    for line in open(f"{d}/s{i}/agent.log"):
        w = line.split()
        if len(w) == 3 and w[0] == "stop" and w[1] == old: sp = int(w[2])
        if len(w) == 3 and w[0] == "start" and w[1] == v: st = int(w[2])
    starts.append(st)
    down.append(st - sp if st and sp else None)
ok = [s for s in starts if s]
print(max(ok) - t0 if len(ok) == n else "-", ",".join("-" if x is None else str(x) for x in down),
      max((x for x in down if x is not None), default="-"), len(ok))
PY
}
sshfs_capistrano() {
  CAP=$W/cap
  mkdir -p "$CAP/bin" "$MS/../cap/releases"
  local i v
  for v in 1.0 2.0 3.0; do cap_agent "$CAP/rel/$v" "$v"; done
  rsync -a "$CAP/rel/1.0/" "$MS/../cap/releases/1.0/"
  ln -sfn releases/1.0 "$MS/../cap/current"
  : >"$CAP/hosts.txt"; : >"$CAP/map"
  for i in $(seq 1 "$BENCH_SSHFS_HOSTS"); do
    echo "${FLEET_SRV_ADDR[$i]}" >>"$CAP/hosts.txt"
    echo "${FLEET_SRV_ADDR[$i]} $i ${FLEET_MNT[$i]}/cap ${FLEET_NS[$i]}" >>"$CAP/map"
    mkdir -p "$CAP/s$i"; : >"$CAP/s$i/agent.log"; echo "level: one" >"$CAP/s$i/agent.yaml"
  done
  # ssh from the host's own network namespace (pssh runs `ssh`; this one goes first in PATH)
  cat >"$CAP/bin/ssh" <<EOS
#!/bin/sh
for a in "\$@"; do case "\$a" in [0-9]*.[0-9]*.[0-9]*.[0-9]*) addr=\${a#*@} ;; esac; done
ns=\$(awk -v a="\$addr" '\$1 == a {print \$4}' "$CAP/map")
exec nsenter --net="/run/netns/\$ns" /usr/bin/ssh "\$@"
EOS
  # the restart, run by sshd for the host whose address the connection came to
  cat >"$CAP/restart.sh" <<EOS
#!/bin/sh
set -- \$SSH_CONNECTION
line=\$(awk -v a="\$3" '\$1 == a' "$CAP/map")
set -- \$line
d=$CAP/s\$2
p=\$(cat "\$d/pid" 2>/dev/null)
if [ -n "\$p" ]; then kill -TERM "\$p" 2>/dev/null; while kill -0 "\$p" 2>/dev/null; do sleep 0.01; done; fi
setsid "\$3/current/bin/agent" "\$d/agent.yaml" </dev/null >/dev/null 2>&1 &
echo \$! >"\$d/pid"
echo "restarted on host \$2"
EOS
  chmod 755 "$CAP/bin/ssh" "$CAP/restart.sh"
  for i in $(seq 1 "$BENCH_SSHFS_HOSTS"); do
    setsid "${FLEET_MNT[$i]}/cap/current/bin/agent" "$CAP/s$i/agent.yaml" </dev/null >/dev/null 2>&1 &
    echo $! >"$CAP/s$i/pid"
  done
  sleep $((BENCH_CACHE_S + 1))
  cap_deploy 2.0 all
  read -r CAP_ALL CAP_DOWN CAP_DOWN_MAX _ <<<"$(cap_figures 2.0 1.0)"
  CAP_ALL_RC=$CAP_RC; CAP_ALL_WALL=$CAP_WALL_MS; CAP_ALL_RSYNC=$CAP_RSYNC_MS
  sleep 1
  fleet_link_down 1
  cap_deploy 3.0 cut
  read -r _ _ _ CAP_CUT_N <<<"$(cap_figures 3.0 2.0)"
  CAP_CUT_SAID=$(grep -m1 -E 'FAILURE' "$CAP/pssh.cut" | head -c 160 || true)
  fleet_link_up 1
  sleep $((BENCH_CACHE_S + 5))
  read -r _ _ _ CAP_LATER_N <<<"$(cap_figures 3.0 2.0)"
  CAP_S1=$(awk '$1 == "start" {v = $2} END {print v}' "$CAP/s1/agent.log")
  CAP_LINK=$(readlink "${FLEET_MNT[2]}/cap/current" || echo "?")
  for i in $(seq 1 "$BENCH_SSHFS_HOSTS"); do kill -TERM "$(cat "$CAP/s$i/pid")" 2>/dev/null || true; done
}
sshfs_rows() {
  local nd
  nd=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["downtime_ms"]; print(",".join("-" if x is None else f"{x:.0f}" for x in d), f"{max((x for x in d if x is not None), default=0):.0f}")' "$J")
  row "4 shell way" "$BENCH_SSHFS_HOSTS hosts: upgrade start -> every host running the new release (ms)" "$(fmt .0f "$SALL") (nfsup push)" \
    "rsync + symlink + parallel-ssh ${CAP_ALL:-?} (rsync $CAP_ALL_RSYNC, flip $CAP_FLIP_MS, pssh exit $CAP_ALL_RC, wall $CAP_ALL_WALL)" \
    "$( [ "${CAP_ALL:--}" != - ] && fmt .2f "$(calc "$SALL / $CAP_ALL")" || echo -)x" "-" "info"
  row "4 shell way" "downtime per host (ms; nfsup: agent gone -> status running; shell: agent's stop -> start)" "${nd% *} (max ${nd##* })" \
    "${CAP_DOWN:-?} (max ${CAP_DOWN_MAX:-?})" "-" "-" "info"
  row "4 shell way" "one host (s1) unreachable during the upgrade: what is left" \
    "push exit $NU_RC after $NU_PUSH_MS ms, $NU_OTHERS/$BENCH_SSHFS_HOSTS on 3.0, it said: ${NU_SAID:-nothing about s1}; s1 ran 3.0 ${NU_BACK_MS} ms after its link came back; $NU_END/$BENCH_SSHFS_HOSTS on 3.0" \
    "pssh exit $CAP_RC: ${CAP_CUT_SAID:-?}; $CAP_CUT_N/$BENCH_SSHFS_HOSTS on 3.0, current -> $CAP_LINK; ${BENCH_CACHE_S}+5 s after the link came back: $CAP_LATER_N/$BENCH_SSHFS_HOSTS on 3.0 (s1 runs ${CAP_S1:-?})" \
    "-" "named, converges later" "$([ "$NU_END" = "$BENCH_SSHFS_HOSTS" ] && echo MET || echo MISSED)"
  note "- **4. shell way**: the Capistrano pattern on the same sshfs hosts, after nfsup's pushes (its watchdogs stopped): \`rsync -a rel/ SHARE/cap/releases/V/\` through the master's mount, \`ln -sfn releases/V current.tmp && mv -T current.tmp current\`, then \`parallel-ssh -h hosts -t 20 -p 64 restart.sh\` (Debian's pssh); restart.sh TERMs the host's agent, waits for it to exit and starts current/bin/agent from the host's own mount. Each ssh leaves from the host's network namespace, so the cut wire (fleet_link_down 1) makes its connection time out. nfsup's unreachable case: the same cut during \`push 3.0\` (--stale-after 10s), then fleet_link_up 1."
}

# ================================================================ 4. sshfs harness: nfsup push vs the shell way
T4S=$(date +%s%N)
if want 4; then
run_sshfs=0
if [ "$BENCH_SSHFS" != 0 ]; then
  if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ]; then run_sshfs=1
  else note "- **4. sshfs**: skipped: needs root and /dev/fuse."; row "4 sshfs" "not run: needs root and /dev/fuse (nfsup and its peer alike)" "-" "-" "-" "-" "not run"
  fi
fi
if [ $run_sshfs = 1 ]; then
  say "4. sshfs harness: $BENCH_SSHFS_HOSTS hosts + master mount, cache ${BENCH_CACHE_S}s: nfsup push vs rsync + symlink + parallel-ssh"
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
    J=$W/sshfs-2.0.json
    sshfs_nfsup_unreachable
    stop_pids "${pspids[@]}"
    sshfs_capistrano
    C_MS=$((BENCH_CACHE_S * 1000))
    SSTOP=$(jget "$J" all_gone_after_marker_ms); SALL=$(jget "$J" all_running_after_push_ms)
    lim_s=$(calc "1.1 * ($POLL_MS + $C_MS)"); lim_a=$(calc "1.1 * (2 * ($POLL_MS + $C_MS) + $GRACE_MS)")
    row "4 sshfs nfsup" "$BENCH_SSHFS_HOSTS hosts: marker written -> every agent stopped (ms)" "$(fmt .0f "$SSTOP")" \
      "poll $POLL_MS, cache $C_MS" "$(fmt .2f "$(calc "$SSTOP / $POLL_MS")") polls" \
      "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_s") ms" "$(verdict "$SSTOP" '<=' "$lim_s")"
    row "4 sshfs nfsup" "$BENCH_SSHFS_HOSTS hosts: push start -> every host running the new version (ms)" "$(fmt .0f "$SALL")" \
      "poll $POLL_MS, cache $C_MS, start_grace $GRACE_MS" "$(fmt .2f "$(calc "$SALL / $POLL_MS")") polls" \
      "<= 1.1 x (2 x (poll + cache) + start) = $(fmt .0f "$lim_a") ms" "$(verdict "$SALL" '<=' "$lim_a")"
    SSTOPP=$(jget "$J" all_gone_after_stop_phase_ms)
    row "4 sshfs nfsup" "$BENCH_SSHFS_HOSTS hosts: marker's stop phase -> every agent stopped (ms)" "$(fmt .0f "$SSTOPP")" \
      "poll $POLL_MS, cache $C_MS" "$(fmt .2f "$(calc "$SSTOPP / $POLL_MS")") polls" \
      "<= 1.1 x (poll + cache) = $(fmt .0f "$lim_s") ms" "$(verdict "$SSTOPP" '<=' "$lim_s")"
    row "4 sshfs nfsup" "phases (ms): push->marker / vote round / stop phase->all stopped / marker->unmark / unmark->all running / push wall" \
      "$(fmt .0f "$(jget "$J" marker_after_push_ms)") / $(fmt .0f "$(jget "$J" stop_phase_after_marker_ms)") / $(fmt .0f "$SSTOPP") / $(fmt .0f "$(jget "$J" unmark_after_marker_ms)") / $(fmt .0f "$(jget "$J" all_running_after_unmark_ms)") / $(fmt .0f "$(jget "$J" push_wall_ms)")" \
      "median host stopped $(fmt .0f "$(jget "$J" median_gone_after_marker_ms)") ms after the marker" "-" "-" "info"
    sshfs_rows
    note "- **4. sshfs**: test/harness/fleet.sh, $BENCH_SSHFS_HOSTS hosts each with its own sshfs mount in its own network namespace plus one mount for the master (FLEET_CACHE_S=$BENCH_CACHE_S: kernel and sshfs metadata caches); push exit code $(jget "$J" push_rc), it said: \`$(tail -1 "$W/sshfs-2.0.push.log")\`. Marker and status times are taken on the server's directory (no cache); the cache time is counted once per direction in the limit for the whole upgrade."
  else
    row "4 sshfs" "fleet_up failed: $(tail -1 "$W/fleet.log")" "-" "-" "-" "-" "error"
  fi
  fleet_down >/dev/null 2>&1 || true
  FLEET_SOURCED=0
fi
S4S=$(( ($(date +%s%N) - T4S) / 1000000 ))
fi

# ================================================================ 6. push throughput and memory
T5=$(date +%s%N)
if want 6; then
say "6. push of a ${BENCH_PUSH_MIB} MiB release vs cp + sha256sum and rsync; peak RSS at 64 and ${BENCH_PUSH_MIB} MiB"
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
rsync_once() {  # rsync_once FILE OUT: rsync to a new directory on the same file system
  rm -rf "$P5/rsync"; mkdir -p "$P5/rsync"; drop
  timed "$2" rsync -a "$1" "$P5/rsync/"
  rm -rf "$P5/rsync"
}
for r in 1 2; do push_once "$P5/src/small.bin" 1.0 "$P5/small.$r"; done
for r in $(seq 1 "$BENCH_PUSH_ROUNDS"); do
  case $((r % 3)) in
    1) push_once "$P5/src/big.bin" 1.0 "$P5/push.$r"; cp_once "$P5/src/big.bin" "$P5/cp.$r"; rsync_once "$P5/src/big.bin" "$P5/rs.$r" ;;
    2) cp_once "$P5/src/big.bin" "$P5/cp.$r"; rsync_once "$P5/src/big.bin" "$P5/rs.$r"; push_once "$P5/src/big.bin" 1.0 "$P5/push.$r" ;;
    0) rsync_once "$P5/src/big.bin" "$P5/rs.$r"; push_once "$P5/src/big.bin" 1.0 "$P5/push.$r"; cp_once "$P5/src/big.bin" "$P5/cp.$r" ;;
  esac
done
med() { python3 -c 'import statistics,sys; f=int(sys.argv[1]); print(statistics.median(float(open(p).read().split()[f]) for p in sys.argv[2:]))' "$@"; }
PW=$(med 0 "$P5"/push.*); CW=$(med 0 "$P5"/cp.*); RW=$(med 0 "$P5"/rs.*)
PCPU=$(python3 -c 'import statistics,sys; print(statistics.median(sum(map(float, open(p).read().split()[1:3])) for p in sys.argv[1:]))' "$P5"/push.*)
CCPU=$(python3 -c 'import statistics,sys; print(statistics.median(sum(map(float, open(p).read().split()[1:3])) for p in sys.argv[1:]))' "$P5"/cp.*)
RSS_BIG=$(med 3 "$P5"/push.*); RSS_SMALL=$(med 3 "$P5"/small.*)
OUT_BIG=$(med 4 "$P5"/push.*)
RCPU=$(python3 -c 'import statistics,sys; print(statistics.median(sum(map(float, open(p).read().split()[1:3])) for p in sys.argv[1:]))' "$P5"/rs.*)
r5=$(calc "$PW / $CW"); r5r=$(calc "$PW / $RW")
row "6 push" "${BENCH_PUSH_MIB} MiB single-file push --no-wait, no hosts ($CACHE_MODE cache, median of $BENCH_PUSH_ROUNDS, s)" \
  "$(fmt .2f "$PW") ($(fmt .0f "$(calc "$BENCH_PUSH_MIB / $PW")") MiB/s, CPU $(fmt .2f "$PCPU") s)" \
  "cp+sha256sum $(fmt .2f "$CW") (CPU $(fmt .2f "$CCPU") s); rsync $(fmt .2f "$RW") (CPU $(fmt .2f "$RCPU") s)" \
  "$(fmt .2f "$r5")x cp+sha256sum; $(fmt .2f "$r5r")x rsync" "<= 1.0x cp+sha256sum" "$(verdict "$r5" '<=' 1.0)"
# Re-push: same content, new version name, onto the share that already has it (the last push_once).
du0=$(du -sb "$P5/share" | cut -f1)
/usr/bin/time -f "%e %U %S %M %O" -o "$P5/repush" "$INSTALL" push "$P5/share" "$P5/src/big.bin" --version 1.1 --no-wait -v \
  >"$P5/repush.out" 2>&1
du1=$(du -sb "$P5/share" | cut -f1)
RE_OUT=$(( $(cut -d' ' -f5 "$P5/repush") * 512 ))
RE_W=$(grep -o -E "[0-9]+ written to the share" "$P5/repush.out" | cut -d' ' -f1 || echo "?")
row "6 push" "re-push, same content as a new version: bytes written" \
  "$RE_OUT (write_bytes); share grew $((du1 - du0)) B; push says $RE_W" "first push wrote $(( ${OUT_BIG%.*} * 512 / 1048576 )) MiB" \
  "$(fmt .6f "$(calc "$RE_OUT / ($BENCH_PUSH_MIB * 1048576)")")x" "~0" "$(verdict "$RE_OUT" '<=' 1048576)"
row "6 push" "re-push wall (s)" "$(cut -d' ' -f1 "$P5/repush")" "first push $(fmt .2f "$PW")" \
  "$(fmt .2f "$(calc "$(cut -d' ' -f1 "$P5/repush") / $PW")")x" "-" "info"
row "6 push memory" "peak RSS of push, 64 MiB vs ${BENCH_PUSH_MIB} MiB release (KiB)" "$(fmt .0f "$RSS_SMALL") / $(fmt .0f "$RSS_BIG")" \
  "-" "$(fmt .3f "$(calc "$RSS_BIG / $RSS_SMALL")")x" "bounded: growth <= 1 MiB" "$(verdict "$(calc "$RSS_BIG - $RSS_SMALL")" '<=' 1024)"
note "- **6. push**: \`nfsup-install push SHARE big.bin --version V --no-wait\` on a fresh share (no hosts), against \`cp big.bin copy.bin && sha256sum copy.bin\` and \`rsync -a big.bin dir/\` (a new directory: the whole file is copied; rsync checks its transfer with a rolling checksum and does not fsync) on the same file system ($FSTYPE), order rotated each round, page cache ${CACHE_MODE}$([ $CACHE_MODE = cold ] && echo " (sync; drop_caches before every run)"). Bytes written = GNU time %O (write_bytes / 512). By design the push reads the data three times (hash the source, copy while hashing, verify the published release before the marker) and fsyncs the object; cp + sha256sum reads it twice and does not fsync."
S5=$(( ($(date +%s%N) - T5) / 1000000 ))
fi

# ================================================================ 5. fleet scale
T6=$(date +%s%N)
if want 5; then
say "5. status and the master's wait round with $BENCH_STATUS_HOSTS host status files; simulator at $BENCH_SIM_HOSTS hosts"
P6=$W/p6
mkdir -p "$P6"
make_release "$P6/rel1" 1.0; make_release "$P6/rel2" 2.0
# One share per fleet size, `status` measured interleaved (a load change on the machine then
# hits every size alike, and the linear fit compares like with like).
st_pts=""; rd_pts=""; st_cmds=()
for n in $BENCH_STATUS_HOSTS; do
  "$INSTALL" init --local "$P6/s$n" -q
  "$INSTALL" push "$P6/s$n" "$P6/rel1" --version 1.0 --no-wait -q
  python3 "$HELPER" genstatus "$P6/s$n/hosts" 0 "$n"
  st_cmds+=("{\"name\":\"status-$n\",\"argv\":[\"$INSTALL\",\"status\",\"$P6/s$n\"]}")
done
python3 "$HELPER" ticks --runs 3 --warmup 0 "${st_cmds[@]}" >"$W/status.json"
vote_flags=()
if "$INSTALL" push --help 2>&1 | grep -q -- --vote-timeout; then vote_flags=(--vote-timeout 1s --assume-accept); fi
# The master's wait loop: a real push with every host live and none ever stopping; it reads
# every pending host's status each round, sleeps, and gives up after --timeout (then backs
# out). A long lease keeps renewals out of the way. A round = the time between two sleeps
# (strace -T: each sleep's own length is taken off), from the marker's stop phase on.
for n in $BENCH_STATUS_HOSTS; do
  st_pts+="$n:$(jget "$W/status.json" "status-$n.wall_ms_median") "
  python3 "$HELPER" genstatus "$P6/s$n/hosts" 0 "$n"   # fresh mtimes: every host is live
  strace --seccomp-bpf -f -qq -ttt -T -e trace=clock_nanosleep,rename,renameat,renameat2 -o "$W/round.$n.trace" \
    "$INSTALL" push "$P6/s$n" "$P6/rel2" --version 2.0 --no-wait --timeout "$((3 + n / 4000))s" --stale-after 600s \
    --lease 600s "${vote_flags[@]}" -q >/dev/null 2>"$W/round.$n.err" || true
  python3 - "$W/round.$n.trace" >"$W/round.$n.json" <<'PY'
import json, re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if re.search(r" rename(at2?)?\(", l) and 'MARKER"' in l), 0)
main = lines[start].split()[0] if lines else ""   # the master's thread (other threads sleep too)
starts, durs = [], []
for l in lines[start:]:
    w = l.split()
    if not w or w[0] != main or "clock_nanosleep" not in l:
        continue
    if "resumed>" not in l:
        starts.append(float(w[1]))
    m = re.search(r"<([\d.]+)>$", l)
    if m:
        durs.append(float(m.group(1)))
sl = [(t, d) for t, d in zip(starts, durs) if d >= 0.005]
rounds = [(b[0] - a[0] - a[1]) * 1000 for a, b in zip(sl, sl[1:])]
json.dump({"rounds": len(rounds), "round_ms": statistics.median(rounds) if rounds else None}, sys.stdout)
PY
  rd_pts+="$n:$(jget "$W/round.$n.json" round_ms) "
  rm -rf "$P6/s$n"
done
fit() {  # fit N:MS... -> JSON slope (us per host), fixed (ms), r2
  python3 - "$@" <<'PY'
import json, sys
pts = [tuple(map(float, p.split(":"))) for p in sys.argv[1:] if not p.endswith("None")]
xs, ys = [p[0] for p in pts], [p[1] for p in pts]
if len(pts) < 2:
    print(json.dumps({"us_per_host": 0, "fixed_ms": 0, "r2": 0})); sys.exit()
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
sxx = sum((x - mx) ** 2 for x in xs)
k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0
a = my - k * mx
tot = sum((y - my) ** 2 for y in ys)
r2 = 1 - sum((y - a - k * x) ** 2 for x, y in zip(xs, ys)) / tot if tot else 1.0
print(json.dumps({"us_per_host": k * 1000, "fixed_ms": a, "r2": r2}))
PY
}
read -r -a st_arr <<<"$st_pts"; read -r -a rd_arr <<<"$rd_pts"
fit "${st_arr[@]}" >"$W/status-fit.json"; fit "${rd_arr[@]}" >"$W/round-fit.json"
pts_txt() { local p; for p in "$@"; do if [ "${p#*:}" = None ]; then printf '%s: -; ' "${p%%:*}"; else printf '%s: %s; ' "${p%%:*}" "$(fmt .0f "${p#*:}")"; fi; done; }
SR2=$(jget "$W/status-fit.json" r2); RR2=$(jget "$W/round-fit.json" r2)
read -r -a sp <<<"$st_pts"; last=${sp[-1]}; N_LAST=${last%%:*}; T_LAST=${last#*:}
row "5 fleet scale" "\`status\` by fleet size (ms, median of 3, sizes interleaved)" "$(pts_txt "${st_arr[@]}")" "-" \
  "fit: $(fmt .1f "$(jget "$W/status-fit.json" us_per_host)") us/host + $(fmt .0f "$(jget "$W/status-fit.json" fixed_ms)") ms" \
  "linear (R^2 >= 0.98)" "$(verdict "$SR2" '>=' 0.98) (R^2 $(fmt .4f "$SR2"))"
row "5 fleet scale" "master wait loop: one status round over N live hosts (ms)" "$(pts_txt "${rd_arr[@]}")" "status at $N_LAST: $(fmt .0f "$T_LAST")" \
  "fit: $(fmt .1f "$(jget "$W/round-fit.json" us_per_host)") us/host + $(fmt .0f "$(jget "$W/round-fit.json" fixed_ms)") ms" \
  "linear (R^2 >= 0.98)" "$(verdict "$RR2" '>=' 0.98) (R^2 $(fmt .4f "$RR2"))"
note "- **5. fleet scale**: host status files written in the format of pack_status (src/core/share.cpp) by scripts/bench-helper.py genstatus. \`status\` lists hosts/, reads and stats every status file. The master's wait loop was timed in a real push per size whose hosts are all live and never stop (\`--timeout 3s + N/4000 s, --lease 600s ${vote_flags[*]}\`; it then backs out): rounds after the marker's stop phase (counted: $(for n in $BENCH_STATUS_HOSTS; do printf '%s: %s; ' "$n" "$(jget "$W/round.$n.json" rounds)"; done)); a round = from the end of one sleep to the start of the next (lease renewal + reading every pending host's status)."
SIM=$ROOT/build/test/sim/nfsup-sim
if [ -x "$SIM" ] && { "$SIM" --help 2>&1 || true; } | grep -q -- --hosts; then
  /usr/bin/time -f "%e %U %S %M" -o "$W/sim.time" "$SIM" --seed 1 --hosts "$BENCH_SIM_HOSTS" --switches 1 --calm \
    >"$W/sim.out" 2>&1 || true
  read -r sim_wall _ _ sim_rss <"$W/sim.time" || true
  sim_steps=$(sed -n -E 's/^[0-9]+ schedules, ([0-9]+) steps, ([0-9]+) violated.*/\1/p' "$W/sim.out")
  sim_viol=$(sed -n -E 's/^[0-9]+ schedules, ([0-9]+) steps, ([0-9]+) violated.*/\2/p' "$W/sim.out")
  row "5 fleet scale" "simulator: $BENCH_SIM_HOSTS hosts, one all-at-once switch (seed 1, --calm; every invariant checked each step)" \
    "${sim_steps:-?} steps in ${sim_wall:-?} s = $(fmt .0f "$(calc "${sim_steps:-0} / max(${sim_wall:-1}, 0.001)")") steps/s; peak RSS $(fmt .0f "$(calc "${sim_rss:-0} / 1024")") MiB" \
    "-" "$(fmt .1f "$(calc "${sim_rss:-0} / $BENCH_SIM_HOSTS")") KiB/host" "runs, 0 violated" \
    "$([ "${sim_viol:-1}" = 0 ] && echo MET || echo "MISSED ($(head -c 200 "$W/sim.out" | tr '\n' ' '))")"
else
  row "5 fleet scale" "simulator at $BENCH_SIM_HOSTS hosts" "not run: no build/test/sim/nfsup-sim with --hosts (ninja -C build)" "-" "-" "-" "not run"
fi
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
  echo "- builds: $BENCH_PKG_DIR (as packaging/debian/rules: dpkg-buildflags hardening=+all, buildtype plain) and $BENCH_BUILD_DIR (static release); $LINKAGE ($((BUILD_S / 1000)) s to build); work dir file system: $FSTYPE"
  echo "- run time: ${TOTAL_S} s (build $((BUILD_S / 1000)) s; 1: $((S1 / 1000)) s, 2: $((S2 / 1000)) s, 3: $((S3 / 1000)) s, 4: $((S4S / 1000)) s, 5: $((S6 / 1000)) s, 6: $((S5 / 1000)) s, r: $((S4 / 1000)) s)"
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
