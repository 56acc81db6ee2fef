// nfsup host: the cron tick's share guard (internal to the watchdog).
#pragma once
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
#include "process.h"
#include "nfsup_version.h"
#include "reconfig.h"
#include "stage.h"
#include "trust.h"

namespace nfsup {

// ================================================================ share guard (cron tick)

namespace wd {

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

}  // namespace wd

}  // namespace nfsup
