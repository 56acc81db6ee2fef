// process.h: running with a deadline and stopping processes.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "helpers.h"
#include "process.h"

using namespace nfsup;
using Steady = std::chrono::steady_clock;

namespace {

int64_t ms_since(Steady::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0).count();
}

SpawnSpec sh(const std::string& script) {
  SpawnSpec s;
  s.argv = {"/bin/sh", "-c", script};
  return s;
}

bool gone(pid_t pid) { return process_start_time(pid) == 0; }  // no such pid, or a zombie

bool wait_gone(pid_t pid, int64_t limit_ms = 2000) {
  auto t0 = Steady::now();
  while (!gone(pid)) {
    if (ms_since(t0) > limit_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

bool wait_file(const std::string& path, int64_t limit_ms = 3000) {
  auto t0 = Steady::now();
  while (!nfsup::test::file_exists(path)) {
    if (ms_since(t0) > limit_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

TEST_CASE("process: run_with_timeout calls keep_going while it waits, and stops when told") {
  // A waiter that has its own work (a master renewing its lease while a hook runs).
  int calls = 0;
  auto t0 = Steady::now();
  auto r = run_with_timeout(sh("sleep 0.5; echo done"), 5000, [&] { return ++calls > 0; });
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(r->output == "done\n");
  CHECK(calls >= 3);  // about every 100 ms
  CHECK_FALSE(r->cancelled);
  // Told to stop: the process group is killed at once, well before its own end.
  calls = 0;
  t0 = Steady::now();
  r = run_with_timeout(sh("sleep 30 & sleep 30; echo never"), 10000, [&] { return ++calls < 3; });
  REQUIRE(r.ok());
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  CHECK(r->exit_code == -1);
  CHECK(ms_since(t0) < 2000);
}

TEST_CASE("process: run_with_timeout captures output and exit codes") {
  auto r = run_with_timeout(sh("echo out; echo err >&2; exit 3"), 5000);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK(r->signal == 0);
  CHECK_FALSE(r->timed_out);
  CHECK(r->output == "out\nerr\n");

  r = run_with_timeout(sh("printf 'no newline'"), 5000);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(r->output == "no newline");

  // Environment additions and the working directory are applied.
  nfsup::test::TempDir dir;
  SpawnSpec s = sh("echo \"$NFSUP_X:$(pwd)\"");
  s.env = {{"NFSUP_X", "hello world"}};
  s.cwd = dir.path();
  r = run_with_timeout(s, 5000);
  REQUIRE(r.ok());
  CHECK(r->output == "hello world:" + dir.path() + "\n");

  // stdin is /dev/null, so a reader does not hang.
  r = run_with_timeout(sh("cat; echo done"), 5000);
  REQUIRE(r.ok());
  CHECK(r->output == "done\n");

  // Killed by a signal: exit_code -1, the signal reported.
  r = run_with_timeout(sh("kill -USR1 $$"), 5000);
  REQUIRE(r.ok());
  CHECK(r->exit_code == -1);
  CHECK(r->signal == SIGUSR1);
  CHECK_FALSE(r->timed_out);

  // A program that does not exist: exit code 127 with a message.
  SpawnSpec missing;
  missing.argv = {"/nonexistent/nfsup-test-binary"};
  r = run_with_timeout(missing, 5000);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 127);
  CHECK(r->output == "nfsup: exec(/nonexistent/nfsup-test-binary): No such file or directory\n");

  // Output is capped at 64 KiB (plus at most one read's worth), and the child still finishes.
  r = run_with_timeout(sh("head -c 300000 /dev/zero | tr '\\0' x; exit 0"), 10000);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(r->output.size() >= 65536);
  CHECK(r->output.size() < 65536 + 4096);
}

TEST_CASE("process: run_with_timeout kills a sleeping child (and its group) on timeout") {
  auto t0 = Steady::now();
  auto r = run_with_timeout(sh("echo $$; sleep 30 & echo $!; wait"), 300);
  int64_t took = ms_since(t0);
  REQUIRE(r.ok());
  CHECK(r->timed_out);
  CHECK(r->exit_code == -1);
  CHECK(took >= 290);  // boot_ms() has millisecond granularity
  CHECK(took < 3000);
  auto lines = split(r->output, '\n');
  REQUIRE(lines.size() >= 2);
  pid_t shell = static_cast<pid_t>(std::stol(lines[0]));
  pid_t sleeper = static_cast<pid_t>(std::stol(lines[1]));
  CHECK(shell > 0);
  CHECK(sleeper > 0);
  CHECK(gone(shell));  // reaped by run_with_timeout
  CHECK(::kill(shell, 0) == -1);
  CHECK(wait_gone(sleeper));  // the grandchild got SIGKILL with the group
}

TEST_CASE("process: run_with_timeout with an empty command is a usage error") {
  SpawnSpec s;
  auto p = spawn(s);
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().code == Exit::Usage);
  CHECK(p.error().msg == "empty command");
}

TEST_CASE("process: stop_process stops a well-behaved child with the first signal") {
  auto pid = spawn(sh("exec sleep 30"));
  REQUIRE(pid.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t0 = Steady::now();
  CHECK(stop_process(*pid, SIGTERM, 3000, true));
  CHECK(ms_since(t0) < 1000);
  CHECK(gone(*pid));
  CHECK(::waitpid(*pid, nullptr, WNOHANG) == -1);  // already reaped
}

TEST_CASE("process: stop_process escalates to SIGKILL for a child that ignores SIGTERM") {
  nfsup::test::TempDir dir;
  std::string ready = dir / "ready";
  auto pid = spawn(sh("trap '' TERM; touch " + ready + "; sleep 30"));
  REQUIRE(pid.ok());
  REQUIRE(wait_file(ready));  // the trap is in place
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t0 = Steady::now();
  bool clean = stop_process(*pid, SIGTERM, 300, true);
  int64_t took = ms_since(t0);
  CHECK_FALSE(clean);  // it did not exit before the SIGKILL
  CHECK(took >= 290);
  CHECK(took < 3000);
  CHECK(gone(*pid));
  CHECK(::kill(*pid, 0) == -1);
}

TEST_CASE("process: stop_process on a process that is not our child polls until it is gone") {
  nfsup::test::TempDir dir;
  std::string ready = dir / "ready";
  SpawnSpec s = sh("trap '' TERM; touch " + ready + "; sleep 30");
  s.detach = true;
  auto pid = spawn(s);
  REQUIRE(pid.ok());
  REQUIRE(wait_file(ready));
  uint64_t start = process_start_time(*pid);
  CHECK(start != 0);
  CHECK(process_alive(*pid, start));
  CHECK_FALSE(process_alive(*pid, start + 1));  // same pid, other process
  CHECK_FALSE(stop_process(*pid, SIGTERM, 200, false));
  CHECK(wait_gone(*pid));
  CHECK_FALSE(process_alive(*pid, start));
}
