// spawner.h: children started from a process that never held the caller's later files.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fmt/format.h>

#include "process.h"
#include "os/spawner.h"

using namespace nfsup;

namespace {

SpawnSpec sh(const std::string& script) {
  SpawnSpec s;
  s.argv = {"/bin/sh", "-c", script};
  return s;
}

// Whether a child started now sees file descriptor `fd` (opened without O_CLOEXEC).
std::string child_sees(int fd) {
  auto r = run_with_timeout(sh(fmt::format("if [ -e /proc/self/fd/{} ]; then echo inherited; else echo clean; fi", fd)), 5000);
  REQUIRE(r);
  CHECK(r->exit_code == 0);
  return r->output;
}

}  // namespace

TEST_CASE("spawner: a file the caller opened after start_spawner is not in any child's file table") {
  REQUIRE(start_spawner());
  // Stands for a file of the share held open by the share thread when the agent starts: a
  // copy of it in the child would be closed (flushed through the server) by the child's exec.
  int fd = ::open("/dev/null", O_RDONLY);  // (no O_CLOEXEC: visible in a child that inherits it)
  REQUIRE(fd >= 0);
  CHECK(child_sees(fd) == "clean\n");
  SpawnSpec s = sh("exit 7");
  auto pid = spawn(s);
  REQUIRE(pid);
  int st = 0;
  REQUIRE(::waitpid(*pid, &st, 0) == *pid);  // still the caller's own child
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 7);
  stop_spawner();
  // Without the spawner, the child inherits it (what the test above tells apart).
  CHECK(child_sees(fd) == "inherited\n");
  ::close(fd);
}

TEST_CASE("spawner: exec errors, output, deadlines and detached children as without it") {
  REQUIRE(start_spawner());
  SpawnSpec bad;
  bad.argv = {"/nonexistent/agent"};
  auto r = spawn(bad);
  REQUIRE_FALSE(r);
  CHECK(r.error().msg.find("exec(/nonexistent/agent)") != std::string::npos);
  auto out = run_with_timeout(sh("echo out; echo err >&2; exit 3"), 5000);
  REQUIRE(out);
  CHECK(out->exit_code == 3);
  CHECK(out->output == "out\nerr\n");
  auto slow = run_with_timeout(sh("sleep 30"), 200);
  REQUIRE(slow);
  CHECK(slow->timed_out);
  auto missing = run_with_timeout(bad, 5000);
  REQUIRE(missing);
  CHECK(missing->exit_code == 127);
  SpawnSpec d = sh("sleep 30");
  d.detach = true;
  auto dp = spawn(d);
  REQUIRE(dp);
  CHECK(::kill(*dp, 0) == 0);
  CHECK(::waitpid(*dp, nullptr, WNOHANG) < 0);  // not our child: adopted by init
  ::kill(*dp, SIGKILL);
  stop_spawner();
}
