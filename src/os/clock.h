// nfsup os: time. Monotonic boot time for every decision, wall time only for humans.
//
// Two seams: the Clock interface, passed in where a component is written against it (a fake
// in test/unit/fake_os.h), and set_test_clock, through which the in-process fleet simulator
// (test/sim) drives code that calls the free functions.
#pragma once

#include <cstdint>
#include <string>

namespace nfsup {

/// Monotonic milliseconds that keep counting across processes on one boot (CLOCK_BOOTTIME).
/// Under a test clock (set_test_clock), the test's time instead.
int64_t boot_ms();
/// Sleeps ms milliseconds (boot clock); under a test clock, the test's sleep (which advances
/// its time and may run other simulated parties meanwhile).
void sleep_ms(int64_t ms);
/// The seam the in-process fleet simulator (test/sim) drives the master through: both
/// functions null = the real clock. Not thread-safe; set before anything runs.
struct TestClock {
  int64_t (*now_ms)(void* ctx) = nullptr;
  void (*sleep_ms)(void* ctx, int64_t ms) = nullptr;
  void* ctx = nullptr;
};
void set_test_clock(const TestClock& c);
/// Wall-clock seconds since the epoch (time(2)): for expiry dates and humans, never for timeouts.
int64_t unix_now();
/// Wall-clock UTC time as ISO 8601, for humans only (never for decisions).
std::string utc_now_iso();
/// The same with milliseconds, for log lines (a push's timeline across hosts is sub-second).
std::string utc_now_iso_ms();

/// The clock as an interface, for components that take their OS seams through a constructor.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() = 0;            ///< monotonic (boot_ms)
  virtual void sleep_ms(int64_t ms) = 0;
};

/// boot_ms() and sleep_ms() (so a test clock set with set_test_clock applies here too).
class RealClock : public Clock {
 public:
  int64_t now_ms() override { return boot_ms(); }
  void sleep_ms(int64_t ms) override { nfsup::sleep_ms(ms); }
};

}  // namespace nfsup
