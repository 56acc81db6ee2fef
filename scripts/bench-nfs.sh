#!/usr/bin/env bash
# nfsup on real Linux NFS clients: BENCH_NFS_HOSTS (4) user-mode Linux guests against
# nfs-ganesha (test/nfs/lib.sh), each mounting the export with the kernel's default options
# (caches included) and running one watchdog daemon with the default poll_interval (2s) and
# heartbeat_interval (10s). Measures, for an upgrade of a 50 x 1 MiB release in which one file
# changed (the master pushes from the server's directory):
#   marker written -> every agent stopped; push start -> every host running the new release;
#   per-host downtime (old agent stopped -> new agent started, on the agents' own clocks);
#   idle NFS RPCs per host per minute, by operation (/proc/self/mountstats, 30 s x 2);
#   server bytes read per host for the upgrade (mountstats "bytes:" read counter).
# Prints a human table, then "key value" lines (bench.sh parses those starting with "nfs.").
# Usage: scripts/bench-nfs.sh [4.1|4.2|3]   (root and /dev/net/tun; exits 77 when it cannot run)
# Knobs: NFSUP_BUILD=build/src BENCH_NFS_HOSTS=4 BENCH_NFS_IDLE_S=30
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
vers=${1:-4.1}
B=${NFSUP_BUILD:-$ROOT/build/src}
: "${BENCH_NFS_HOSTS:=4}" "${BENCH_NFS_IDLE_S:=30}"
N=$BENCH_NFS_HOSTS
[ -x "$B/nfsup-install" ] || { echo "bench-nfs: no nfsup-install in $B (build first)" >&2; exit 1; }
case "$(readlink -f "$B")/" in
  /tmp/* | /run/* | /var/tmp/*) echo "bench-nfs: $B: the guests cannot see a build under /tmp, /run or /var/tmp" >&2; exit 1 ;;
esac
# shellcheck source=../test/nfs/lib.sh
source "$ROOT/test/nfs/lib.sh"
miss=$(nfs_missing)
if [ -n "$miss" ] && [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ]; then nfs_deps >&2 || true; miss=$(nfs_missing); fi
if [ -n "$miss" ]; then echo "bench-nfs: cannot run here, needs: $miss"; exit 77; fi

say() { printf '[bench-nfs %s] %s\n' "$(date +%T)" "$*" >&2; }
nfs_gc
trap 'nfs_down' EXIT
trap 'exit 143' TERM INT
T0=$(nfs_now_ms)
nfs_up "$N" >&2 || { echo "bench-nfs: nfs_up $N failed" >&2; exit 1; }
say "$N guests up in $(( ($(nfs_now_ms) - T0) / 1000 )) s"
MNT=$NFS_DIR/mnt/bench
SHARE=$NFS_EXPORT/bench     # the server's own directory (the master's view)
GSHARE=$MNT/bench           # what each guest sees through its NFS mount
D=$NFS_DIR/bench
mkdir -p "$D"
"$B/nfsup-install" init --local "$SHARE" -q

release() {  # release DIR VERSION: bin/agent that logs start/stop with its clock, + 50 x 1 MiB
  mkdir -p "$1/bin"
  cat >"$1/bin/agent" <<'EOA'
#!/bin/sh
log="$(dirname "$1")/agent.log"
echo "start $NFSUP_VERSION $(date +%s%3N)" >>"$log"
trap 'echo "stop $NFSUP_VERSION $(date +%s%3N)" >>"$log"; exit 0' TERM INT
while :; do sleep 1 & wait $!; done
EOA
  chmod 755 "$1/bin/agent"
  echo "release $2" >"$1/VERSION"
}
release "$D/rel1" 1.0
for i in $(seq 1 50); do head -c 1048576 /dev/urandom >"$D/rel1/f$i"; done
cp -a "$D/rel1" "$D/rel2"; echo "release 2.0" >"$D/rel2/VERSION"
head -c 1048576 /dev/urandom >"$D/rel2/f1"
MOPTS=(--stale-after 30s --lease 30s --timeout 240s --share-timeout 30s -q)
"$B/nfsup-install" push "$SHARE" "$D/rel1" --version 1.0 --no-wait -q

for i in $(seq 1 "$N"); do
  nfs_mount "g$i" "$MNT" "$vers" >&2 || { echo "bench-nfs: mount in g$i failed" >&2; exit 1; }
  h=$D/h$i
  mkdir -p "$h/state"
  echo "level: one" >"$h/agent.yaml"
  cat >"$h/watchdog.yaml" <<EOC
share: $GSHARE
host: h$i
share_timeout: 30s
state_dir: $h/state
agent:
  command: [bin/agent, "{config}"]
  config: $h/agent.yaml
  stop_timeout: 5s
  start_grace: 300ms
EOC
  nfs_exec "g$i" "setsid '$B/nfsup-watchdog' run -c '$h/watchdog.yaml' >>'$h/watchdog.log' 2>&1 </dev/null & echo \$! >'$h/wd.pid'" 30 >/dev/null
done
running_all() {  # running_all VERSION: every host's status says running VERSION
  local i
  for i in $(seq 1 "$N"); do
    awk -v v="$1" '$1=="state" && $2=="running" {s=1} $1=="running" && $2==v {r=1} END {exit !(s && r)}' \
      "$SHARE/hosts/h$i/status" 2>/dev/null || return 1
  done
}
wait_all() {  # wait_all VERSION SECONDS
  local end=$(( $(nfs_now_ms) + $2 * 1000 ))
  until running_all "$1"; do
    (( $(nfs_now_ms) < end )) || { echo "bench-nfs: not every host runs $1 after $2 s" >&2; return 1; }
    sleep 0.2
  done
}
wait_all 1.0 180
say "every host runs 1.0; idle for 2 x ${BENCH_NFS_IDLE_S} s"
sleep 12   # past the first heartbeat and the local store's fill

mstats() {  # mstats GUEST: "OP count" lines and "BYTES_READ n" of the bench mount
  nfs_mountstats "$1" "$MNT" | awk '
    $1 == "bytes:" { print "BYTES_READ", $6 }
    /per-op statistics/ { ops = 1; next }
    ops && NF >= 9 && $1 ~ /:$/ { sub(/:$/, "", $1); print $1, $2 }'
}
snap() {  # snap TAG: every guest's counters into $D/TAG.gI
  local i ps=()
  for i in $(seq 1 "$N"); do mstats "g$i" >"$D/$1.g$i" & ps+=($!); done
  wait "${ps[@]}"
}
snap s0; sleep "$BENCH_NFS_IDLE_S"; snap s1

# The upgrade, observed from the server's directory (marker times) and the agents' logs.
say "push 2.0 (one of 50 files changed)"
snap s2
python3 - "$SHARE" "$D/push.json" "$D/push.log" "$B/nfsup-install" push "$SHARE" "$D/rel2" --version 2.0 "${MOPTS[@]}" <<'PY'
import json, os, subprocess, sys, time
share, out, log, push = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ms = lambda: time.time() * 1000
marker = os.path.join(share, "MARKER")
t = {"push": ms()}
p = subprocess.Popen(push, stdout=open(log, "w"), stderr=subprocess.STDOUT)
while True:
    try:
        text = open(marker).read()
        t.setdefault("marker", ms())
        if text.endswith("\n") and "\nphase vote\n" not in text:
            t.setdefault("stop_phase", ms())
    except FileNotFoundError:
        if "marker" in t:
            t.setdefault("unmark", ms())
    if p.poll() is not None:
        t["end"] = ms()
        break
    time.sleep(0.005)
t["rc"] = p.returncode
json.dump(t, open(out, "w"))
PY
wait_all 2.0 120 || true
sleep 5   # the hosts' local store settles (their reads count)
snap s3

# ---------------------------------------------------------------- figures
python3 - "$D" "$N" "$BENCH_NFS_IDLE_S" "$vers" <<'PY'
import json, sys
d, n, idle_s, vers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def counters(f):
    c = {}
    for line in open(f):
        k, v = line.split()
        c[k] = int(v)
    return c
def delta(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) - a.get(k, 0) > 0}
t = json.load(open(f"{d}/push.json"))
idle, upg, down, stops, starts = {}, {}, {}, {}, {}
for i in range(1, n + 1):
    g = f"g{i}"
    idle[g] = {k: v * 60 / idle_s for k, v in delta(counters(f"{d}/s0.{g}"), counters(f"{d}/s1.{g}")).items()}
    upg[g] = delta(counters(f"{d}/s2.{g}"), counters(f"{d}/s3.{g}"))
    st, sp = None, None
    for line in open(f"{d}/h{i}/agent.log"):
        w = line.split()
        if w[0] == "stop" and w[1] == "1.0": sp = int(w[2])
        if w[0] == "start" and w[1] == "2.0": st = int(w[2])
    stops[g], starts[g] = sp, st
    down[g] = st - sp if st and sp else None
ops = sorted({k for g in idle for k in idle[g] if k != "BYTES_READ"})
print(f"NFSv{vers}, {n} hosts (UML guests, default mount options), poll_interval 2s, heartbeat_interval 10s")
print(f"idle RPCs per host per minute ({idle_s:.0f} s x {60 / idle_s:.0f}):")
print("  " + "op".ljust(12) + "".join(f"{g:>9}" for g in sorted(idle)))
for op in ops + ["total"]:
    vals = [sum(v for k, v in idle[g].items() if k != "BYTES_READ") if op == "total" else idle[g].get(op, 0)
            for g in sorted(idle)]
    print("  " + op.ljust(12) + "".join(f"{v:9.0f}" for v in vals))
print("upgrade (one of 50 x 1 MiB changed): server bytes read per host:",
      ", ".join(f"{g} {upg[g].get('BYTES_READ', 0)}" for g in sorted(upg)))
print("downtime per host (ms, old agent stopped -> new started):", ", ".join(f"{g} {down[g]}" for g in sorted(down)))
ok = all(v is not None for v in stops.values()) and all(v is not None for v in starts.values())
fig = {"push_rc": t["rc"], "hosts": n, "vers": vers}
if ok and "marker" in t:
    fig["marker_to_all_stopped_ms"] = max(stops.values()) - t["marker"]
    fig["stop_phase_to_all_stopped_ms"] = max(stops.values()) - t.get("stop_phase", t["marker"])
    fig["push_to_all_running_ms"] = max(starts.values()) - t["push"]
    fig["unmark_to_all_running_ms"] = max(starts.values()) - t["unmark"] if "unmark" in t else None
fig["push_wall_ms"] = t["end"] - t["push"]
fig["downtime_ms"] = ",".join(str(down[g]) for g in sorted(down))
fig["downtime_max_ms"] = max((v for v in down.values() if v is not None), default=None)
tot = [sum(v for k, v in idle[g].items() if k != "BYTES_READ") for g in sorted(idle)]
fig["idle_rpcs_per_min"] = ",".join(f"{v:.0f}" for v in tot)
fig["idle_rpcs_per_min_max"] = round(max(tot))
fig["idle_ops_g1"] = " ".join(f"{k}:{v:.0f}" for k, v in sorted(idle["g1"].items(), key=lambda x: -x[1]) if k != "BYTES_READ")
rb = [upg[g].get("BYTES_READ", 0) for g in sorted(upg)]
fig["upgrade_bytes_read"] = ",".join(str(v) for v in rb)
fig["upgrade_bytes_read_max"] = max(rb)
fig["upgrade_rpcs_g1"] = sum(v for k, v in upg["g1"].items() if k != "BYTES_READ")
for k, v in fig.items():
    print(f"nfs.{k} {round(v) if isinstance(v, float) else v}")
PY
echo "nfs.boot_s $NFS_BOOT_S"
rc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rc"])' "$D/push.json")
[ "$rc" = 0 ] || { echo "bench-nfs: the push exited $rc:" >&2; cat "$D/push.log" >&2; }
# Stop the daemons (they live in the guests; nfs_down ends the guests anyway).
for i in $(seq 1 "$N"); do
  nfs_exec "g$i" "kill -TERM \$(cat '$D/h$i/wd.pid') 2>/dev/null; true" 20 >/dev/null 2>&1 &
done
wait
exit "$rc"
