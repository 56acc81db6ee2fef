// nfsup core: the watchdog.
#include "watchdog.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <chrono>
#include <fstream>

#include "hash.h"
#include "lifecycle.h"
#include "metrics.h"
#include "process.h"
#include "nfsup_version.h"
#include "reconfig.h"
#include "stage.h"
#include "trust.h"

namespace nfsup {

/// How long one cron tick carries on a drain, a stop or a start grace before it leaves the
/// rest to the next tick (the documented crontab kills a tick at 50 s).
constexpr int64_t kCronStepMs = 40000;

// ================================================================ pure decision

const char* decision_name(Decision::Kind k) {
  switch (k) {
    case Decision::Keep: return "keep";
    case Decision::Hold: return "hold";
    case Decision::WaitPointer: return "wait-pointer";
    case Decision::NeedPointer: return "need-pointer";
    case Decision::Switch: return "switch";
    case Decision::Start: return "start";
    case Decision::Idle: return "idle";
    case Decision::Vote: return "vote";
  }
  return "?";
}

NFSUP_HOT Decision decide(const Observation& obs, const LocalView& local) {
  Decision d;
  if (!obs.share_ok) {
    d.kind = Decision::Keep;
    d.why = "share unreachable: " + obs.share_error;
    return d;
  }
  if (obs.marker && !obs.marker_lapsed && obs.marker->phase == "vote" && obs.marker->targets_host(local.host)) {
    d.kind = Decision::Vote;
    d.generation = obs.marker->generation;
    d.nonce = obs.marker->nonce;
    d.from = local.running;
    d.to = obs.marker->release;
    d.why = fmt::format("vote on {} -> {} (generation {})", local.running.empty() ? "-" : local.running,
                        obs.marker->release, obs.marker->generation);
    return d;
  }
  if (obs.marker && !obs.marker_lapsed && obs.marker->targets_host(local.host)) {
    d.kind = Decision::Hold;
    d.generation = obs.marker->generation;
    d.to = obs.marker->release;
    d.why = fmt::format("{} to {} in progress (generation {})", obs.marker->action, obs.marker->release,
                        obs.marker->generation);
    return d;
  }
  if (!obs.pointer_read) {
    d.kind = Decision::NeedPointer;
    return d;
  }
  if (!obs.pointer) {
    if (local.running.empty()) {
      d.kind = Decision::Idle;
      d.why = "no release has been pushed yet";
      return d;
    }
    d.kind = local.agent_up || local.gave_up ? Decision::Keep : Decision::Start;
    d.to = local.running;
    d.why = "the share has no current pointer; keeping what runs here";
    return d;
  }
  const Pointer& p = *obs.pointer;
  const std::string& want = p.release_for(local.host);
  d.generation = p.generation;
  if (local.held_gen > p.generation && !obs.marker_lapsed && local.held_wait_ms < local.lease_ms) {
    d.kind = Decision::WaitPointer;
    d.why = fmt::format("stopped for generation {} but current still shows {} (cached); waiting", local.held_gen,
                        p.generation);
    return d;
  }
  if (want != local.running) {
    if (local.failed_gen == p.generation) {
      // This switch already failed here: stay on the old release until a new generation.
      d.kind = (!local.agent_up && !local.running.empty() && !local.gave_up) ? Decision::Start : Decision::Keep;
      d.to = local.running;
      d.why = fmt::format("switch to {} failed earlier; staying on {}", want,
                          local.running.empty() ? "nothing" : local.running);
      return d;
    }
    d.kind = Decision::Switch;
    d.from = local.running;
    d.to = want;
    d.why = fmt::format("current release is {} (generation {})", want, p.generation);
    return d;
  }
  if (!local.agent_up && !local.gave_up) {
    d.kind = Decision::Start;
    d.to = want;
    d.why = "agent is not running";
    return d;
  }
  d.kind = Decision::Keep;
  return d;
}

bool LeaseTracker::update(const Marker& m, int64_t now_ms) {
  if (m.nonce != nonce || m.renewal != renewal) {
    nonce = m.nonce;
    renewal = m.renewal;
    changed_at_ms = now_ms;
    return false;
  }
  return now_ms - changed_at_ms > m.lease_ms;
}

// ================================================================ share worker

ShareWorker::~ShareWorker() {
  bool stuck;
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
    probe_.reset();
    stuck = finished_ < posted_ || probing_;
  }
  if (!thread_.joinable()) return;
  kick();
  if (stuck) {
    thread_.detach();  // stuck in the kernel on a hung mount: abandon it (and its eventfd)
    return;
  }
  thread_.join();
  if (kick_fd_ >= 0) ::close(kick_fd_);
}

void ShareWorker::start_locked() {
  if (started_) return;
  started_ = true;
  kick_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { loop(); });
}

void ShareWorker::loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    if (finished_ < posted_) {
      auto job = job_;
      l.unlock();
      (*job)();
      l.lock();
      ++finished_;
      busy_since_ = 0;
      l.unlock();
      done_cv_.notify_all();
      l.lock();
      continue;
    }
    if (quit_) return;
    if (probe_) {
      int64_t now = boot_ms();
      if (now >= next_probe_ms_) {
        auto probe = probe_;
        probing_ = true;
        busy_since_ = now;
        l.unlock();
        bool wake = (*probe)();
        l.lock();
        probing_ = false;
        busy_since_ = finished_ < posted_ ? boot_ms() : 0;  // a job queued behind the probe starts now
        if (probe_ == probe) {
          next_probe_ms_ = std::max(next_probe_ms_ + probe_period_ms_, boot_ms() + probe_period_ms_ / 2);
          if (wake) {
            probe_.reset();
            uint64_t one = 1;
            if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
          }
        }
        continue;
      }
      sleep_unlocked(l, next_probe_ms_ - now);
      continue;
    }
    sleep_unlocked(l, -1);
  }
}

// The worker sleeps in poll() on an eventfd that run() and set_probe() write to. (A timed
// condition-variable wait would cost an extra futex call at every idle poll: glibc marks the
// mutex contended when it takes it back after a timeout.)
void ShareWorker::sleep_unlocked(std::unique_lock<std::mutex>& l, int64_t ms) {
  if (kick_fd_ < 0 && (ms < 0 || ms > 10)) ms = 10;  // no eventfd: look again every 10 ms
  l.unlock();
  pollfd p{kick_fd_, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(ms < 0 ? -1 : std::min<int64_t>(ms, 1 << 30)));
  if (r > 0) {
    uint64_t n;
    (void)!::read(kick_fd_, &n, sizeof n);
  }
  l.lock();
}

void ShareWorker::kick() {
  uint64_t one = 1;
  (void)!::write(kick_fd_, &one, sizeof one);
}

bool ShareWorker::busy() {
  std::lock_guard<std::mutex> l(mu_);
  return finished_ < posted_ || probing_;
}

int64_t ShareWorker::busy_for_ms() {
  std::lock_guard<std::mutex> l(mu_);
  return busy_since_ ? boot_ms() - busy_since_ : 0;
}

void ShareWorker::set_probe(std::function<bool()> probe, int64_t period_ms, int64_t first_at_ms, int wake_fd) {
  {
    std::lock_guard<std::mutex> l(mu_);
    start_locked();
    probe_ = std::make_shared<std::function<bool()>>(std::move(probe));
    probe_period_ms_ = std::max<int64_t>(1, period_ms);
    next_probe_ms_ = first_at_ms;
    wake_fd_ = wake_fd;
  }
  kick();
}

void ShareWorker::clear_probe() {
  std::lock_guard<std::mutex> l(mu_);
  probe_.reset();  // the worker notices at its next wake-up; no need to wake it for this
}

bool ShareWorker::run(const std::function<void()>& fn, int64_t timeout_ms, std::string* why, int64_t stall_ms) {
  std::unique_lock<std::mutex> l(mu_);
  start_locked();
  if (finished_ < posted_ || (probing_ && boot_ms() - busy_since_ >= timeout_ms)) {
    if (why)
      *why = fmt::format("an earlier share operation has been stuck for {}",
                         format_duration_ms(boot_ms() - busy_since_));
    return false;
  }
  job_ = std::make_shared<std::function<void()>>(fn);
  ++posted_;
  if (!probing_) busy_since_ = boot_ms();
  uint64_t mine = posted_;
  l.unlock();
  kick();
  l.lock();
  auto finished = [&] { return finished_ >= mine; };
  if (stall_ms <= 0 || stall_ms >= timeout_ms) {
    bool done = done_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), finished);
    if (!done && why) *why = fmt::format("the share did not answer within {}", format_duration_ms(timeout_ms));
    return done;
  }
  const int64_t start = boot_ms();
  int64_t moved_at = start;
  uint64_t seen = g_read_progress.load(std::memory_order_relaxed);
  while (true) {
    int64_t now = boot_ms();
    uint64_t p = g_read_progress.load(std::memory_order_relaxed);
    if (p != seen) {
      seen = p;
      moved_at = now;
    }
    int64_t until = std::min(start + timeout_ms, moved_at + stall_ms);
    if (now >= until) break;
    if (done_cv_.wait_for(l, std::chrono::milliseconds(std::min<int64_t>(until - now, stall_ms / 4 + 1)), finished))
      return true;
  }
  if (finished()) return true;
  if (why)
    *why = boot_ms() - start >= timeout_ms
               ? fmt::format("the share did not answer within {}", format_duration_ms(timeout_ms))
               : fmt::format("the share stopped answering: no progress for {}", format_duration_ms(stall_ms));
  return false;
}

// ================================================================ share guard (cron tick)

namespace {

// A cron tick runs its share operations on its own thread, each under a deadline kept by a
// guard thread that sleeps until that deadline. No hand-off between threads per operation:
// in the normal case the guard never wakes up. When an operation outlives its deadline, the
// guard claims it (the stuck thread, should it ever come back, parks for good) and runs
// on_hang, which finishes the tick without the share and ends the process.
class ShareGuard {
 public:
  std::function<void(const std::string&)> on_hang;  ///< runs on the guard thread; must not return

  // stall_ms > 0: the deadline moves on while g_read_progress does (see ShareWorker::run).
  bool run(const std::function<void()>& fn, int64_t timeout_ms, int64_t stall_ms = 0) {
    if (!start()) return false;
    int64_t now = boot_ms();
    stall_ms = stall_ms > 0 && stall_ms < timeout_ms ? stall_ms : 0;
    hard_deadline_ms_.store(now + timeout_ms);
    deadline_ms_.store(now + (stall_ms ? stall_ms : timeout_ms));
    timeout_ms_.store(timeout_ms);
    stall_ms_.store(stall_ms);
    progress_seen_.store(g_read_progress.load(std::memory_order_relaxed));
    seq_.fetch_add(1);
    state_.store(kArmed);
    fn();
    int armed = kArmed;
    if (!state_.compare_exchange_strong(armed, kIdle))
      for (;;) ::pause();  // the guard gave up on this call and finishes the tick without us
    return true;
  }

 private:
  enum { kIdle = 0, kArmed = 1, kFired = 2 };

  bool start() {
    if (started_) return true;
    pthread_attr_t a;
    pthread_attr_init(&a);
    // One guard per process; its stack is in .bss, so only the pages it touches cost memory.
    alignas(64) static char stack[256 * 1024];
    pthread_attr_setstack(&a, stack, sizeof stack);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    started_ = pthread_create(&t, &a, &ShareGuard::main, this) == 0;
    pthread_attr_destroy(&a);
    return started_;
  }

  static void* main(void* self) {
    auto* g = static_cast<ShareGuard*>(self);
    for (;;) {
      uint64_t seq = g->seq_.load();
      int64_t deadline = g->deadline_ms_.load();
      int64_t now = boot_ms();
      if (g->state_.load() != kArmed || now < deadline) {
        int64_t nap = g->state_.load() == kArmed ? deadline - now : 100;
        timespec ts{static_cast<time_t>(nap / 1000), static_cast<long>(nap % 1000) * 1000000L};
        ::nanosleep(&ts, nullptr);
        continue;
      }
      if (g->seq_.load() != seq) continue;  // a newer call was armed meanwhile
      if (int64_t stall = g->stall_ms_.load(); stall > 0 && now < g->hard_deadline_ms_.load()) {
        uint64_t p = g_read_progress.load(std::memory_order_relaxed);
        if (p != g->progress_seen_.load()) {  // slow but moving: give it another stall_ms
          g->progress_seen_.store(p);
          int64_t next = std::min(g->hard_deadline_ms_.load(), now + stall);
          int64_t cur = deadline;
          g->deadline_ms_.compare_exchange_strong(cur, next);  // (unless a newer call re-armed it)
          continue;
        }
      }
      int armed = kArmed;
      if (!g->state_.compare_exchange_strong(armed, kFired)) continue;
      int64_t stall = g->stall_ms_.load();
      g->on_hang(stall > 0 && now < g->hard_deadline_ms_.load()
                     ? fmt::format("the share stopped answering: no progress for {}", format_duration_ms(stall))
                     : fmt::format("the share did not answer within {}", format_duration_ms(g->timeout_ms_.load())));
      ::_exit(static_cast<int>(Exit::Share));
    }
  }

  bool started_ = false;
  std::atomic<int> state_{kIdle};
  std::atomic<uint64_t> seq_{0};
  std::atomic<int64_t> deadline_ms_{0}, timeout_ms_{0}, hard_deadline_ms_{0}, stall_ms_{0};
  std::atomic<uint64_t> progress_seen_{0};
};

}  // namespace

// ================================================================ local state

namespace {

struct LocalState {
  std::string running;
  int64_t agent_pid = 0;
  uint64_t agent_start = 0;
  bool agent_wanted = false;   // command-controlled agents: we started it and did not stop it
  int64_t held_gen = 0;
  int64_t held_since_ms = 0;   // when the marker vanished while the pointer lagged
  int64_t failed_gen = 0;
  std::string reason;
  std::string state = "idle";
  int64_t status_gen = 0;
  int64_t heartbeat = 0;
  int64_t last_status_ms = 0;
  int64_t last_pointer_ms = 0;
  std::string lease_nonce;
  int64_t lease_renewal = -1;
  int64_t lease_changed_ms = 0;
  std::vector<int64_t> crashes;
  bool gave_up = false;
  std::string boot_id;
  std::string cls;             // release class the agent runs ("" = the whole release)
  std::string cached;          // release with a verified local copy in state_dir/cache
  std::string runs_from;       // release whose directory the agent runs from, if not `running`
  int64_t voted_gen = 0;       // marker generation this host has voted on
  std::string voted_nonce;     // and that marker's nonce (a retry under the same generation is a new switch)
  std::string acting;          // acting version last handed to the agent
  std::string previous;        // release before the last switch (health-gate rollback)
  std::string newest;          // newest release this host ever accepted (rollback protection)
  int64_t seen_gen = 0;        // highest pointer generation seen (replay protection)
  std::map<std::string, std::string> modules;  // modules the agent runs, name -> version (status)
  host::Model lc;              // drain/stop/start under way, with its deadline (a cron tick resumes it)
  bool trial = false;          // the agent was started by a switch and has not yet settled
  int64_t restart_at = 0;      // backing off after a crash or a failed start: no restart before this
  std::string published_conf;  // the configuration-derived status fields last published
};

std::string read_boot_id() {
  char buf[64];
  int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

std::string pack_local(const LocalState& s) {
  Record r{"hoststate", kFormatVersion, {}};
  r.add("boot_id", {s.boot_id.empty() ? "-" : s.boot_id});
  r.add("running", {s.running.empty() ? "-" : s.running});
  r.add("agent", {std::to_string(s.agent_pid), std::to_string(s.agent_start), s.agent_wanted ? "1" : "0"});
  r.add("held", {std::to_string(s.held_gen), std::to_string(s.held_since_ms)});
  r.add("failed_gen", {std::to_string(s.failed_gen)});
  r.add("state", {s.state});
  r.add("reason", {s.reason.empty() ? "-" : s.reason});
  r.add("status", {std::to_string(s.status_gen), std::to_string(s.heartbeat), std::to_string(s.last_status_ms),
                   std::to_string(s.last_pointer_ms)});
  r.add("lease", {s.lease_nonce.empty() ? "-" : s.lease_nonce, std::to_string(s.lease_renewal),
                  std::to_string(s.lease_changed_ms)});
  std::vector<std::string> c;
  for (auto t : s.crashes) c.push_back(std::to_string(t));
  r.add("crashes", c.empty() ? std::vector<std::string>{"-"} : c);
  r.add("gave_up", {s.gave_up ? "1" : "0"});
  r.add("newest", {s.newest.empty() ? "-" : s.newest, std::to_string(s.seen_gen)});
  r.add("acting", {s.acting.empty() ? "-" : s.acting, s.previous.empty() ? "-" : s.previous});
  r.add("class", {s.cls.empty() ? "-" : s.cls, std::to_string(s.voted_gen), s.voted_nonce.empty() ? "-" : s.voted_nonce});
  r.add("cached", {s.cached.empty() ? "-" : s.cached, s.runs_from.empty() ? "-" : s.runs_from});
  std::vector<std::string> mods;
  for (const auto& [m, v] : s.modules) {
    mods.push_back(m);
    mods.push_back(v);
  }
  if (!mods.empty()) r.add("modules", mods);
  r.add("lifecycle", {host::phase_name(s.lc.phase), std::to_string(s.lc.deadline_ms), s.trial ? "1" : "0",
                      std::to_string(s.restart_at)});
  if (!s.published_conf.empty()) r.add("conf", {s.published_conf});
  return pack_record(r);
}

LocalState unpack_local(const std::string& text, const std::string& path, Logger& log) {
  LocalState s;
  auto rec = unpack_record(text, "hoststate", kFormatVersion, path);
  if (!rec) {
    if (log) log(LogLevel::Warn, rec.error().msg + " (starting from a clean local state)");
    return s;
  }
  auto num = [](const std::string& x) { return parse_i64(x).value_or(0); };
  for (const auto& l : rec->lines) {
    const auto& a = l.args;
    auto at = [&](size_t i) { return i < a.size() ? a[i] : std::string(); };
    if (l.key == "boot_id") s.boot_id = at(0);
    else if (l.key == "running") s.running = at(0) == "-" ? "" : at(0);
    else if (l.key == "agent") {
      s.agent_pid = num(at(0));
      s.agent_start = static_cast<uint64_t>(num(at(1)));
      s.agent_wanted = at(2) == "1";
    } else if (l.key == "held") {
      s.held_gen = num(at(0));
      s.held_since_ms = num(at(1));
    } else if (l.key == "failed_gen") s.failed_gen = num(at(0));
    else if (l.key == "state") s.state = at(0);
    else if (l.key == "reason") s.reason = at(0) == "-" ? "" : at(0);
    else if (l.key == "status") {
      s.status_gen = num(at(0));
      s.heartbeat = num(at(1));
      s.last_status_ms = num(at(2));
      s.last_pointer_ms = num(at(3));
    } else if (l.key == "lease") {
      s.lease_nonce = at(0) == "-" ? "" : at(0);
      s.lease_renewal = num(at(1));
      s.lease_changed_ms = num(at(2));
    } else if (l.key == "crashes") {
      for (const auto& t : a)
        if (t != "-") s.crashes.push_back(num(t));
    } else if (l.key == "gave_up") s.gave_up = at(0) == "1";
    else if (l.key == "cached") {
      s.cached = at(0) == "-" || check_version_name(at(0)) ? "" : at(0);
      s.runs_from = at(1) == "-" || at(1).empty() || check_version_name(at(1)) ? "" : at(1);
    }
    else if (l.key == "class") {
      s.cls = at(0) == "-" || check_host_name(at(0)) ? "" : at(0);
      s.voted_gen = num(at(1));
      s.voted_nonce = at(2) == "-" ? "" : at(2);
    } else if (l.key == "acting") {
      s.acting = at(0) == "-" ? "" : at(0);
      s.previous = at(1) == "-" ? "" : at(1);
    } else if (l.key == "newest") {
      s.newest = at(0) == "-" ? "" : at(0);
      s.seen_gen = num(at(1));
    } else if (l.key == "lifecycle") {
      s.lc = {host::parse_phase(at(0)).value_or(host::Phase::Steady), num(at(1))};
      if (s.lc.phase == host::Phase::Steady) s.lc.deadline_ms = 0;
      s.trial = at(2) == "1";
      s.restart_at = num(at(3));
    } else if (l.key == "conf") {
      s.published_conf = at(0);
    } else if (l.key == "modules") {
      for (size_t i = 0; i + 1 < a.size(); i += 2)
        if (!check_host_name(a[i]) && !check_version_name(a[i + 1])) s.modules[a[i]] = a[i + 1];
    }
  }
  if (!s.running.empty() && check_version_name(s.running)) s.running.clear();
  if (!s.newest.empty() && check_version_name(s.newest)) s.newest.clear();
  if (!s.previous.empty() && check_version_name(s.previous)) s.previous.clear();
  return s;
}

// ---------------------------------------------------------------- agent control

class AgentCtl {
 public:
  virtual ~AgentCtl() = default;
  virtual bool up(LocalState& st) = 0;
  virtual Status start(LocalState& st, const SpawnSpec& spec) = 0;
  virtual void stop(LocalState& st, const AgentConfig& a) = 0;
  /// Daemon only: the child exited on its own (exit status), or nullopt.
  virtual std::optional<int> reap(LocalState&) { return std::nullopt; }
  /// Sends a signal to the agent (drain, acting-version change). False if it has no pid.
  virtual bool signal(LocalState& st, int sig) {
    if (st.agent_pid <= 0) return false;
    return ::kill(static_cast<pid_t>(st.agent_pid), sig) == 0;
  }
  /// Waits up to timeout_ms for the agent to exit by itself; true if it did.
  virtual bool wait_exit(LocalState& st, int64_t timeout_ms) {
    int64_t until = boot_ms() + timeout_ms;
    while (true) {
      if (reap(st) || !up(st)) return true;
      int64_t left = until - boot_ms();
      if (left <= 0) return false;
      if (st.agent_pid > 0) wait_for_exit(static_cast<pid_t>(st.agent_pid), std::min<int64_t>(left, 100));
      else std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 50)));
    }
  }
  /// Sends the stop signal now, so that the agent winds down while the watchdog reports
  /// `stopping`; stop() then only waits. Agents stopped by a command do nothing here.
  virtual void begin_stop(LocalState& st, const AgentConfig& a) {
    if (st.agent_pid <= 0 || !up(st)) return;
    signal_process(static_cast<pid_t>(st.agent_pid), a.stop_signal);
    stop_sent_ = true;
  }

 protected:
  bool stop_sent_ = false;
};

class ChildAgent : public AgentCtl {
 public:
  bool up(LocalState& st) override { return st.agent_pid > 0; }
  Status start(LocalState& st, const SpawnSpec& spec) override {
    auto pid = spawn(spec);
    if (!pid) return pid.error();
    st.agent_pid = *pid;
    st.agent_start = process_start_time(*pid);
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    if (st.agent_pid > 0)
      stop_process(static_cast<pid_t>(st.agent_pid), a.stop_signal, a.stop_timeout_ms, true, std::exchange(stop_sent_, false));
    stop_sent_ = false;
    st.agent_pid = 0;
    st.agent_start = 0;
  }
  std::optional<int> reap(LocalState& st) override {
    if (st.agent_pid <= 0) return std::nullopt;
    int status = 0;
    pid_t w = waitpid(static_cast<pid_t>(st.agent_pid), &status, WNOHANG);
    if (w == st.agent_pid || (w < 0 && errno == ECHILD)) {
      // Take the rest of its process group down too.
      kill(-static_cast<pid_t>(st.agent_pid), SIGKILL);
      st.agent_pid = 0;
      st.agent_start = 0;
      return status;
    }
    return std::nullopt;
  }
};

class DetachedAgent : public AgentCtl {
 public:
  bool up(LocalState& st) override {
    return st.agent_pid > 0 && process_alive(static_cast<pid_t>(st.agent_pid), st.agent_start);
  }
  Status start(LocalState& st, const SpawnSpec& spec0) override {
    SpawnSpec spec = spec0;
    spec.detach = true;
    auto pid = spawn(spec);
    if (!pid) return pid.error();
    st.agent_pid = *pid;
    for (int i = 0; i < 50 && (st.agent_start = process_start_time(*pid)) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    if (up(st))
      stop_process(static_cast<pid_t>(st.agent_pid), a.stop_signal, a.stop_timeout_ms, false, std::exchange(stop_sent_, false));
    stop_sent_ = false;
    st.agent_pid = 0;
    st.agent_start = 0;
  }
};

class CommandAgent : public AgentCtl {
 public:
  void begin_stop(LocalState&, const AgentConfig&) override {}  // its stop_command does the stopping
  explicit CommandAgent(const AgentConfig& a) : a_(a) {}
  bool up(LocalState& st) override {
    if (a_.status_command.empty()) return st.agent_wanted;
    SpawnSpec s;
    s.argv = a_.status_command;
    auto r = run_with_timeout(s, 30000);
    return r && !r->timed_out && r->exit_code == 0;
  }
  Status start(LocalState& st, const SpawnSpec& spec) override {
    SpawnSpec s;
    s.argv = a_.start_command;
    s.env = spec.env;
    auto r = run_with_timeout(s, std::max<int64_t>(a_.stop_timeout_ms, 60000));
    if (!r) return r.error();
    if (r->timed_out || r->exit_code != 0)
      return err(Exit::Failed, fmt::format("start_command {} failed ({})", a_.start_command[0],
                                           r->timed_out ? "timed out" : fmt::format("exit {}", r->exit_code)));
    st.agent_wanted = true;
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    SpawnSpec s;
    s.argv = a.stop_command;
    (void)run_with_timeout(s, a.stop_timeout_ms + 5000);
    st.agent_wanted = false;
  }

 private:
  AgentConfig a_;
};

// ---------------------------------------------------------------- the watchdog

class Watchdog {
 public:
  NFSUP_HOT Watchdog(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt)
      : cfg_(std::move(cfg)), opt_(opt), fs_(cfg_.host), share_(fs_, cfg_.share) {
    if (!cfg_.agent.start_command.empty()) ctl_ = std::make_unique<CommandAgent>(cfg_.agent);
    else if (opt_.daemon) ctl_ = std::make_unique<ChildAgent>();
    else ctl_ = std::make_unique<DetachedAgent>();
  }

  void log(LogLevel l, const std::string& m) {
    if (opt_.log) opt_.log(l, m);
  }

  std::string state_file() const { return path_join(cfg_.state_dir, "state"); }
  std::string spool_dir() const { return path_join(cfg_.state_dir, "spool"); }

  NFSUP_HOT Status load_state() {
    struct stat sd{};
    int sr = ::stat(cfg_.state_dir.c_str(), &sd);
    if (sr != 0 && errno == ENOENT && ::mkdir(cfg_.state_dir.c_str(), 0755) == 0) sr = ::stat(cfg_.state_dir.c_str(), &sd);
    if (sr != 0 || !S_ISDIR(sd.st_mode))
      return err(Exit::Usage, fmt::format("{}: state_dir is not a directory", cfg_.state_dir));
    auto t = read_local(state_file(), 1 << 20);
    Logger lg = opt_.log;
    if (t && *t) {
      st_ = unpack_local(**t, state_file(), lg);
      saved_ = **t;  // save_state() compares against what is on disk
      saved_st_ = st_;
    }
    std::string boot = read_boot_id();
    if (st_.boot_id != boot) {
      // A reboot: no process we knew is alive, and monotonic times restart. The acting
      // version file is written without fsync (apply_acting): a power loss may have lost it.
      if (!st_.acting.empty())
        if (auto w = write_local_derived(path_join(cfg_.state_dir, "acting_version"), st_.acting + "\n", 0644); !w)
          log(LogLevel::Error, w.error().msg);
      st_.agent_pid = 0;
      st_.agent_start = 0;
      st_.crashes.clear();
      st_.lease_changed_ms = 0;
      st_.held_since_ms = 0;
      st_.last_status_ms = 0;
      st_.last_pointer_ms = 0;
      st_.lc = {};  // (its deadline was on the old boot's clock, and its process is gone)
      st_.restart_at = 0;
      st_.boot_id = boot;
    }
    return ok_status();
  }

  NFSUP_HOT void save_state() {
    if (opt_.daemon) {
      // A daemon keeps its heartbeat bookkeeping in memory: rewriting the local state at every
      // heartbeat only to record the counter and the times doubled the files it replaces while
      // idle (each replacement is a new inode; on ext4 without a journal every new inode is
      // checked against the ones deleted in the last minutes, so churn slows every create on
      // the disk). A restarted daemon reads the pointer and writes its status at once anyway,
      // and the master only looks for the counter to change.
      LocalState cmp = st_;
      cmp.heartbeat = saved_st_.heartbeat;
      cmp.last_status_ms = saved_st_.last_status_ms;
      cmp.last_pointer_ms = saved_st_.last_pointer_ms;
      if (pack_local(cmp) == saved_) return;
    }
    std::string p = pack_local(st_);
    if (p == saved_) return;
    if (auto s = write_local_exchange(state_file(), p, 0644); !s) log(LogLevel::Error, s.error().msg);
    else {
      saved_ = p;
      saved_st_ = st_;
    }
  }

  // Runs f() on the share worker under the deadline and returns its value, or nullopt on a
  // timeout. f must capture by value: a call that hangs past the deadline may return much later,
  // after this frame is gone, and may then only touch the heap box it shares with us.
  template <typename T, typename F>
  std::optional<T> share_call(F f, int64_t timeout_ms, std::string* why, int64_t stall_ms = 0) {
    auto box = std::make_shared<std::optional<T>>();
    if (!opt_.daemon) {
      // A cron tick: on this thread, under the guard's deadline (see ShareGuard).
      if (!guard_) {
        guard_ = std::make_unique<ShareGuard>();
        guard_->on_hang = [this](const std::string& w) { give_up_on_share(w); };
      }
      if (guard_->run([box, &f] { box->emplace(f()); }, timeout_ms, stall_ms)) return std::move(*box);
      // (no guard thread: fall back to the worker)
    }
    if (!worker_.run([box, f]() mutable { box->emplace(f()); }, timeout_ms, why, stall_ms)) return std::nullopt;
    return std::move(*box);
  }


  // A signed host runs every release from its verified local copy (see verified_copy()), so
  // that what runs is exactly what was hashed; an unsigned host runs it from the share.
  std::string release_dir_for(const std::string& version) const {
    if (cfg_.trust.signed_mode()) return cache_dir(version);
    return share_.run_dir(version, version == pending_ ? pending_cls_ : st_.cls);
  }

  SpawnSpec agent_spec(const std::string& version) {
    SpawnSpec s;
    std::string rdir = release_dir_for(version);
    for (size_t i = 0; i < cfg_.agent.command.size(); ++i) {
      std::string a = cfg_.agent.command[i];
      auto sub = [&](const std::string& key, const std::string& val) {
        size_t p;
        while ((p = a.find(key)) != std::string::npos) a.replace(p, key.size(), val);
      };
      sub("{config}", cfg_.agent.config);
      sub("{release}", rdir);
      sub("{version}", version);
      sub("{host}", cfg_.host);
      s.argv.push_back(i == 0 ? path_join(rdir, a) : a);
    }
    s.env = {{"NFSUP_VERSION", version},
             {"NFSUP_HOST", cfg_.host},
             {"NFSUP_RELEASE_DIR", rdir},
             {"NFSUP_SHARE", cfg_.share},
             {"NFSUP_CONFIG", cfg_.agent.config},
             {"NFSUP_ACTING_VERSION", st_.acting.empty() ? version : st_.acting},
             {"NFSUP_ACTING_FILE", path_join(cfg_.state_dir, "acting_version")},
             {"NFSUP_SPOOL", spool_dir()}};
    s.cwd = rdir;
    s.stdout_path = path_join(cfg_.state_dir, "agent.log");
    return s;
  }

  // The acting version is handed to the agent through a local file and a signal.
  void apply_acting(const std::string& acting) {
    if (acting == st_.acting) return;
    std::string old = st_.acting;
    st_.acting = acting;
    // (recomputed from the share at every pointer read: no fsync on the restart path)
    if (auto s = write_local_derived(path_join(cfg_.state_dir, "acting_version"), acting + "\n", 0644); !s)
      log(LogLevel::Error, s.error().msg);
    status_dirty_ = true;
    if (!old.empty()) {
      log(LogLevel::Info, fmt::format("{}: acting version {} -> {}", cfg_.host, old, acting));
      if (cfg_.agent.acting_signal && ctl_->up(st_)) ctl_->signal(st_, cfg_.agent.acting_signal);
    }
  }

  // Files the agent queued in NFSUP_SPOOL go to SHARE/inbox/<host>/ when no upgrade fences them.
  void deliver_spool() {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(spool_dir().c_str())) {
      while (dirent* de = ::readdir(d))
        if (de->d_name[0] != '.' && de->d_type == DT_REG) names.push_back(de->d_name);
      ::closedir(d);
    }
    if (names.empty()) return;
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string local = path_join(spool_dir(), n);
      auto data = read_local(local, 64 << 20);
      if (!data || !*data) continue;
      std::string why, inbox = path_join(path_join(cfg_.share, "inbox"), cfg_.host), root = cfg_.share;
      auto got = share_call<Status>(
          [this, root, inbox, n, body = **data]() -> Status {
            if (auto s = fs_.mkdir(path_join(root, "inbox"), 0755); !s) return s;
            if (auto s2 = fs_.mkdir(inbox, 0755); !s2) return s2;
            return fs_.write_atomic(path_join(inbox, n), body, 0644);
          },
          cfg_.share_timeout_ms, &why);
      if (!got) {
        note_share_error(why);
        return;
      }
      Status res = *got;
      if (!res) {
        log(LogLevel::Error, fmt::format("{}: delivering {}: {}", cfg_.host, local, res.error().msg));
        return;
      }
      ::unlink(local.c_str());
      log(LogLevel::Info, fmt::format("{}: delivered spooled {} to {}", cfg_.host, n, inbox));
    }
  }

  // Which class of release `version` this host runs, and its modules (name -> version).
  bool resolve(const std::string& version, std::string* cls, std::map<std::string, std::string>* mods,
               std::map<std::string, std::string>* hashes, std::string* why) {
    std::string t;
    auto got = share_call<Result<std::optional<Manifest>>>([this, version] { return share_.read_manifest(version); },
                                                           cfg_.share_timeout_ms, &t);
    if (!got) {
      note_share_error(t);
      *why = t;
      return false;
    }
    Result<std::optional<Manifest>> m = std::move(*got);
    if (!m) {
      *why = m.error().msg;
      return false;
    }
    if (!*m) {
      *why = fmt::format("release {} is not on the share", version);
      return false;
    }
    const ClassInfo* c = (*m)->pick_class(cfg_.cls, cfg_.traits);
    *cls = c ? c->name : "";
    for (const auto* mod : (*m)->modules_for(c)) {
      if (mods) (*mods)[mod->name] = mod->version;
      if (hashes) (*hashes)[mod->name] = mod->sha256;
    }
    return true;
  }

  // The restart is skipped when nothing this host runs changes: both releases are made of
  // modules, this host's class gets exactly the same module hashes from both, and the new
  // release has no reconfig script or migration hook. The agent keeps running from the old
  // release's directory (kept by prune, reported as runs_from).
  bool unchanged_for(const std::string& to) {
    if (unchanged_cache_.first == to + "|" + st_.running) return unchanged_cache_.second;
    bool same = false;
    if (!st_.running.empty() && to != st_.running && ctl_->up(st_)) {
      std::string why, c1, c2;
      std::map<std::string, std::string> h1, h2;
      // The target first: a release without modules is never "unchanged", and then the
      // running release's manifest need not be read (this is on the path to stopping).
      if (resolve(to, &c2, nullptr, &h2, &why) && !h2.empty() && resolve(st_.running, &c1, nullptr, &h1, &why)) {
        auto m = share_call<Result<std::optional<Manifest>>>([this, to] { return share_.read_manifest(to); },
                                                             cfg_.share_timeout_ms, &why);
        if (m && *m && **m)
          same = !h1.empty() && h1 == h2 && c1 == c2 && (***m).reconfig.empty() && (***m).migrate.empty();
      }
      // Going back to a release whose configuration backup differs from the configuration in
      // use (the newer release's script rewrote it): the backup is put back, and the agent has
      // to restart to read it.
      if (same && config_restore_due(to)) same = false;
    }
    unchanged_cache_ = {to + "|" + st_.running, same};
    return same;
  }

  // A downgrade to `to` would restore a configuration backup that differs from the file now.
  bool config_restore_due(const std::string& to) {
    if (cfg_.agent.config.empty() || compare_versions(to, st_.running) >= 0) return false;
    flush_backup();
    auto b = read_local(backup_path(cfg_, to));
    if (!b || !*b) return false;  // no backup: a downgrade without one keeps the configuration
    auto c = read_local(cfg_.agent.config);
    return !c || !*c || **c != **b;
  }

  // Runs the checks in checks_dir and writes this host's vote for the marker's generation.
  void vote(const Decision& d) {
    if (st_.voted_gen == d.generation && st_.voted_nonce == d.nonce) return;
    std::string cls, why;
    std::map<std::string, std::string> now_h, next_h;
    std::vector<std::string> changing;
    if (resolve(d.to, &cls, nullptr, &next_h, &why)) {
      if (!d.from.empty()) resolve(d.from, &cls, nullptr, &now_h, &why);
      for (const auto& [m, h] : next_h)
        if (!now_h.count(m) || now_h[m] != h) changing.push_back(m);
      for (const auto& [m, h] : now_h)
        if (!next_h.count(m)) changing.push_back(m);
    }
    Vote v;
    v.host = cfg_.host;
    v.generation = d.generation;
    v.nonce = d.nonce;
    v.target = d.to;
    std::vector<std::string> checks;
    if (!cfg_.checks_dir.empty())
      if (DIR* dir = ::opendir(cfg_.checks_dir.c_str())) {
        while (dirent* de = ::readdir(dir)) {
          std::string n = de->d_name;
          if (n.empty() || n[0] == '.') continue;
          std::string p = path_join(cfg_.checks_dir, n);
          struct stat cs{};
          if (::stat(p.c_str(), &cs) == 0 && S_ISREG(cs.st_mode) && (cs.st_mode & 0111)) checks.push_back(p);
        }
        ::closedir(dir);
      }
    std::sort(checks.begin(), checks.end());
    for (const auto& c : checks) {
      SpawnSpec s;
      s.argv = {c};
      s.env = {{"NFSUP_HOST", cfg_.host},
               {"NFSUP_FROM_VERSION", d.from},
               {"NFSUP_TO_VERSION", d.to},
               {"NFSUP_MODULES_CHANGING", join(changing, " ")},
               {"NFSUP_SHARE", cfg_.share}};
      auto r = run_with_timeout(s, 30000);
      if (r && !r->timed_out && r->exit_code == 0) continue;
      std::string out;
      if (r)
        for (const auto& l : split(r->output, '\n'))
          if (!l.empty() && out.empty()) out = l;
      v.accept = false;
      v.reason = fmt::format("{}: {}", basename_of(c),
                             !out.empty() ? out
                             : !r         ? r.error().msg
                             : r->timed_out ? std::string("timed out")
                                            : fmt::format("exit code {}", r->exit_code));
      break;
    }
    std::string t;
    auto res = share_call<Status>([this, v] { return share_.write_vote(v); }, cfg_.share_timeout_ms, &t);
    if (!res) return note_share_error(t);
    if (!*res) return log(LogLevel::Error, res->error().msg);
    st_.voted_gen = d.generation;
    st_.voted_nonce = d.nonce;
    log(LogLevel::Info, fmt::format("{}: voted {} on {} -> {}{}{}", cfg_.host, v.accept ? "accept" : "veto",
                                    d.from.empty() ? "-" : d.from, d.to, v.reason.empty() ? "" : ": ", v.reason));
  }

  // ---- status reporting
  void set_state(const std::string& state, int64_t gen, const std::string& reason) {
    if (state != st_.state || gen != st_.status_gen || reason != st_.reason) {
      st_.state = state;
      st_.status_gen = gen;
      st_.reason = reason;
      status_dirty_ = true;
    }
  }

  // The status fields that come from this host's configuration, as one string.
  std::string status_conf() const {
    return fmt::format("{}/{}/{}/{}/{}", cfg_.trust.signed_mode() ? "signed" : "unsigned",
                       cfg_.group.empty() ? "-" : cfg_.group, cfg_.cls.empty() ? "-" : cfg_.cls, cfg_.poll_interval_ms,
                       cfg_.checks_dir.empty() ? "no" : "yes");
  }

  // Callers publish first and save the local state after: a write bumps the heartbeat and
  // its time, kept in the local state, so one local write covers both.
  // metrics_file (Prometheus textfile) beside each status write: local disk, best effort; a
  // failure is logged once until a write succeeds again.
  void note_metrics(const HostStatus& s, bool share_up, int64_t latency_ms) {
    if (cfg_.metrics_file.empty()) return;
    HostSample m{s.host, s.state, s.running, s.watchdog_version, s.agent_pid, share_up, latency_ms, ::time(nullptr)};
    auto w = write_host_metrics(cfg_.metrics_file, m);
    if (!w && std::exchange(metrics_ok_, false)) log(LogLevel::Warn, fmt::format("{}: metrics_file: {}", cfg_.host, w.error().msg));
    if (w) metrics_ok_ = true;
  }

  void publish_status(bool force) {
    int64_t now = boot_ms();
    if (!force && !status_dirty_ && st_.last_status_ms && now - st_.last_status_ms < cfg_.heartbeat_interval_ms)
      return;
    HostStatus s;
    s.host = cfg_.host;
    s.state = st_.state;
    s.running = st_.running;
    s.generation = st_.status_gen;
    s.heartbeat = ++st_.heartbeat;
    s.pid = getpid();
    s.agent_pid = st_.agent_pid;
    s.mode = opt_.daemon ? "daemon" : "check";
    s.reason = st_.reason;
    s.updated = utc_now_iso();
    s.trust = cfg_.trust.signed_mode() ? "signed" : "unsigned";
    s.group = cfg_.group;
    s.acting = st_.acting;
    s.cls = st_.cls.empty() ? cfg_.cls : st_.cls;
    s.runs_from = st_.runs_from;
    s.modules = st_.modules;
    s.poll_ms = cfg_.poll_interval_ms;
    s.checks = cfg_.checks_dir.empty() ? "no" : "yes";
    s.watchdog_version = NFSUP_VERSION;
    std::string why;
    int64_t t0 = boot_ms();
    auto got = share_call<Status>([this, s] { return share_.write_status(s); }, cfg_.share_timeout_ms, &why);
    note_metrics(s, got && *got, boot_ms() - t0);
    if (!got) {
      note_share_error(why);
      return;
    }
    Status res = *got;
    if (!res) {
      note_share_error(res.error().msg);
      return;
    }
    status_dirty_ = false;
    st_.last_status_ms = now;
    st_.published_conf = status_conf();
  }

  // Cron tick, on the guard thread: a share operation outlived its deadline while the tick's
  // thread is stuck in it. Finish the tick without the share, as a failed share call would.
  [[noreturn]] void give_up_on_share(const std::string& why) {
    note_share_error(why);
    start_from_local_copy();
    save_state();
    log(LogLevel::Error, fmt::format("{}: {}", cfg_.share, why));
    std::fflush(nullptr);
    ::_exit(static_cast<int>(Exit::Share));
  }

  // Poll interval while a marker is up: a quarter of poll_interval, at least 50ms. Only
  // during an upgrade; it lets a stopped host notice the marker's removal sooner.
  int64_t held_poll_ms() const {
    return std::min(cfg_.poll_interval_ms, std::max<int64_t>(50, cfg_.poll_interval_ms / 4));
  }

  // When the next tick must read the pointer and rewrite the status even if nothing changed.
  int64_t next_heartbeat_ms() const {
    return std::min(st_.last_pointer_ms, st_.last_status_ms) + cfg_.heartbeat_interval_ms;
  }

  void note_share_error(const std::string& why) {
    // (said again when it turns out not to be a share at all: an empty mountpoint)
    auto no_share = [](const std::string& w) { return w.find(": not an nfsup share") != std::string::npos; };
    if (!share_down_ || no_share(why) != no_share(share_error_)) log(LogLevel::Error, fmt::format("{}: share unreachable: {}; the agent is left as it is", cfg_.host, why));
    share_down_ = true;
    share_error_ = why;
  }

  void note_share_ok() {
    if (share_down_) {
      log(LogLevel::Info, fmt::format("{}: share reachable again", cfg_.host));
      force_pointer_ = true;
      status_dirty_ = true;
    }
    share_down_ = false;
  }

  // ---- observation
  NFSUP_HOT Observation observe(bool want_pointer) {
    Observation obs;
    std::string why;
    // A file replaced by rename can read back cut short through a client whose attribute
    // cache still has the old size; the record format notices (no final newline), so read
    // once more before calling it malformed.
    auto got = share_call<Result<std::optional<Marker>>>(
        [this] {
          auto r = share_.probe_marker();
          if (!r && r.error().code == Exit::Integrity) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            r = share_.probe_marker();
          }
          return r;
        },
        cfg_.share_timeout_ms, &why);
    if (!got) {
      obs.share_ok = false;
      obs.share_error = why;
      return obs;
    }
    Result<std::optional<Marker>> mk = std::move(*got);
    if (!mk) {
      if (mk.error().code == Exit::Integrity) {
        // A garbled marker: never act on it; keep the agent as it is and say why.
        obs.share_ok = false;
        obs.garbled = true;
        obs.share_error = mk.error().msg;
        return obs;
      }
      obs.share_ok = false;
      obs.share_error = mk.error().msg;
      return obs;
    }
    obs.marker = *mk;
    if (obs.marker && obs.marker->targets_host(cfg_.host) && marker_is_stale(*obs.marker)) obs.marker.reset();
    if (obs.marker) {
      LeaseTracker lt{st_.lease_nonce, st_.lease_renewal, st_.lease_changed_ms};
      obs.marker_lapsed = lt.update(*obs.marker, boot_ms());
      st_.lease_nonce = lt.nonce;
      st_.lease_renewal = lt.renewal;
      st_.lease_changed_ms = lt.changed_at_ms;
      if (obs.marker_lapsed && !lapse_logged_) {
        log(LogLevel::Warn, fmt::format("{}: the marker's lease lapsed (master {} pid {} stopped renewing it); "
                                        "resuming the current release",
                                        cfg_.host, obs.marker->master_host, obs.marker->master_pid));
        lapse_logged_ = true;
      }
      if (!obs.marker_lapsed) lapse_logged_ = false;
    }
    bool held = obs.marker && !obs.marker_lapsed && obs.marker->targets_host(cfg_.host);
    // A rolling marker that does not name this host: follow the pointer on every poll; and
    // read it once more at the poll that finds the marker gone (the master writes the pointer
    // under the marker: a new acting version is reported and handed on now, not at the next
    // heartbeat).
    if (!held && (want_pointer || obs.marker || fast_poll_)) read_pointer(obs);
    return obs;
  }

  // A marker whose generation is not newer than the pointer's is over (the master switched, or
  // it is a replayed copy of an old one): it stops nothing. Compared with the pointer on the
  // share now and, on a signed host, with the newest generation of a trusted pointer seen here
  // (an unsigned pointer counts for neither). Judged once per marker (nonce, generation).
  bool marker_is_stale(const Marker& m) {
    std::string key = fmt::format("{}/{}", m.nonce, m.generation);
    if (stale_marker_.first == key) return stale_marker_.second;
    bool signed_mode = cfg_.trust.signed_mode();
    int64_t ref = signed_mode ? st_.seen_gen : 0;
    std::string why;
    auto got = share_call<Result<std::optional<Pointer>>>([this] { return share_.read_pointer(); },
                                                          cfg_.share_timeout_ms, &why);
    if (!got || !*got) return false;  // cannot tell now: honour it, and look again at the next poll
    if (const auto& p = **got; p && (!signed_mode || pointer_signed_by_trusted(*p, cfg_.trust)))
      ref = std::max(ref, p->generation);
    bool stale = m.generation <= ref;
    if (stale)
      log(LogLevel::Warn, fmt::format("{}: ignoring {}: its generation {} is not newer than the pointer's ({}); "
                                      "a finished or replayed marker stops nothing",
                                      cfg_.host, share_.marker_path(), m.generation, ref));
    stale_marker_ = {key, stale};
    return stale;
  }

  void read_pointer(Observation& obs) {
    std::string why;
    auto got = share_call<Result<std::optional<Pointer>>>(
        [this]() -> Result<std::optional<Pointer>> {
          auto r = share_.read_pointer();
          if (!r && r.error().code == Exit::Integrity) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            r = share_.read_pointer();
          }
          if (r && !*r) {
            // No pointer: a share nothing was pushed to yet, or no share at all (a mount that
            // vanished leaves an empty mountpoint). Only the first is a reachable share.
            auto f = fs_.read_file(share_.format_file(), 1 << 16);
            if (!f) return f.error();
            if (!*f)
              return err(Exit::Share, fmt::format("{}: not an nfsup share (no {}): is it mounted?", share_.root(),
                                                  basename_of(share_.format_file())));
          }
          return r;
        },
        cfg_.share_timeout_ms, &why);
    if (!got) {
      obs.share_ok = false;
      obs.share_error = why;
      return;
    }
    Result<std::optional<Pointer>> p = std::move(*got);
    if (!p) {
      obs.share_ok = false;
      obs.garbled = p.error().code == Exit::Integrity;
      obs.share_error = p.error().msg;
      return;
    }
    if (*p && cfg_.trust.signed_mode() && (*p)->generation < st_.seen_gen) {
      obs.share_ok = false;
      obs.share_error = fmt::format("{}: generation {} is older than generation {} already seen here; refusing a "
                                    "replayed pointer",
                                    share_.pointer_path(), (*p)->generation, st_.seen_gen);
      return;
    }
    obs.pointer_read = true;
    obs.pointer = *p;
    if (*p) {
      last_pointer_ = **p;
      // A signed host remembers only what a trusted key signed: an unsigned pointer is followed
      // (the release it names must still be signed) but never raises the replay floor.
      if (!cfg_.trust.signed_mode() || pointer_signed_by_trusted(**p, cfg_.trust))
        st_.seen_gen = std::max(st_.seen_gen, (*p)->generation);
      apply_acting((*p)->acting.empty() ? (*p)->release_for(cfg_.host) : (*p)->acting);
    }
    st_.last_pointer_ms = boot_ms();
  }

  LocalView view(std::optional<bool> agent_up = std::nullopt) {
    LocalView v;
    v.host = cfg_.host;
    v.running = st_.running;
    v.agent_up = agent_up ? *agent_up : ctl_->up(st_);
    v.held_gen = st_.held_gen;
    v.held_wait_ms = st_.held_since_ms ? boot_ms() - st_.held_since_ms : 0;
    v.failed_gen = st_.failed_gen;
    v.gave_up = st_.gave_up;
    v.lease_ms = 30000;
    if (!st_.lease_nonce.empty()) v.lease_ms = lease_ms_;
    return v;
  }

  // ---- actions
  host::Timeouts timeouts() const {
    const AgentConfig& a = cfg_.agent;
    host::Timeouts t;
    t.drain = a.drain_signal || !a.drain_command.empty();
    t.drain_ms = a.drain_timeout_ms;
    t.stop_ms = a.stop_timeout_ms;
    t.grace_ms = a.start_grace_ms;
    return t;
  }

  bool agent_up_now() {
    (void)ctl_->reap(st_);  // a daemon's child that exited is reaped here, as part of the stop
    return ctl_->up(st_);
  }

  // Drives the stop of the agent one step (see host::step): starts the drain or the stop,
  // escalates at the phase's deadline, and returns true once the agent is down. Never waits
  // for a drain or a stop timeout: the caller's loop comes back (a daemon at its next poll, a
  // cron tick at its next turn or the next tick, from the persisted phase), heartbeating
  // meanwhile, so a host that drains within its timeouts is never taken for lost.
  bool advance_stop(const std::string& why, int64_t gen) {
    const AgentConfig& a = cfg_.agent;
    for (int round = 0; round < 4; ++round) {
      bool was_stopping = host::stopping(st_.lc.phase);
      host::Step s = host::step(st_.lc, host::Event::StopWanted, agent_up_now(), boot_ms(), timeouts());
      st_.lc = s.next;
      switch (s.effect) {
        case host::Effect::Stopped:
          if (was_stopping || st_.agent_pid > 0 || st_.agent_wanted)
            log(LogLevel::Info, fmt::format("{}: stopped agent {} ({})", cfg_.host, st_.running, why));
          if (a.start_command.empty()) ctl_->stop(st_, a);  // (gone: only the bookkeeping is left)
          st_.agent_pid = 0;
          st_.agent_start = 0;
          st_.agent_wanted = false;
          st_.trial = false;  // (a release stopped before it settled is not on trial any more)
          return true;
        case host::Effect::Drain:
          // The agent is told first: a status write that hangs must not keep it from draining.
          log(LogLevel::Info, fmt::format("{}: draining agent {} ({}; up to {})", cfg_.host, st_.running, why,
                                          format_duration_ms(a.drain_timeout_ms)));
          if (a.drain_signal) {
            ctl_->signal(st_, a.drain_signal);
          } else {
            SpawnSpec d = agent_spec(st_.running);
            d.argv = a.drain_command;
            d.detach = true;  // runs beside the watchdog's loop; the drain deadline bounds the wait
            if (auto r = spawn(d); !r) log(LogLevel::Error, fmt::format("{}: drain command: {}", cfg_.host, r.error().msg));
          }
          save_state();
          set_state("draining", gen, why);
          publish_status(true);
          save_state();
          return false;
        case host::Effect::Stop:
          if (was_stopping)
            log(LogLevel::Warn, fmt::format("{}: agent {} still running after the {} drain timeout; stopping it",
                                            cfg_.host, st_.running, format_duration_ms(a.drain_timeout_ms)));
          if (!a.start_command.empty()) {
            ctl_->stop(st_, a);  // its stop_command does the stopping (bounded by stop_timeout)
            continue;
          }
          ctl_->begin_stop(st_, a);
          // An agent gone within 50 ms goes straight to `stopped` (one status write less per
          // host and upgrade); a slower one is reported `stopping` while it winds down.
          if (ctl_->wait_exit(st_, 50)) continue;
          set_state("stopping", gen, why);
          publish_status(true);
          log(LogLevel::Info, fmt::format("{}: stopping agent {} ({})", cfg_.host, st_.running, why));
          save_state();
          return false;
        case host::Effect::Kill:
          log(LogLevel::Warn, fmt::format("{}: agent {} still running after the {} stop timeout; killing it", cfg_.host,
                                          st_.running, format_duration_ms(a.stop_timeout_ms)));
          if (st_.agent_pid > 0) signal_process(static_cast<pid_t>(st_.agent_pid), SIGKILL);
          if (ctl_->wait_exit(st_, 100)) continue;
          save_state();
          return false;
        default:
          return false;  // waiting for the agent to exit or the phase's deadline
      }
    }
    return !agent_up_now();
  }

  // Starts the agent and saves its pid at once (before any share write that could hang);
  // started() runs first, so the switch's own bookkeeping goes into the same local write.
  bool start_agent(const std::string& version, std::string* why, const std::function<void()>& started = {}) {
    // A signed host starts only from a verified copy: one not made yet (the release ran before
    // this watchdog kept copies) is made now.
    if (cfg_.trust.signed_mode() && !verified_copy_ready(cache_dir(version), version == pending_ ? pending_cls_ : st_.cls) &&
        !verify(version, why))
      return false;
    set_state("starting", st_.status_gen, "");
    auto s = ctl_->start(st_, agent_spec(version));
    if (!s) {
      *why = s.error().msg;
      return false;
    }
    st_.running = version;
    st_.runs_from.clear();
    st_.lc = host::step(st_.lc, host::Event::Started, true, boot_ms(), timeouts()).next;
    if (started) started();
    save_state();
    return true;
  }

  std::string cache_dir(const std::string& v) const { return path_join(path_join(cfg_.state_dir, "cache"), v); }

  // Keeps a local copy of the run tree of a release this host verified, so that it can
  // restart its agent while the share is unreachable. Copied under the share deadline;
  // published locally by rename. Older copies are dropped.
  void cache_release(const std::string& version) {
    std::string dst = cache_dir(version);
    struct stat cs{};
    if (::stat(dst.c_str(), &cs) == 0) {  // published earlier, by rename after a verified copy
      st_.cached = version;
      return;
    }
    std::string tmp = dst + ".tmp";
    ::mkdir(path_join(cfg_.state_dir, "cache").c_str(), 0755);
    (void)remove_tree(tmp);
    std::string why;
    int64_t limit = cfg_.share_timeout_ms * 6;
    // Copied in-process from the manifest, each file hashed on the way (an external `cp -a`
    // cost an exec per host, all at the same heartbeat after an upgrade, and checked nothing).
    auto ok = share_call<Status>([share = share_, version, cls = st_.cls, tmp]() mutable {
          return share.copy_run_tree(version, cls, tmp);
        },
        limit, &why, cfg_.share_timeout_ms);
    if (!ok || !*ok || ::rename(tmp.c_str(), dst.c_str()) != 0) {
      log(LogLevel::Warn, fmt::format("{}: no local copy of {}: {}", cfg_.host, version,
                                      !ok ? why : !*ok ? (*ok).error().msg : "rename: " + errno_str(errno)));
      (void)remove_tree(tmp);
      if (!ok) {
        cache_at_ms_ = boot_ms() + 2 * cfg_.heartbeat_interval_ms;  // the share hung: try again later
      } else {
        st_.cached = "!" + version;  // not again for this release (until it is started anew)
      }
      return;
    }
    prune_cache({version, st_.previous, st_.runs_from});
    st_.cached = version;
  }

  // Drops every local copy but those of `keep` (and their .verified stamps).
  void prune_cache(const std::vector<std::string>& keep) {
    DIR* d = ::opendir(path_join(cfg_.state_dir, "cache").c_str());
    if (!d) return;
    std::vector<std::string> old;
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      bool kept = n == "." || n == "..";
      for (const auto& k : keep) kept = kept || (!k.empty() && (n == k || n == k + ".verified"));
      if (!kept) old.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : old) (void)remove_tree(path_join(path_join(cfg_.state_dir, "cache"), n));
  }

  // Share unreachable and the agent down: start the last verified release from local disk.
  void start_from_local_copy() {
    if (ctl_->up(st_) || st_.gave_up || st_.running.empty() || st_.cached != st_.running) return;
    if (st_.restart_at && boot_ms() < st_.restart_at) return;
    SpawnSpec s = agent_spec(st_.running);
    std::string local = cache_dir(st_.running), shared = s.cwd;
    for (auto& a : s.argv)
      if (starts_with(a, shared + "/")) a = local + a.substr(shared.size());
    s.cwd = local;
    s.env["NFSUP_RELEASE_DIR"] = local;
    auto r = ctl_->start(st_, s);
    if (!r) {
      log(LogLevel::Error, fmt::format("{}: starting the local copy of {}: {}", cfg_.host, st_.running, r.error().msg));
      return;
    }
    st_.lc = {};
    set_state("running", st_.status_gen,
              fmt::format("started {} from its local copy in {} while the share was unreachable", st_.running, local));
    log(LogLevel::Warn, fmt::format("{}: {}", cfg_.host, st_.reason));
  }

  // A started agent counts as running once it has stayed up for start_grace.
  NFSUP_HOT void promote_if_settled() {
    if (st_.lc.phase != host::Phase::Starting || boot_ms() < st_.lc.deadline_ms) return;
    host::Step s = host::step(st_.lc, host::Event::Poll, ctl_->up(st_), boot_ms(), timeouts());
    if (s.effect == host::Effect::DiedStarting) {  // (a daemon's child is reaped before: on_agent_exit)
      st_.agent_pid = 0;
      st_.agent_start = 0;
      return agent_died("it is no longer running");
    }
    if (s.effect != host::Effect::Settled) return;
    st_.lc = s.next;
    st_.trial = false;
    if (st_.state != "starting") return save_state();  // (back on the old release: stays `failed`)
    if (!cfg_.agent.health_command.empty()) {
      struct stat hs{};
      std::string hpath = path_join(release_dir_for(st_.running), cfg_.agent.health_command[0]);
      std::string why;
      // The share may hang: look for the health command under the deadline.
      auto ships = share_call<bool>([hpath] {
        struct stat x{};
        return ::stat(hpath.c_str(), &x) == 0;
      }, cfg_.share_timeout_ms, &why);
      (void)hs;
      if (!ships) {
        note_share_error(why);
      } else if (!*ships) {
        log(LogLevel::Warn, fmt::format("{}: release {} does not ship {}; no health gate for it", cfg_.host,
                                        st_.running, cfg_.agent.health_command[0]));
      } else if (!health_ok(&why)) {
        return health_failed(why);
      }
    }
    set_state("running", st_.status_gen, "");
    log(LogLevel::Info, fmt::format("{}: running {}", cfg_.host, st_.running));
    publish_status(true);
    save_state();
    // The local copy is made later, out of the upgrade's busy moment in which every host
    // starts its agent and reports at once, and not by every host at the same moment either
    // (a thundering herd on the share): at a random time 1 to 3 heartbeat intervals from now.
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (static_cast<uint64_t>(::getpid()) << 32) ^ static_cast<uint64_t>(ts.tv_nsec) ^
                 std::hash<std::string>{}(cfg_.host);
    x ^= x >> 31, x *= 0x9E3779B97F4A7C15ULL, x ^= x >> 29;  // mixed: hosts started together differ
    double u = static_cast<double>(x >> 11) / static_cast<double>(1ULL << 53);  // [0, 1)
    cache_at_ms_ = boot_ms() + cfg_.heartbeat_interval_ms +
                   static_cast<int64_t>(2 * u * static_cast<double>(cfg_.heartbeat_interval_ms));
  }

  // The release running here has no local copy yet, and copying it has not failed.
  bool copy_due() const {
    return !st_.running.empty() && st_.cached != st_.running && st_.cached != "!" + st_.running;
  }

  // Verifies the release on the share under a deadline that grows with its size.
  // hashed: the files were hashed against this very manifest while the host waited (prepare_switch).
  bool verify(const std::string& version, std::string* why, bool hashed = false) {
    Result<std::vector<std::string>> r = std::vector<std::string>();
    std::string t;
    std::string cls = version == pending_ ? pending_cls_ : st_.cls;
    if (cfg_.trust.signed_mode()) return verified_copy(version, cls, why);
    // verify_before_start: false skips hashing every file, never the signature and expiry checks.
    if (cfg_.verify_before_start && !hashed) {
      auto got = share_call<Result<std::vector<std::string>>>(
          [this, version, cls] { return share_.verify_release(version, cls); }, cfg_.share_timeout_ms * 6, &t,
          cfg_.share_timeout_ms);
      if (!got) {
        *why = "verifying " + version + ": " + t;
        note_share_error(t);
        return false;
      }
      r = std::move(*got);
    }
    if (!r) {
      *why = r.error().msg;
      return false;
    }
    if (!r->empty()) {
      *why = fmt::format("release {} fails verification: {}", version, (*r)[0]);
      return false;
    }
    auto tgot = share_call<Result<std::string>>(
        [this, version, policy = cfg_.trust] { return check_release_trust(share_, version, policy, time(nullptr)); },
        cfg_.share_timeout_ms, &t);
    if (!tgot) {
      *why = "checking the signature of " + version + ": " + t;
      note_share_error(t);
      return false;
    }
    Result<std::string> trust = std::move(*tgot);
    if (!trust) {
      *why = trust.error().msg;
      return false;
    }
    if (!trust->empty()) {
      *why = *trust;
      return false;
    }
    return true;
  }

  // Signed mode: makes (or finds) the local copy of `version` for class `cls` that the agent
  // will run, every byte hashed against the signed manifest as it was copied, with the
  // signature and expiry checked on the manifest bytes the copy was made from, and nothing on
  // the share that the manifest does not list. verify_before_start does not apply: the copy
  // is always hashed. Runs under the share deadline (it grows with the release while the copy
  // moves).
  bool verified_copy(const std::string& version, const std::string& cls, std::string* why) {
    std::string t;
    ::mkdir(path_join(cfg_.state_dir, "cache").c_str(), 0755);
    auto got = share_call<Result<std::string>>(
        [share = share_, version, cls, policy = cfg_.trust, dst = cache_dir(version)]() mutable {
          return make_verified_copy(share, version, cls, policy, time(nullptr), dst);
        },
        cfg_.share_timeout_ms * 6, &t, cfg_.share_timeout_ms);
    if (!got) {
      *why = "verifying " + version + ": " + t;
      note_share_error(t);
      return false;
    }
    if (!*got) {
      *why = got->error().msg;
      return false;
    }
    *why = **got;
    return why->empty();
  }

  // Writes the backup of the configuration left pending by the last switch. Called before
  // anything may rewrite the configuration or look for a backup, when idle, and on exit.
  void flush_backup() {
    if (pending_backup_.first.empty()) return;
    if (auto s = write_backup(cfg_, pending_backup_.first, pending_backup_.second); !s)
      log(LogLevel::Error, s.error().msg);
    pending_backup_ = {};
  }

  // The SHA-256 of the target's manifest as the share has it now, or "" (share trouble, no
  // manifest: the caller then does the work in full).
  std::string manifest_digest(const std::string& version) {
    std::string t;
    auto got = share_call<Result<std::optional<std::string>>>(
        [this, version] { return share_.read_manifest_text(version); }, cfg_.share_timeout_ms, &t);
    if (!got || !*got || !**got) return "";
    return sha256_hex(***got);
  }

  // Work a switch needs that does not depend on the pointer having moved, done while this host
  // waits stopped for the unmark (the marker names the target): resolving this host's class
  // and modules, hashing the target's files against its manifest, planning the reconfig
  // (fetching and checking the script), writing the pending config backup. At the unmark the
  // switch only checks that the manifest is byte for byte the one prepared (one read) and
  // checks the signature and expiry again. The hashing leaves each host's downtime (for a
  // large release on NFS it is the longest part of the restart), and the moment in which
  // every host restarts at once carries less work. Only successes are kept: anything that
  // fails here is done again, in full, by the switch. Daemons only (a cron tick's memory ends
  // with the tick).
  void prepare_switch(const std::string& to) {
    if (!opt_.daemon || to.empty() || to == st_.running || ctl_->up(st_)) return;
    std::string key = to + "|" + st_.running;
    if (prepared_.key == key || prepare_tried_ == key) return;
    prepare_tried_ = key;
    flush_backup();
    Prepared p;
    p.key = key;
    p.digest = manifest_digest(to);
    std::string why;
    if (p.digest.empty() || !resolve(to, &p.cls, &p.mods, nullptr, &why)) return;
    int64_t t0 = boot_ms();
    if (cfg_.trust.signed_mode()) {
      if (!verified_copy(to, p.cls, &why)) return;
    } else if (cfg_.verify_before_start) {
      auto got = share_call<Result<std::vector<std::string>>>(
          [this, to, cls = p.cls] { return share_.verify_release(to, cls); }, cfg_.share_timeout_ms * 6, &why,
          cfg_.share_timeout_ms);
      if (!got || !*got || !(*got)->empty()) return;
    }
    auto plan = share_call<Result<ReconfigPlan>>(
        [this, cfg = cfg_, from = st_.running, to] { return plan_reconfig(share_, cfg, from, to); },
        cfg_.share_timeout_ms, &why);
    if (!plan || !*plan) return;
    p.plan = **plan;
    // Read again: what was hashed is this manifest, not one swapped in meanwhile.
    if (manifest_digest(to) != p.digest) return;
    prepared_ = std::move(p);
    log(LogLevel::Info, fmt::format("{}: {} {} while stopped in {}; ready to switch", cfg_.host, to,
                                    cfg_.verify_before_start || cfg_.trust.signed_mode() ? "verified" : "resolved",
                                    format_duration_ms(boot_ms() - t0)));
  }

  // Stops the agent for a switch; false while it is still draining or stopping. What was
  // checked is kept for the pass that finds it down (a daemon's memory; a cron tick checks again).
  bool stopped_for_switch(const std::string& from, const std::string& to, int64_t gen, const ReconfigPlan& plan) {
    if (advance_stop(fmt::format("switching to {}", to), gen)) return true;
    std::string digest = manifest_digest(to);
    if (!digest.empty()) prepared_ = Prepared{to + "|" + from, digest, pending_cls_, pending_mods_, plan};
    pending_.clear();
    return false;
  }

  void do_switch(const Decision& d) {
    std::string from = d.from, to = d.to;
    // A stop begun by an earlier pass of this switch goes on first; the switch proper (checks
    // again, then reconfig and start) follows once the agent is down.
    if (host::stopping(st_.lc.phase) && !advance_stop(fmt::format("switching to {}", to), d.generation)) return;
    flush_backup();
    // Prepared while this host waited, for this very switch and manifest?
    std::optional<Prepared> prep;
    if (prepared_.key == to + "|" + from && manifest_digest(to) == prepared_.digest) prep = prepared_;
    prepared_ = {};
    prepare_tried_.clear();
    log(LogLevel::Info, fmt::format("{}: switching {} -> {} (generation {}{})", cfg_.host, from.empty() ? "-" : from, to,
                                    d.generation, prep ? "; prepared while stopped" : ""));
    std::string why;
    auto fail = [&](const std::string& reason) {
      log(LogLevel::Error, fmt::format("{}: switch {} -> {} failed: {}", cfg_.host, from.empty() ? "-" : from, to, reason));
      st_.failed_gen = d.generation;
      if (!from.empty() && !ctl_->up(st_)) {
        std::string w2;
        if (!start_agent(from, &w2))
          log(LogLevel::Error, fmt::format("{}: could not restart {} either: {}", cfg_.host, from, w2));
        else
          log(LogLevel::Info, fmt::format("{}: kept on {}", cfg_.host, from));
      }
      set_state("failed", d.generation, reason);
      publish_status(true);
      save_state();
    };
    if (cfg_.trust.signed_mode() && !st_.newest.empty() && compare_versions(to, st_.newest) < 0 &&
        !(last_pointer_.action == "rollback" && last_pointer_.release_for(cfg_.host) == to &&
          pointer_signed_by_trusted(last_pointer_, cfg_.trust)))
      return fail(fmt::format("refusing to go back from {} (newest accepted here) to {}: {} is not a rollback "
                              "signed by a trusted key",
                              st_.newest, to, share_.pointer_path()));
    if (prep) {
      pending_ = to;
      pending_cls_ = prep->cls;
      pending_mods_ = prep->mods;
    } else {
      std::string cls;
      std::map<std::string, std::string> mods;
      if (!resolve(to, &cls, &mods, nullptr, &why)) return fail(why);
      pending_ = to;
      pending_cls_ = cls;
      pending_mods_ = mods;
    }
    if (!verify(to, &why, prep.has_value())) return fail(why);
    if (unchanged_for(to)) {
      // Same module hashes for this host: keep the agent, move the bookkeeping.
      if (st_.runs_from.empty()) st_.runs_from = from;
      st_.previous = from;
      st_.running = to;
      st_.cls = pending_cls_;
      st_.modules = pending_mods_;
      pending_.clear();
      st_.failed_gen = 0;
      st_.held_gen = 0;
      st_.held_since_ms = 0;
      if (st_.newest.empty() || compare_versions(to, st_.newest) > 0) st_.newest = to;
      set_state("running", d.generation, fmt::format("modules unchanged; agent not restarted (runs from {})", st_.runs_from));
      log(LogLevel::Info, fmt::format("{}: {} -> {}: {}", cfg_.host, from, to, st_.reason));
      publish_status(true);
      save_state();
      return;
    }
    ReconfigPlan plan;
    if (prep) {
      plan = prep->plan;
    } else {
      std::string t;
      auto got = share_call<Result<ReconfigPlan>>(
          [this, cfg = cfg_, from, to] { return plan_reconfig(share_, cfg, from, to); }, cfg_.share_timeout_ms, &t);
      if (!got) {
        note_share_error(t);
        return fail("reading the reconfig script: " + t);
      }
      Result<ReconfigPlan> p = std::move(*got);
      if (!p) return fail(p.error().msg);
      plan = *p;
    }
    if (!stopped_for_switch(from, to, d.generation, plan)) return;
    // A daemon writes the backup of an unchanged configuration later (flush_backup), off the
    // moment in which every host restarts at once; a cron tick writes it now.
    auto applied = apply_reconfig(cfg_, plan, false, opt_.daemon);
    if (!applied) return fail(applied.error().msg);
    if (!applied->backup_path.empty()) pending_backup_ = {applied->backup_path, applied->backup};
    if (plan.kind != ReconfigPlan::Nothing)
      log(LogLevel::Info, fmt::format("{}: config {}: {}", cfg_.host, cfg_.agent.config, applied->message));
    st_.crashes.clear();
    st_.gave_up = false;
    st_.previous = from;
    std::string old_cls = st_.cls;
    auto old_mods = st_.modules;
    st_.cls = pending_cls_;
    st_.modules = pending_mods_;
    bool started = start_agent(to, &why, [&] {
      st_.failed_gen = 0;
      st_.held_gen = 0;
      st_.held_since_ms = 0;
      st_.trial = !from.empty() && from != to;  // dies in its start grace: back to `from`
      if (st_.newest.empty() || compare_versions(to, st_.newest) > 0) st_.newest = to;
      set_state("starting", d.generation, "");
    });
    pending_.clear();
    if (!started) {
      st_.cls = old_cls;
      st_.modules = old_mods;
      // Put the old configuration back before restarting the old release.
      if (!from.empty() && plan.kind != ReconfigPlan::Nothing) {
        ReconfigPlan back;
        back.kind = ReconfigPlan::Restore;
        back.from = to;
        back.to = from;
        back.backup_source = backup_path(cfg_, from);
        (void)apply_reconfig(cfg_, back, false);
      }
      return fail("starting " + to + ": " + why);
    }
    log(LogLevel::Info, fmt::format("{}: started {}", cfg_.host, to));
    if (cfg_.trust.signed_mode()) {
      st_.cached = to;
      prune_cache({to, from, st_.runs_from});
    }
    publish_status(true);
    save_state();
  }

  // Cron mode: the agent we started has died since the last tick (unless it was told to go).
  void notice_cron_agent_exit() {
    if (st_.agent_pid <= 0 || st_.gave_up || host::stopping(st_.lc.phase)) return;
    log(LogLevel::Warn, fmt::format("{}: agent {} (pid {}) is no longer running", cfg_.host, st_.running, st_.agent_pid));
    st_.agent_pid = 0;
    st_.agent_start = 0;
    agent_died("exited");
  }

  // A stop under way that nobody asks for any more (the marker went, the lease lapsed) is
  // still finished: the agent has been told to go. The decision is taken again once it is.
  Decision finish_unwanted_stop(const Observation& obs) {
    Decision d;
    if (advance_stop(st_.reason, st_.status_gen)) d = decide(obs, view(false));
    if (d.kind == Decision::NeedPointer) d.kind = Decision::Keep;
    return d;
  }

  // Decision Start: the release that ran here, with its agent down. Not before the back-off
  // after a crash or a failed start has passed (d becomes Keep meanwhile).
  void start_again(Decision& d, const Observation& obs) {
    if (st_.restart_at && boot_ms() < st_.restart_at) {
      d.kind = Decision::Keep;
      return;
    }
    st_.restart_at = 0;
    std::string why;
    if (!verify(d.to, &why) || !start_agent(d.to, &why)) {
      set_state("failed", d.generation ? d.generation : st_.status_gen, "starting " + d.to + ": " + why);
      log(LogLevel::Error, fmt::format("{}: starting {} failed: {}", cfg_.host, d.to, why));
      st_.gave_up = count_crash();
      if (!st_.gave_up) st_.restart_at = boot_ms() + backoff_ms();
      return;
    }
    log(LogLevel::Info, fmt::format("{}: started {} ({})", cfg_.host, d.to, d.why));
    st_.held_gen = 0;
    st_.held_since_ms = 0;
    bool still_failed = st_.failed_gen && obs.pointer && obs.pointer->generation == st_.failed_gen;
    if (still_failed) set_state("failed", st_.failed_gen, st_.reason);  // back on the old release
    else set_state("starting", d.generation ? d.generation : st_.status_gen, "");
  }

  // One pass of observe -> decide -> act. Returns the decision taken.
  NFSUP_HOT Decision tick(bool first) {
    idle_ = false;
    bool agent_up = ctl_->up(st_);
    if (!opt_.daemon && !agent_up) notice_cron_agent_exit();
    // What the status says about this host's configuration (checks, poll, class...) changed
    // (a reload, an edited file before a cron tick): say so now, not at the next heartbeat.
    if (status_conf() != st_.published_conf) status_dirty_ = true;
    bool heartbeat_due = boot_ms() - st_.last_pointer_ms >= cfg_.heartbeat_interval_ms;
    // One heartbeat = one pointer read and one status write, in the same tick (so that an idle
    // cron tick writes either nothing or both, never one now and the other at the next tick).
    if (heartbeat_due) status_dirty_ = true;
    // While the share is down, only a full look (pointer, and the share's format file when
    // there is no pointer) says it is back: the marker alone would, in an empty mountpoint.
    bool want_pointer = first || force_pointer_ || st_.held_gen > 0 || !agent_up || heartbeat_due || share_down_;
    Observation obs = observe(want_pointer);
    if (!obs.share_ok && obs.garbled) {
      // The share answers; one file is malformed (or caught mid-replace). Keep the agent as
      // it is, keep the heartbeat going, try again next poll.
      if (obs.share_error != garbled_logged_) {
        log(LogLevel::Warn, fmt::format("{}: {} (not acting on it; retrying every poll)", cfg_.host, obs.share_error));
        garbled_logged_ = obs.share_error;
      }
      publish_status(false);
      save_state();
      return decide(obs, view(agent_up));
    }
    garbled_logged_.clear();
    if (!obs.share_ok) {
      note_share_error(obs.share_error);
      start_from_local_copy();
      save_state();
      return decide(obs, view());
    }
    note_share_ok();
    force_pointer_ = false;
    if (obs.marker) lease_ms_ = obs.marker->lease_ms;
    Decision d = decide(obs, view(agent_up));
    if (host::stopping(st_.lc.phase) && d.kind != Decision::Hold && d.kind != Decision::Switch)
      d = finish_unwanted_stop(obs);
    switch (d.kind) {
      case Decision::NeedPointer:
        // Fast idle path: the marker is absent and nothing says the pointer moved.
        d.kind = Decision::Keep;
        break;
      case Decision::Hold:
        if (st_.held_gen != d.generation) {
          log(LogLevel::Info, fmt::format("{}: marker seen: {}", cfg_.host, d.why));
          prepared_ = {};  // a new push: prepared anew, from the share as it is now
          prepare_tried_.clear();
          st_.held_gen = d.generation;
          st_.held_since_ms = 0;
        }
        if (!host::stopping(st_.lc.phase) && unchanged_for(d.to)) {
          set_state("unchanged", d.generation, fmt::format("modules of {} unchanged for this host; not restarted", d.to));
          break;
        }
        if (advance_stop(d.why, d.generation)) set_state("stopped", d.generation, d.why);
        break;
      case Decision::WaitPointer:
        if (!st_.held_since_ms) st_.held_since_ms = boot_ms();
        set_state("stopped", st_.held_gen, d.why);
        break;
      case Decision::Idle:
        set_state("idle", 0, d.why);
        break;
      case Decision::Vote:
        vote(d);
        break;
      case Decision::Switch:
        do_switch(d);
        break;
      case Decision::Start:
        start_again(d, obs);
        break;
      case Decision::Keep:
        if (obs.pointer && st_.held_gen && obs.pointer->generation >= st_.held_gen) {
          st_.held_gen = 0;
          st_.held_since_ms = 0;
        }
        if (heartbeat_due && !obs.marker) flush_backup();
        // (a cron tick makes it at the tick after the one that started the agent)
        if (copy_due() && boot_ms() >= cache_at_ms_ && !obs.marker && agent_up && st_.state == "running")
          cache_release(st_.running);
        // (A note that the agent runs from its local copy stays until the next switch.)
        if (agent_up && st_.state == "running" && obs.pointer)
          set_state("running", obs.pointer->generation, starts_with(st_.reason, "started ") ? st_.reason : "");
        break;
    }
    promote_if_settled();
    if (!obs.marker && heartbeat_due && d.kind == Decision::Keep) deliver_spool();
    publish_status(false);
    save_state();
    // Stopped and reported: get the switch ready while the other hosts stop.
    if (d.kind == Decision::Hold && st_.state == "stopped") prepare_switch(d.to);
    // A marker is up: poll faster until it is gone, so that this host resumes soon after the
    // master has switched the pointer (see held_poll_ms()).
    fast_poll_ = obs.marker && !obs.marker_lapsed;
    // Nothing under way: until the next heartbeat, polls only need to look for the marker.
    idle_ = d.kind == Decision::Keep && !obs.marker && !share_down_ && !st_.held_gen && !st_.restart_at &&
            st_.lc.phase == host::Phase::Steady && (st_.state == "running" || st_.state == "idle" || st_.state == "failed");
    return d;
  }

  // Records a crash; returns true when the restart-loop limit is reached.
  bool count_crash() {
    int64_t now = boot_ms();
    st_.crashes.push_back(now);
    std::vector<int64_t> keep;
    for (auto t : st_.crashes)
      if (now - t <= cfg_.agent.restart_window_ms) keep.push_back(t);
    st_.crashes = keep;
    return static_cast<int>(st_.crashes.size()) >= cfg_.agent.restart_limit;
  }

  // Runs agent.health until it passes or its timeout runs out.
  bool health_ok(std::string* why) {
    const AgentConfig& a = cfg_.agent;
    int64_t until = boot_ms() + a.health_timeout_ms;
    SpawnSpec s = agent_spec(st_.running);
    s.argv = a.health_command;
    s.argv[0] = path_join(release_dir_for(st_.running), a.health_command[0]);
    s.stdout_path.clear();
    std::string last = "no attempt", finished;  // finished: the last attempt that ran to its end
    while (true) {
      int64_t left = until - boot_ms();
      if (left <= 0) break;
      auto r = run_with_timeout(s, left);
      if (r && !r->timed_out && r->exit_code == 0) return true;
      std::string out;
      if (r)
        for (const auto& l : split(r->output, '\n'))
          if (!l.empty()) out = l;
      if (r && !r->timed_out) finished = fmt::format("exit code {}{}{}", r->exit_code, out.empty() ? "" : ": ", out);
      // An attempt cut off by the overall deadline says less than the one before it did.
      last = !r              ? r.error().msg
             : !r->timed_out ? finished
             : finished.empty() ? std::string("timed out")
                                : finished + "; the next try was cut off by the deadline";
      if (!ctl_->up(st_)) {
        last += " (and the agent exited)";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    *why = fmt::format("health check of {} failed within {} ({})", st_.running, format_duration_ms(a.health_timeout_ms),
                       last);
    return false;
  }

  // A release that failed its health gate: go back to the release this host ran before.
  void health_failed(const std::string& why) {
    flush_backup();
    std::string bad = st_.running, prev = st_.previous;
    log(LogLevel::Error, fmt::format("{}: {}", cfg_.host, why));
    st_.failed_gen = st_.status_gen;
    ctl_->stop(st_, cfg_.agent);
    std::string reason = why;
    if (!prev.empty() && prev != bad) {
      struct stat bs{};
      if (!cfg_.agent.config.empty() && ::stat(backup_path(cfg_, prev).c_str(), &bs) == 0) {
        ReconfigPlan back;
        back.kind = ReconfigPlan::Restore;
        back.from = bad;
        back.to = prev;
        back.backup_source = backup_path(cfg_, prev);
        if (auto r = apply_reconfig(cfg_, back, false); !r) log(LogLevel::Error, r.error().msg);
      }
      std::string w2;
      if (start_agent(prev, &w2)) {
        st_.lc = {};  // (the release it ran before: no grace to wait out)
        reason += fmt::format("; rolled back to {}", prev);
        log(LogLevel::Info, fmt::format("{}: rolled back to {}", cfg_.host, prev));
      } else {
        reason += fmt::format("; could not restart {}: {}", prev, w2);
      }
    }
    set_state("failed", st_.status_gen, reason);
    publish_status(true);
    save_state();
  }

  // Daemon: the agent child exited by itself.
  void on_agent_exit(int status) {
    agent_died(WIFEXITED(status) ? fmt::format("exit code {}", WEXITSTATUS(status))
                                 : fmt::format("signal {}", signal_name(WTERMSIG(status))));
  }

  // Restart back-off after the n-th crash within restart_window: 0.5 s doubling, at most 30 s.
  int64_t backoff_ms() const {
    size_t n = std::max<size_t>(st_.crashes.size(), 1);
    return std::min<int64_t>(30000, 500LL << std::min<size_t>(n - 1, 6));
  }

  // The agent exited without being asked to. During the start grace of a switch, the release
  // does not start: back to the release (and configuration) this host ran before. Otherwise a
  // crash: restarted after a back-off, until restart_limit crashes within restart_window.
  void agent_died(const std::string& how) {
    if (host::stopping(st_.lc.phase)) return;  // asked to go: the stop's next step sees it gone
    bool starting = st_.lc.phase == host::Phase::Starting;
    st_.lc = {};
    if (starting && st_.trial) {
      st_.trial = false;
      return health_failed(fmt::format("agent {} exited during its start grace ({})", st_.running, how));
    }
    if (count_crash()) {
      st_.gave_up = true;
      set_state("failed", st_.status_gen,
                fmt::format("agent {} died ({}) {} times within {}; not restarting until a new push or SIGHUP",
                            st_.running, how, st_.crashes.size(), format_duration_ms(cfg_.agent.restart_window_ms)));
      log(LogLevel::Error, fmt::format("{}: {}", cfg_.host, st_.reason));
    } else {
      st_.restart_at = boot_ms() + backoff_ms();
      log(LogLevel::Warn, fmt::format("{}: agent {} died ({}); restarting in {}", cfg_.host, st_.running, how,
                                      format_duration_ms(st_.restart_at - boot_ms())));
      set_state("starting", st_.status_gen, fmt::format("agent died ({}); restarting", how));
    }
    publish_status(true);
    save_state();
  }

  void shutdown() {
    flush_backup();
    if (ctl_->up(st_)) {
      log(LogLevel::Info, fmt::format("{}: watchdog stopping; stopping agent {}", cfg_.host, st_.running));
      ctl_->stop(st_, cfg_.agent);
    }
    set_state("stopped", st_.status_gen, "watchdog stopped");
    publish_status(true);
    save_state();
  }

  // When a daemon starts and finds an agent from an earlier watchdog still alive, it cannot
  // supervise it (not its child): stop it so the first tick starts one it owns.
  void adopt_orphan() {
    if (!opt_.daemon || !cfg_.agent.start_command.empty()) return;
    if (st_.agent_pid > 0 && process_alive(static_cast<pid_t>(st_.agent_pid), st_.agent_start)) {
      log(LogLevel::Info, fmt::format("{}: stopping agent pid {} left by an earlier watchdog", cfg_.host, st_.agent_pid));
      stop_process(static_cast<pid_t>(st_.agent_pid), cfg_.agent.stop_signal, cfg_.agent.stop_timeout_ms, false);
    }
    st_.agent_pid = 0;
    st_.agent_start = 0;
  }

  WatchdogConfig cfg_;
  WatchdogRuntimeOptions opt_;
  bool metrics_ok_ = true;
  RealFs fs_;
  Share share_;
  ShareWorker worker_;                 // daemon: share operations run here, under deadlines
  std::unique_ptr<ShareGuard> guard_;  // cron tick: share operations run inline, under a guard
  std::unique_ptr<AgentCtl> ctl_;
  LocalState st_;
  std::string saved_;
  LocalState saved_st_;  // the state saved_ holds (its heartbeat fields, for the daemon's comparison)
  bool status_dirty_ = true;
  bool idle_ = false;  // the last tick found nothing to do (see the end of tick())
  bool fast_poll_ = false;  // the last tick saw a live marker
  std::pair<std::string, std::string> pending_backup_;  // (path, content) still to write
  int64_t cache_at_ms_ = 0;  // the local copy of the running release is not made before this
  bool share_down_ = false;
  std::string share_error_;
  bool force_pointer_ = true;
  bool lapse_logged_ = false;
  int64_t lease_ms_ = 30000;
  Pointer last_pointer_;
  std::string garbled_logged_;
  std::string pending_, pending_cls_;   // release being switched to, and its class
  std::map<std::string, std::string> pending_mods_;
  std::pair<std::string, bool> unchanged_cache_;
  std::pair<std::string, bool> stale_marker_;  // (marker nonce/generation, judged stale)
  struct Prepared {
    std::string key;     // "to|from"
    std::string digest;  // SHA-256 of the target's manifest that was hashed against
    std::string cls;
    std::map<std::string, std::string> mods;
    ReconfigPlan plan;
  };
  Prepared prepared_;          // (key empty: nothing prepared)
  std::string prepare_tried_;  // key of the last attempt: one per switch
};

}  // namespace

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

}  // namespace

int run_watchdog_daemon(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt) {
  // Two threads, little allocation: one malloc arena (no second 64 MiB arena for the worker).
  ::mallopt(M_ARENA_MAX, 1);
  {
    // Held for the daemon's lifetime (close-on-exec: the agent does not inherit it). A cron
    // tick holding it finishes within its own time limit: wait up to a minute for it. Another
    // daemon does not finish: give up at once.
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
    (void)fd;  // kept open (and locked) until the process ends
  }
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
    int64_t poll_ms = wd->cfg_.poll_interval_ms;
    bool probe_stuck = wd->idle_ && wd->worker_.busy_for_ms() > wd->cfg_.share_timeout_ms;
    if (now >= next_tick || woken || probe_stuck) {
      woken = false;
      wd->worker_.clear_probe();
      wd->tick(first);
      if (first && opt.on_ready) opt.on_ready();
      first = false;
      now = boot_ms();
      next_tick = now + (wd->fast_poll_ ? wd->held_poll_ms() : poll_ms);
      if (wd->idle_ && wake_fd >= 0) {
        next_tick = std::max(next_tick, wd->next_heartbeat_ms());
        wd->worker_.set_probe(probe, poll_ms, now + poll_ms, wake_fd);
      }
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
    int64_t wait = std::max<int64_t>(0, next_tick - boot_ms());
    if (wd->st_.restart_at) wait = std::min<int64_t>(wait, std::max<int64_t>(0, wd->st_.restart_at - boot_ms()));
    if (wd->st_.lc.phase == host::Phase::Starting)
      wait = std::min<int64_t>(wait, std::max<int64_t>(0, wd->st_.lc.deadline_ms - boot_ms()));
    pollfd pf[2] = {{sigfd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    // Idle, this thread only has to notice a probe stuck on a hung mount (share_timeout) and
    // keep systemd's watchdog fed; otherwise it wakes at least once a second.
    int64_t cap = wd->idle_ ? std::clamp<int64_t>(wd->cfg_.share_timeout_ms / 2, 100, 5000) : 1000;
    if (opt.alive_interval_ms > 0) cap = std::min(cap, opt.alive_interval_ms);
    int ready = ::poll(pf, wake_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(wait, cap)));
    std::vector<int> sigs;
    if (ready > 0 && (pf[0].revents & POLLIN)) sigs = read_signals(sigfd);
    if (ready > 0 && wake_fd >= 0 && (pf[1].revents & POLLIN)) {
      uint64_t n;
      (void)!::read(wake_fd, &n, sizeof n);
      woken = true;
    }
    for (int sig : sigs) {
      if (sig == SIGTERM || sig == SIGINT) {
        wd->shutdown();
        wd->log(LogLevel::Info, fmt::format("{}: watchdog exiting ({})", cfg.host, signal_name(sig)));
        (void)wd.release();  // a share call stuck in the kernel may still hold it; the process ends now
        return 0;
      }
      if (sig == SIGHUP) {
        if (opt.reload) {
          auto n = opt.reload();
          if (!n) {
            wd->log(LogLevel::Error, "reload failed, keeping the old config: " + n.error().msg);
          } else if (n->share != wd->cfg_.share || n->host != wd->cfg_.host || n->state_dir != wd->cfg_.state_dir) {
            wd->log(LogLevel::Error, "reload: share, host and state_dir cannot change without a restart; kept the old config");
          } else {
            wd->cfg_ = *n;
            wd->log(LogLevel::Info, "config reloaded");
          }
        }
        wd->st_.gave_up = false;
        wd->st_.crashes.clear();
        wd->force_pointer_ = true;
        next_tick = boot_ms();
      }
    }
    if (auto st = wd->ctl_->reap(wd->st_)) {
      wd->on_agent_exit(*st);
      wd->idle_ = false;
      wd->worker_.clear_probe();
      // (an agent that was told to go: the stop completes at once, at the next tick)
      next_tick = std::min(next_tick, host::stopping(wd->st_.lc.phase) ? boot_ms() : boot_ms() + wd->cfg_.poll_interval_ms);
    }
    wd->promote_if_settled();
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
  wd->save_state();
  int code = wd->st_.state == "failed" ? static_cast<int>(Exit::Failed) : 0;
  std::fflush(nullptr);
  ::_exit(code);
}

}  // namespace nfsup
