// nfsup host: the daemon's share worker thread.
#include "watchdog_impl.h"

namespace nfsup {

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

}  // namespace nfsup
