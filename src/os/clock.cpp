// nfsup os: the boot clock, sleeping, wall time.
#include "clock.h"

#include <stdio.h>
#include <time.h>

#include <chrono>
#include <thread>

namespace nfsup {

namespace {
TestClock g_test_clock;
}

void set_test_clock(const TestClock& c) { g_test_clock = c; }

void sleep_ms(int64_t ms) {
  if (g_test_clock.sleep_ms) {
    g_test_clock.sleep_ms(g_test_clock.ctx, ms);
    return;
  }
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

int64_t boot_ms() {
  if (g_test_clock.now_ms) return g_test_clock.now_ms(g_test_clock.ctx);
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }

std::string utc_now_iso() {
  time_t t = time(nullptr);
  tm tmv{};
  gmtime_r(&t, &tmv);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  return buf;
}

std::string utc_now_iso_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tmv{};
  gmtime_r(&ts.tv_sec, &tmv);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tmv);
  snprintf(buf + n, sizeof buf - n, ".%03ldZ", static_cast<long>(ts.tv_nsec / 1000000));
  return buf;
}

}  // namespace nfsup
