// watchdog.h: ShareWorker never lets a hung share call block the caller past its deadline.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "fs.h"
#include "hash.h"
#include "watchdog.h"

using namespace nfsup;
using Steady = std::chrono::steady_clock;

namespace {
int64_t ms_since(Steady::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0).count();
}

// Waits (bounded) until the worker has finished its outstanding job.
bool wait_idle(ShareWorker& w, int64_t limit_ms = 2000) {
  auto t0 = Steady::now();
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
  auto t0 = Steady::now();
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
  t0 = Steady::now();
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

TEST_CASE("ShareWorker: an idle probe runs on its own every period and wakes the caller only when it finds something") {
  ShareWorker w;
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  std::atomic<int> calls{0};
  std::atomic<std::thread::id> ran_on{};
  auto t0 = Steady::now();
  // Finds nothing four times, then something.
  w.set_probe([&] { ran_on = std::this_thread::get_id(); return ++calls >= 5; }, 20, boot_ms() + 20, fd);
  pollfd pf{fd, POLLIN, 0};
  REQUIRE(::poll(&pf, 1, 3000) == 1);
  int64_t took = ms_since(t0);
  uint64_t n = 0;
  CHECK(::read(fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n));
  CHECK(n == 1);
  CHECK(calls.load() == 5);
  CHECK(took >= 90);    // five periods of 20 ms, the first one 20 ms after set_probe
  CHECK(took < 2000);
  CHECK(ran_on.load() != std::this_thread::get_id());
  // After waking us the probe stops until it is set again.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(calls.load() == 5);
  CHECK(::read(fd, &n, sizeof n) == -1);

  // Jobs still run while a probe is set; clear_probe stops it without waking anybody.
  w.set_probe([&] { ++calls; return false; }, 10, boot_ms(), fd);
  int value = 0;
  CHECK(w.run([&] { value = 3; }, 1000, nullptr));
  CHECK(value == 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  w.clear_probe();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  int after = calls.load();
  CHECK(after > 6);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  CHECK(calls.load() == after);
  CHECK(::read(fd, &n, sizeof n) == -1);
  ::close(fd);
}

TEST_CASE("ShareWorker: a probe stuck on a hung mount shows in busy_for_ms and makes jobs fail, then recovers") {
  ShareWorker w;
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> in_probe{false};
  w.set_probe([gate, &in_probe] { in_probe = true; gate.wait(); return false; }, 10, boot_ms(), fd);
  auto t0 = Steady::now();
  while (!in_probe && ms_since(t0) < 2000) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(in_probe.load());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(w.busy());
  CHECK(w.busy_for_ms() >= 140);
  // A job behind a probe stuck longer than the job's deadline fails at once.
  std::string why;
  t0 = Steady::now();
  CHECK_FALSE(w.run([] {}, 100, &why));
  CHECK(ms_since(t0) < 80);
  CHECK(starts_with(why, "an earlier share operation has been stuck for "));
  w.clear_probe();
  release.set_value();
  REQUIRE(wait_idle(w));
  CHECK(w.busy_for_ms() == 0);
  CHECK(w.run([] {}, 1000, nullptr));
  ::close(fd);
}

TEST_CASE("certainly_absent: only a readable directory without the name counts as absent") {
  char tmpl[] = "/tmp/nfsup-absent.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string d = tmpl;
  CHECK(certainly_absent(d.c_str(), "MARKER"));
  std::string m = d + "/MARKER";
  int fd = ::open(m.c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK_FALSE(certainly_absent(d.c_str(), "MARKER"));  // present
  ::unlink(m.c_str());
  REQUIRE(::symlink("/etc/hostname", m.c_str()) == 0);
  CHECK_FALSE(certainly_absent(d.c_str(), "MARKER"));  // a symlink: not absent, look properly
  ::unlink(m.c_str());
  CHECK_FALSE(certainly_absent((d + "/missing").c_str(), "MARKER"));  // no directory: an error
  ::rmdir(d.c_str());
}

TEST_CASE("ShareWorker: with a stall limit, a long job that keeps reading runs past it; one that stops is given up early") {
  ShareWorker w;
  std::string why;
  // Moves g_read_progress every 20 ms for 400 ms: four times the stall limit, within the deadline.
  auto t0 = Steady::now();
  bool ok = w.run(
      [] {
        for (int i = 0; i < 20; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          g_read_progress.fetch_add(1);
        }
      },
      3000, &why, 100);
  CHECK(ok);
  CHECK(ms_since(t0) >= 390);
  // Reads for 150 ms, then hangs: given up about 100 ms after its last progress, long before
  // the 3 s deadline, with a message that says so.
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  t0 = Steady::now();
  ok = w.run(
      [gate] {
        for (int i = 0; i < 5; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(30));
          g_read_progress.fetch_add(1);
        }
        gate.wait();
      },
      3000, &why, 100);
  int64_t took = ms_since(t0);
  CHECK_FALSE(ok);
  CHECK(took >= 240);   // 150 ms of reading + 100 ms without
  CHECK(took < 1500);   // not the 3 s deadline
  CHECK(why.find("no progress for 100ms") != std::string::npos);
  release.set_value();
  CHECK(wait_idle(w));
  // Moving forever: the overall deadline still holds.
  std::atomic<bool> stop{false};
  t0 = Steady::now();
  ok = w.run(
      [&stop] {
        while (!stop) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          g_read_progress.fetch_add(1);
        }
      },
      300, &why, 100);
  took = ms_since(t0);
  stop = true;
  CHECK_FALSE(ok);
  CHECK(took >= 290);
  CHECK(why.find("did not answer within 300ms") != std::string::npos);
  CHECK(wait_idle(w));
}
