// nfsup host: the watchdog's entry points: the daemon loop and the cron tick.
#include "watchdog_impl.h"

namespace nfsup {

using wd::Watchdog;
using wd::ShareGuard;

// ================================================================ memory

namespace {

// An idle daemon needs little of what start-up touched. Gives back the heap's free top and
// unmaps the pages of every read-only segment of the program and its libraries (code and
// constants; never a writable or RELRO segment, which MADV_DONTNEED would reset). They stay
// in the page cache, and the kernel maps back in only what the idle loop touches.
void shed_startup_memory() {
  ::malloc_trim(0);
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) -> int {
        if (info->dlpi_name && info->dlpi_name[0] && info->dlpi_name[0] != '/') return 0;  // vdso
        const uintptr_t pg = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W)) continue;
          uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
          lo = (lo + pg - 1) & ~(pg - 1);
          hi &= ~(pg - 1);
          if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
        }
        return 0;
      },
      nullptr);
}

}  // namespace

// ================================================================ entry points

namespace {

// The lock on <state_dir>/lock keeps a daemon and cron ticks (or two daemons) from working on
// one state_dir at once. Its holder writes what it is into the file ("daemon PID" or
// "check PID"), for the message of whoever finds it taken.
std::string lock_holder(int fd) {
  char buf[64] = {0};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void note_lock_holder(int fd, const char* what) {
  std::string t = fmt::format("{} {}\n", what, ::getpid());
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, t.data(), t.size(), 0);
}

// The lock on <state_dir>/lock, held for the daemon's lifetime (close-on-exec: the agent does
// not inherit it). A cron tick holding it finishes within its own time limit: wait up to a
// minute for it. Another daemon does not finish: give up at once. Returns 0 or the exit code.
int take_daemon_lock(const WatchdogConfig& cfg, const WatchdogRuntimeOptions& opt) {
  ::mkdir(cfg.state_dir.c_str(), 0755);
  std::string lock = path_join(cfg.state_dir, "lock");
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (opt.log) opt.log(LogLevel::Error, fmt::format("open({}): {}", lock, errno_str(errno)));
    return static_cast<int>(Exit::Usage);
  }
  int64_t until = boot_ms() + 60000;
  bool told = false;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string who = lock_holder(fd);
    if (starts_with(who, "daemon ") || boot_ms() >= until) {
      if (opt.log)
        opt.log(LogLevel::Error, fmt::format("{}: {} is held by {}; one watchdog per state_dir", cfg.host, lock,
                                             who.empty() ? std::string("another process") : who));
      ::close(fd);
      return static_cast<int>(Exit::Busy);
    }
    if (!told && opt.log)
      opt.log(LogLevel::Warn, fmt::format("{}: waiting for {} ({} holds it)", cfg.host, lock,
                                          who.empty() ? std::string("a cron tick") : who));
    told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  note_lock_holder(fd, "daemon");
  return 0;  // fd stays open (and locked) until the process ends
}

// SIGHUP: the configuration is read again; share, host and state_dir cannot change.
void reload_config(Watchdog& wd, const WatchdogRuntimeOptions& opt) {
  if (!opt.reload) return;
  auto n = opt.reload();
  if (!n) {
    wd.log(LogLevel::Error, "reload failed, keeping the old config: " + n.error().msg);
  } else if (n->share != wd.cfg_.share || n->host != wd.cfg_.host || n->state_dir != wd.cfg_.state_dir) {
    wd.log(LogLevel::Error, "reload: share, host and state_dir cannot change without a restart; kept the old config");
  } else {
    wd.cfg_ = *n;
    wd.log(LogLevel::Info, "config reloaded");
  }
}

// How long the daemon loop may sleep: until the next tick, a restart or a start's deadline.
// Idle, it only has to notice a probe stuck on a hung mount (share_timeout) and keep
// systemd's watchdog fed; otherwise it wakes at least once a second.
int64_t daemon_wait_ms(const Watchdog& wd, const WatchdogRuntimeOptions& opt, int64_t next_tick) {
  int64_t wait = std::max<int64_t>(0, next_tick - boot_ms());
  if (wd.st_.restart_at) wait = std::min<int64_t>(wait, std::max<int64_t>(0, wd.st_.restart_at - boot_ms()));
  if (wd.st_.lc.phase == host::Phase::Starting)
    wait = std::min<int64_t>(wait, std::max<int64_t>(0, wd.st_.lc.deadline_ms - boot_ms()));
  if (int64_t s = wd.services_.next_due_ms(); s > 0) wait = std::min<int64_t>(wait, std::max<int64_t>(0, s - boot_ms()));
  int64_t cap = wd.idle_ ? std::clamp<int64_t>(wd.cfg_.share_timeout_ms / 2, 100, 5000) : 1000;
  if (opt.alive_interval_ms > 0) cap = std::min(cap, opt.alive_interval_ms);
  return std::min<int64_t>(wait, cap);
}

// SIGTERM/SIGINT: the watchdog shuts down (returns true: the daemon exits). SIGHUP: reload,
// forget crashes, look at the pointer now.
bool on_signals(Watchdog& wd, const WatchdogRuntimeOptions& opt, const std::vector<int>& sigs, int64_t& next_tick) {
  for (int sig : sigs) {
    if (sig == SIGTERM || sig == SIGINT) {
      wd.shutdown();
      wd.log(LogLevel::Info, fmt::format("{}: watchdog exiting ({})", wd.cfg_.host, signal_name(sig)));
      return true;
    }
    if (sig == SIGHUP) {
      reload_config(wd, opt);
      wd.st_.gave_up = false;
      wd.st_.crashes.clear();
      wd.services_.configure(wd.cfg_.services);
      wd.services_.forgive();
      wd.force_pointer_ = true;
      next_tick = boot_ms();
    }
  }
  return false;
}

// After a tick: when the next one is due; idle, the share worker probes for the marker
// meanwhile and wakes the loop through wake_fd.
int64_t schedule_next_tick(Watchdog& wd, const std::function<bool()>& probe, int wake_fd) {
  int64_t now = boot_ms();
  int64_t poll_ms = wd.cfg_.poll_interval_ms;
  int64_t next_tick = now + (wd.fast_poll_ ? wd.held_poll_ms() : poll_ms);
  if (wd.idle_ && wake_fd >= 0) {
    next_tick = std::max(next_tick, wd.next_heartbeat_ms());
    wd.worker_.set_probe(probe, poll_ms, now + poll_ms, wake_fd);
  }
  return next_tick;
}

// An agent that exited: handled now, and the next tick brought forward (an agent that was told
// to go: the stop completes at once, at the next tick).
void reap_agent(Watchdog& wd, int64_t& next_tick) {
  auto st = wd.ctl_->reap(wd.st_);
  if (!st) return;
  wd.on_agent_exit(*st);
  wd.idle_ = false;
  wd.worker_.clear_probe();
  next_tick = std::min(next_tick, host::stopping(wd.st_.lc.phase) ? boot_ms() : boot_ms() + wd.cfg_.poll_interval_ms);
}

}  // namespace

int run_watchdog_daemon(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt) {
  // Two threads, little allocation: one malloc arena (no second 64 MiB arena for the worker).
  ::mallopt(M_ARENA_MAX, 1);
  if (int rc = take_daemon_lock(cfg, opt); rc != 0) return rc;
  start_spawner();  // before any file of the share is open (see spawner.h)
  int sigfd = install_signal_pipe();
  auto wd = std::make_unique<Watchdog>(cfg, opt);
  if (auto s = wd->load_state(); !s) {
    if (opt.log) opt.log(LogLevel::Error, s.error().msg);
    return static_cast<int>(s.error().code);
  }
  wd->adopt_orphan();
  wd->log(LogLevel::Info, fmt::format("{}: watchdog started (share {}, poll {})", cfg.host, cfg.share,
                                      format_duration_ms(cfg.poll_interval_ms)));
  // While idle, the share worker probes for the marker on its own every poll and wakes this
  // thread through wake_fd only when it finds one (or the share misbehaves); this thread then
  // wakes for the heartbeat, the agent's signals, and to notice a probe stuck on a hung mount.
  int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // The same three calls as Share::probe_marker, without building a Result: an idle poll
  // should touch as little memory as possible (it runs with cold caches).
  auto probe = [root = wd->share_.root()] { return !certainly_absent(root.c_str(), Share::kMarkerName); };
  bool first = true, woken = false, was_idle = false;
  int64_t next_tick = boot_ms();
  while (true) {
    if (opt.on_alive) opt.on_alive();
    int64_t now = boot_ms();
    bool probe_stuck = wd->idle_ && wd->worker_.busy_for_ms() > wd->cfg_.share_timeout_ms;
    if (now >= next_tick || woken || probe_stuck) {
      woken = false;
      wd->worker_.clear_probe();
      wd->tick(first);
      if (first && opt.on_ready) opt.on_ready();
      first = false;
      next_tick = schedule_next_tick(*wd, probe, wake_fd);
      if (wd->idle_ && !was_idle) shed_startup_memory();  // after start-up, and after each switch
      was_idle = wd->idle_;
    }
    if (wd->st_.restart_at && boot_ms() >= wd->st_.restart_at) {
      wd->st_.restart_at = 0;
      next_tick = boot_ms();  // the next tick decides Start (agent down) on the current pointer
      wd->force_pointer_ = true;
    }
    // A drain or a stop under way is looked at again at its deadline at the latest.
    if (host::stopping(wd->st_.lc.phase)) next_tick = std::min(next_tick, wd->st_.lc.deadline_ms);
    pollfd pf[2] = {{sigfd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ready = ::poll(pf, wake_fd >= 0 ? 2 : 1, static_cast<int>(daemon_wait_ms(*wd, opt, next_tick)));
    std::vector<int> sigs;
    if (ready > 0 && (pf[0].revents & POLLIN)) sigs = read_signals(sigfd);
    if (ready > 0 && wake_fd >= 0 && (pf[1].revents & POLLIN)) {
      uint64_t n;
      (void)!::read(wake_fd, &n, sizeof n);
      woken = true;
    }
    if (on_signals(*wd, opt, sigs, next_tick)) {
      (void)wd.release();  // a share call stuck in the kernel may still hold it; the process ends now
      return 0;
    }
    reap_agent(*wd, next_tick);
    wd->promote_if_settled();
    wd->supervise_services();
  }
}

NFSUP_HOT int run_watchdog_check(const WatchdogConfig& cfg, const WatchdogRuntimeOptions& opt) {
  std::string lock = path_join(cfg.state_dir, "lock");
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT && ::mkdir(cfg.state_dir.c_str(), 0755) == 0)  // first tick
    fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (opt.log) opt.log(LogLevel::Error, fmt::format("open({}): {}", lock, errno_str(errno)));
    return static_cast<int>(Exit::Usage);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string who = lock_holder(fd);
    if (opt.log) {
      if (starts_with(who, "daemon "))
        opt.log(LogLevel::Warn, fmt::format("{}: a watchdog daemon ({}) uses this state_dir (lock {} held); "
                                            "skipping this tick: run either the daemon or cron ticks",
                                            cfg.host, who, lock));
      else
        opt.log(LogLevel::Warn, fmt::format("{}: a previous check is still running (lock {} held); skipping this tick",
                                            cfg.host, lock));
    }
    return static_cast<int>(Exit::Busy);
  }
  if (!lock_holder(fd).empty() && ::ftruncate(fd, 0) != 0) {
    // (a daemon that held it is gone; its note would only mislead)
  }
  signal(SIGPIPE, SIG_IGN);
  start_spawner();  // before any file of the share is open (see spawner.h)
  auto* wd = new Watchdog(cfg, opt);  // leaked on purpose: a hung share thread may outlive us
  if (auto s = wd->load_state(); !s) {
    if (opt.log) opt.log(LogLevel::Error, s.error().msg);
    return static_cast<int>(s.error().code);
  }
  // An idle tick reads only the marker; the pointer is read again and the status rewritten
  // when heartbeat_interval has passed since the last time (kept in the local state), or
  // when something changed. So an idle tick writes nothing, locally or on the share.
  wd->force_pointer_ = false;
  wd->status_dirty_ = false;
  wd->tick(false);
  // A step under way (a drain, a stop, a start grace) is carried on within this tick for up to
  // kCronStepMs, so that the report is final when it fits; a tick that ends (or is killed)
  // before leaves it in the local state, and the next tick resumes it where it was.
  const int64_t until = boot_ms() + kCronStepMs;
  while (wd->st_.lc.phase != host::Phase::Steady && !wd->share_down_ && boot_ms() < until) {
    int64_t nap = std::clamp<int64_t>(wd->held_poll_ms(), 50, 1000);
    if (wd->st_.lc.phase == host::Phase::Starting) nap = std::clamp<int64_t>(wd->st_.lc.deadline_ms - boot_ms(), 0, 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(nap));
    if (wd->st_.lc.phase == host::Phase::Starting) wd->promote_if_settled();
    else wd->tick(false);
  }
  if (wd->share_down_) {
    if (opt.log) opt.log(LogLevel::Error, fmt::format("{}: {}", cfg.share, wd->share_error_));
    wd->save_state();
    std::fflush(nullptr);
    ::_exit(static_cast<int>(Exit::Share));  // do not wait for a worker stuck on the share
  }
  wd->supervise_services();
  wd->save_state();
  int code = wd->st_.state == "failed" ? static_cast<int>(Exit::Failed) : 0;
  std::fflush(nullptr);
  ::_exit(code);
}

}  // namespace nfsup
