#!/usr/bin/env python3
"""Measurement helpers for scripts/bench.sh (standard library only).

  ticks      run commands interleaved, N rounds: median wall and CPU (user+sys) per run
  procstat   CPU (ns, all threads), clock ticks, VmRSS/VmHWM of running processes
  genstatus  write host status files in the format of src/core/share.cpp pack_status
  react      launch a push and time it against the fleet: marker seen, marker in its stop
             phase, every agent gone (pidfd), marker removed, every host reporting `running`
"""
import argparse
import json
import os
import random
import select
import statistics
import struct
import subprocess
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ---------------------------------------------------------------- ticks

def spawn_wait(argv):
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                            (os.POSIX_SPAWN_DUP2, devnull, 1),
                                            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
    finally:
        os.close(devnull)
    # (ru_maxrss is not reported: a posix_spawn child starts out in this Python's address space)
    return ((t1 - t0) / 1e6, (ru.ru_utime + ru.ru_stime) * 1e3, os.waitstatus_to_exitcode(status))


def cmd_ticks(a):
    cmds = [json.loads(c) for c in a.cmd]  # each: {"name":..., "argv":[...]}
    res = {c["name"]: {"wall": [], "cpu": [], "rc": {}} for c in cmds}
    order = list(cmds)
    rnd = random.Random(1)
    for r in range(a.warmup + a.runs):
        rnd.shuffle(order)  # interleaved, so a load change on the machine hits every command alike
        if a.gap_ms:
            time.sleep(a.gap_ms / 1000.0)
        for c in order:
            w, cpu, rc = spawn_wait(c["argv"])
            if r < a.warmup:
                continue
            d = res[c["name"]]
            d["wall"].append(w)
            d["cpu"].append(cpu)
            d["rc"][str(rc)] = d["rc"].get(str(rc), 0) + 1
    out = {}
    for name, d in res.items():
        out[name] = {
            "runs": len(d["wall"]),
            "wall_ms_median": statistics.median(d["wall"]),
            "wall_ms_p10": pct(d["wall"], 10),
            "wall_ms_p90": pct(d["wall"], 90),
            "cpu_ms_median": statistics.median(d["cpu"]),
            "cpu_ms_mean": statistics.fmean(d["cpu"]),
            "exit_codes": d["rc"],
        }
    json.dump(out, sys.stdout, indent=1)
    print()


# ---------------------------------------------------------------- procstat

def proc_sample(pid):
    cpu_ns = 0
    threads = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            vol = invol = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol = int(line.split()[1])
            cpu_ns += ns
            threads.append({"tid": int(tid), "cpu_ns": ns, "voluntary": vol, "nonvoluntary": invol})
        except FileNotFoundError:
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                st[k] = int(v.split()[0])
    return {"pid": pid, "time": time.monotonic(), "cpu_ns": cpu_ns, "ticks": ticks,
            "clk_tck": os.sysconf("SC_CLK_TCK"), "threads": threads, **st}


def cmd_procstat(a):
    json.dump([proc_sample(p) for p in a.pid], sys.stdout)
    print()


# ---------------------------------------------------------------- genstatus

STATUS = ("nfsup-status 1\nhost {h}\nstate running\nrunning {v}\ngeneration {g}\nheartbeat 7\n"
          "pid {pid}\nagent_pid {apid}\nmode daemon\nreason -\nupdated 2026-01-01T00:00:00Z\n"
          "trust unsigned\ngroup -\nacting {v}\n")


def cmd_genstatus(a):
    for i in range(a.start, a.end):
        h = f"{a.prefix}{i:05d}"
        d = os.path.join(a.hosts_dir, h)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "status"), "w") as f:
            f.write(STATUS.format(h=h, v=a.version, g=a.generation, pid=10000 + i, apid=20000 + i))


# ---------------------------------------------------------------- react

def read_status(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2:
                    d[p[0]] = p[1]
    except OSError:
        pass
    return d


def agent_pid(state_file):
    try:
        with open(state_file) as f:
            for line in f:
                p = line.split()
                if p and p[0] == "agent":
                    return int(p[1])
    except OSError:
        pass
    return 0


class Inotify:
    """inotify through libc (ctypes): the observer sleeps until the share changes instead of
    scanning it, so it takes no CPU from the fleet it measures."""
    IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW = 0x8, 0x40, 0x80, 0x100, 0x200, 0x4000

    def __init__(self):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.paths = {}

    def watch(self, path, mask):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise OSError(0, f"inotify_add_watch {path}")
        self.paths[wd] = path
        return wd

    def events(self):
        """[(wd, mask, name)] of everything queued (wd -1: the queue overflowed)."""
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + ln].split(b"\0", 1)[0].decode(errors="replace")
                out.append((-1 if mask & self.IN_Q_OVERFLOW else wd, mask, name))
                i += 16 + ln


def cmd_react(a):
    hosts = a.hosts.split(",")
    gen = 1
    cur = read_status(os.path.join(a.share_view, "current"))
    if "generation" in cur:
        gen = int(cur["generation"]) + 1
    poller = select.poll()
    fds = {}
    for h in hosts:
        pid = agent_pid(a.state_fmt.format(h=h))
        if pid <= 0:
            sys.exit(f"react: {h}: no agent pid in {a.state_fmt.format(h=h)}")
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            sys.exit(f"react: {h}: agent pid {pid} is not running")
        fds[fd] = h
        poller.register(fd, select.POLLIN)
    marker = os.path.join(a.share_view, "MARKER")
    # Watch the share root (marker) and each host's status directory: an event names what
    # changed, so only that file is read. Without inotify: poll the marker every 1 ms and scan
    # every status file every scan_ms (that scan costs the fleet CPU at 100 hosts).
    ino, by_wd = None, {}
    if not a.poll:
        try:
            ino = Inotify()
            ino.watch(a.share_view, Inotify.IN_CREATE | Inotify.IN_DELETE | Inotify.IN_MOVED_TO | Inotify.IN_MOVED_FROM)
            for h in hosts:
                by_wd[ino.watch(os.path.dirname(a.status_fmt.format(h=h)),
                                Inotify.IN_MOVED_TO | Inotify.IN_CLOSE_WRITE | Inotify.IN_CREATE)] = h
            poller.register(ino.fd, select.POLLIN)
        except OSError as e:
            print(f"react: no inotify ({e}); polling", file=sys.stderr)
            ino = None
    ns = time.monotonic_ns
    err = open(a.push_log, "w")
    t_push = ns()
    proc = subprocess.Popen(a.push, stdout=err, stderr=subprocess.STDOUT)
    t_marker = t_stop_phase = t_unmark = t_end = None
    gone, stopped, running = {}, {}, {}
    last_scan = 0
    deadline = t_push + int(a.timeout * 1e9)

    def look_marker(now):
        nonlocal t_marker, t_stop_phase, t_unmark
        try:
            with open(marker) as f:
                text = f.read()
            present = True
        except FileNotFoundError:
            present = False
        if present and t_marker is None:
            t_marker = now
        # Since the vote phase, a marker first asks hosts to vote ("phase vote"); the rewrite
        # without that line tells them to stop.
        if present and t_stop_phase is None and text.endswith("\n") and "\nphase vote\n" not in text:
            t_stop_phase = now
        if not present and t_marker is not None and t_unmark is None:
            t_unmark = now

    def look_host(h, now):
        if h in running:
            return
        s = read_status(a.status_fmt.format(h=h))
        try:
            g = int(s.get("generation", "0"))
        except ValueError:
            g = 0
        if g < gen:
            return
        if s.get("state") == "stopped" and h not in stopped:
            stopped[h] = now
        if s.get("state") == "running" and s.get("running") == a.target:
            running[h] = now

    # With inotify the full scan is only a safety net (and the way to see a proc that ended).
    scan_ns = (250 if ino else a.scan_ms) * 1e6
    while True:
        for fd, _ in poller.poll(50 if ino else 1):
            if ino and fd == ino.fd:
                continue
            gone[fds[fd]] = ns()
            poller.unregister(fd)
            os.close(fd)
        now = ns()
        full = now - last_scan >= scan_ns
        if ino:
            evs = ino.events()
            if any(wd == -1 for wd, _, _ in evs):
                full = True
            if any(by_wd.get(wd) is None and name == "MARKER" for wd, _, name in evs):
                look_marker(now)
            for h in {by_wd[wd] for wd, _, name in evs if wd in by_wd and name == "status"}:
                look_host(h, now)
        else:
            look_marker(now)
        if full:
            last_scan = now
            if ino:
                look_marker(now)
            for h in hosts:
                look_host(h, now)
        if t_end is None and proc.poll() is not None:
            t_end = ns()
        if t_end is not None and len(running) == len(hosts):
            break
        if now > deadline:
            break
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait()

    def rel(t, base):
        return None if t is None or base is None else (t - base) / 1e6

    out = {
        "hosts": len(hosts), "generation": gen, "push_rc": rc, "observer": "inotify" if ino else "polling",
        "marker_after_push_ms": rel(t_marker, t_push),
        "agents_gone": len(gone), "hosts_running": len(running),
        "all_gone_after_marker_ms": rel(max(gone.values()) if len(gone) == len(hosts) else None, t_marker),
        "median_gone_after_marker_ms": (statistics.median([(v - t_marker) / 1e6 for v in gone.values()])
                                        if gone and t_marker else None),
        "all_stopped_status_after_marker_ms": rel(max(stopped.values()) if len(stopped) == len(hosts) else None,
                                                  t_marker),
        "stop_phase_after_marker_ms": rel(t_stop_phase, t_marker),
        "all_gone_after_stop_phase_ms": rel(max(gone.values()) if len(gone) == len(hosts) else None, t_stop_phase),
        "unmark_after_marker_ms": rel(t_unmark, t_marker),
        "all_running_after_unmark_ms": rel(max(running.values()) if len(running) == len(hosts) else None, t_unmark),
        "median_running_after_unmark_ms": rel(statistics.median(running.values()) if running else None, t_unmark),
        "first_running_after_unmark_ms": rel(min(running.values()) if running else None, t_unmark),
        "all_running_after_push_ms": rel(max(running.values()) if len(running) == len(hosts) else None, t_push),
        "push_wall_ms": rel(t_end, t_push),
        # per host: agent gone (pidfd) -> status says running the target (ms), in host order
        "downtime_ms": [rel(running.get(h), gone.get(h)) for h in hosts],
    }
    json.dump(out, sys.stdout)
    print()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("ticks")
    t.add_argument("--runs", type=int, default=200)
    t.add_argument("--warmup", type=int, default=10)
    t.add_argument("--gap-ms", type=float, default=0, help="sleep between rounds")
    t.add_argument("cmd", nargs="+", help='JSON: {"name": ..., "argv": [...]}')
    p = sub.add_parser("procstat")
    p.add_argument("pid", type=int, nargs="+")
    g = sub.add_parser("genstatus")
    g.add_argument("hosts_dir")
    g.add_argument("start", type=int)
    g.add_argument("end", type=int)
    g.add_argument("--prefix", default="h")
    g.add_argument("--version", default="1.0")
    g.add_argument("--generation", type=int, default=1)
    r = sub.add_parser("react")
    r.add_argument("--share-view", required=True, help="the share as the server sees it (no client cache)")
    r.add_argument("--status-fmt", required=True, help="status file path with {h}")
    r.add_argument("--state-fmt", required=True, help="watchdog local state file path with {h}")
    r.add_argument("--hosts", required=True)
    r.add_argument("--target", required=True)
    r.add_argument("--timeout", type=float, default=120)
    r.add_argument("--scan-ms", type=float, default=10, help="status scan interval when polling")
    r.add_argument("--poll", action="store_true", help="poll and scan instead of inotify")
    r.add_argument("--push-log", required=True)
    r.add_argument("push", nargs="+")
    a = ap.parse_args()
    {"ticks": cmd_ticks, "procstat": cmd_procstat, "genstatus": cmd_genstatus, "react": cmd_react}[a.what](a)


if __name__ == "__main__":
    main()
