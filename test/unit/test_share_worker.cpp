// watchdog.h: ShareWorker never lets a hung share call block the caller past its deadline.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "watchdog.h"

using namespace nfsup;
using Clock = std::chrono::steady_clock;

namespace {
int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// Waits (bounded) until the worker has finished its outstanding job.
bool wait_idle(ShareWorker& w, int64_t limit_ms = 2000) {
  auto t0 = Clock::now();
  while (w.busy()) {
    if (ms_since(t0) > limit_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}
}  // namespace

TEST_CASE("ShareWorker: a quick job runs on the worker and returns true") {
  ShareWorker w;
  int value = 0;
  std::thread::id ran_on;
  std::string why = "untouched";
  CHECK(w.run([&] { value = 42; ran_on = std::this_thread::get_id(); }, 1000, &why));
  CHECK(value == 42);
  CHECK(ran_on != std::this_thread::get_id());
  CHECK(why == "untouched");
  CHECK_FALSE(w.busy());
  // Many in a row reuse the same worker.
  for (int i = 0; i < 100; ++i) CHECK(w.run([&] { ++value; }, 1000, nullptr));
  CHECK(value == 142);
}

TEST_CASE("ShareWorker: a hung job times out, later calls fail fast as stuck, and it recovers when released") {
  ShareWorker w;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> started{false}, finished{false};

  std::string why;
  auto t0 = Clock::now();
  bool ok = w.run(
      [gate, &started, &finished] {
        started = true;
        gate.wait();  // a hung NFS call
        finished = true;
      },
      200, &why);
  int64_t took = ms_since(t0);
  CHECK_FALSE(ok);
  CHECK(started.load());
  CHECK_FALSE(finished.load());
  CHECK(took >= 190);
  CHECK(took < 1500);
  CHECK(why == "the share did not answer within 200ms");
  CHECK(w.busy());

  // While the first call is stuck, a new one fails at once and its job never runs.
  std::atomic<bool> second_ran{false};
  why.clear();
  t0 = Clock::now();
  CHECK_FALSE(w.run([&] { second_ran = true; }, 5000, &why));
  CHECK(ms_since(t0) < 100);
  CHECK(starts_with(why, "an earlier share operation has been stuck for "));
  CHECK(why.find("stuck") != std::string::npos);
  CHECK_FALSE(second_ran.load());

  // The mount answers again: the stuck call completes, and the worker takes new work.
  release.set_value();
  REQUIRE(wait_idle(w));
  CHECK(finished.load());
  int value = 0;
  why.clear();
  CHECK(w.run([&] { value = 7; }, 1000, &why));
  CHECK(value == 7);
  CHECK(why.empty());
  CHECK_FALSE(second_ran.load());  // the refused job was dropped, not queued
}
