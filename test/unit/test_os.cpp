// src/os: the one writer's flags, the state_dir lock, and the fakes of Clock and Procs.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include "fake_os.h"
#include "helpers.h"
#include "os/files.h"
#include "os/lock.h"

using namespace nfsup;
using nfsup::test::FakeClock;
using nfsup::test::FakeProcs;
using nfsup::test::TempDir;

namespace {
ino_t inode(const std::string& p) {
  struct stat st{};
  return ::lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}
size_t entries(const std::string& dir) {
  RealFs fs("t");
  auto l = fs.list_dir(dir);
  return l ? l->size() : 0;
}
}  // namespace

TEST_CASE("write_file: kWriteNoReplace publishes once and never replaces") {
  TempDir d;
  RealFs fs("t");
  auto a = fs.write_file(d / "f", "one", kWriteNoReplace | kWriteSync);
  REQUIRE(a);
  CHECK(*a);
  auto b = fs.write_file(d / "f", "two", kWriteNoReplace);
  REQUIRE(b);
  CHECK_FALSE(*b);
  CHECK(test::slurp(d / "f") == "one");
  CHECK(entries(d.path()) == 1);  // no temp left behind
}

TEST_CASE("write_file: plain, kWriteSync and kWriteSyncDir replace atomically with the mode asked") {
  TempDir d;
  RealFs fs("t");
  for (unsigned flags : {0u, unsigned(kWriteSync), unsigned(kWriteSync | kWriteSyncDir)}) {
    std::string text = "v" + std::to_string(flags);
    auto r = fs.write_file(d / "f", text, flags, 0600);
    REQUIRE(r);
    CHECK(*r);
    CHECK(test::slurp(d / "f") == text);
  }
  struct stat st{};
  REQUIRE(::stat((d / "f").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(entries(d.path()) == 1);
}

TEST_CASE("write_file: kWriteExchange swaps a spare in and keeps the previous content in it") {
  TempDir d;
  RealFs fs("t");
  REQUIRE(fs.write_file(d / "state", "first", kWriteSync | kWriteExchange));  // no target yet: rename
  CHECK(test::slurp(d / "state") == "first");
  REQUIRE(fs.write_file(d / "state", "second", kWriteSync | kWriteExchange));  // spare made, swapped
  ino_t before = inode(d / "state");
  REQUIRE(fs.write_file(d / "state", "third!", kWriteSync | kWriteExchange));
  CHECK(test::slurp(d / "state") == "third!");
  CHECK(test::slurp(d / ".state.spare") == "second");
  // Two inodes take turns: the new content lives in the inode that was the spare.
  CHECK(inode(d / ".state.spare") == before);
  CHECK(entries(d.path()) == 2);
}

TEST_CASE("write_file: kWriteExchange never writes through a spare that is a symlink") {
  TempDir d;
  RealFs fs("t");
  test::spit(d / "victim", "keep");
  REQUIRE(::symlink((d / "victim").c_str(), (d / ".state.spare").c_str()) == 0);
  REQUIRE(fs.write_file(d / "state", "new", kWriteSync | kWriteExchange));
  CHECK(test::slurp(d / "state") == "new");
  CHECK(test::slurp(d / "victim") == "keep");
}

TEST_CASE("write_local_exchange and write_local_derived write local files through the same writer") {
  TempDir d;
  REQUIRE(write_local_exchange(d / "a", "x", 0644));
  REQUIRE(write_local_derived(d / "b", "y", 0644));
  CHECK(read_local(d / "a")->value() == "x");
  CHECK(read_local(d / "b")->value() == "y");
  CHECK_FALSE(read_local(d / "none")->has_value());
}

TEST_CASE("LockFile: one holder at a time, its note readable by the others, released on close") {
  TempDir d;
  std::string path = d / "state/lock";  // the directory is made on first use
  auto a = LockFile::open(path);
  REQUIRE(a);
  REQUIRE(a->try_lock());
  a->note_holder("daemon");
  {
    auto b = LockFile::open(path);
    REQUIRE(b);
    CHECK_FALSE(b->try_lock());  // flock is per open file: a second open in one process is refused too
    CHECK(b->holder() == "daemon " + std::to_string(::getpid()));
  }
  a->clear_note();
  CHECK(a->holder().empty());
  { LockFile gone = std::move(*a); }  // closing the file releases the lock
  auto c = LockFile::open(path);
  REQUIRE(c);
  CHECK(c->try_lock());
}

TEST_CASE("LockFile: an unusable path is one clear error") {
  TempDir d;
  auto r = LockFile::open(d / "no/such/dir/lock");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Exit::Usage);
  CHECK(r.error().msg.find("open(" + d / "no/such/dir/lock" + ")") == 0);
}

TEST_CASE("FakeClock: still until slept on; install() drives boot_ms and sleep_ms") {
  FakeClock c(5000);
  CHECK(c.now_ms() == 5000);
  CHECK(c.now_ms() == 5000);
  int64_t seen = 0;
  c.on_sleep = [&](int64_t now) { seen = now; };
  {
    auto g = c.install();
    CHECK(boot_ms() == 5000);
    nfsup::sleep_ms(250);  // returns at once, the fake time moved
    CHECK(boot_ms() == 5250);
    CHECK(seen == 5250);
  }
  CHECK(boot_ms() != 5250);  // the real clock again
  CHECK(c.sleeps == std::vector<int64_t>{250});
  RealClock r;
  int64_t t0 = r.now_ms();
  r.sleep_ms(20);
  CHECK(r.now_ms() - t0 >= 20);
}

TEST_CASE("FakeProcs: spawns nothing, answers runs from a script, stops and fails on demand") {
  FakeProcs p;
  SpawnSpec agent;
  agent.argv = {"/opt/app/bin/agent"};
  auto pid = p.spawn(agent);
  REQUIRE(pid);
  uint64_t st = p.start_time(*pid);
  CHECK(p.alive(*pid, st));
  p.signal(*pid, SIGHUP);
  CHECK(p.stop(*pid, SIGTERM, 1000, true));
  CHECK_FALSE(p.alive(*pid, st));
  CHECK(p.procs[*pid].signals == std::vector<int>{SIGHUP, SIGTERM});

  auto stubborn = p.spawn(agent);
  p.ignores_signals.insert(*stubborn);
  CHECK_FALSE(p.stop(*stubborn, SIGTERM, 1000, true));  // had to be SIGKILLed

  SpawnSpec check;
  check.argv = {"healthcheck"};
  RunResult bad;
  bad.exit_code = 3;
  bad.output = "disk full\n";
  p.results["healthcheck"] = bad;
  auto r = p.run(check, 5000);
  REQUIRE(r);
  CHECK(r->exit_code == 3);
  CHECK(p.timeouts == std::vector<int64_t>{5000});
  auto cancelled = p.run(check, 5000, [] { return false; });
  REQUIRE(cancelled);
  CHECK(cancelled->cancelled);

  p.fail_spawn["missing"] = err(Exit::Failed, "exec(missing): No such file or directory");
  SpawnSpec m;
  m.argv = {"missing"};
  CHECK_FALSE(p.spawn(m));
  CHECK_FALSE(p.run(m, 10));
}

TEST_CASE("RealProcs runs real processes through the same interface") {
  RealProcs p;
  SpawnSpec s;
  s.argv = {"/bin/sh", "-c", "echo hi; exit 4"};
  auto r = p.run(s, 5000);
  REQUIRE(r);
  CHECK(r->exit_code == 4);
  CHECK(r->output == "hi\n");
}

TEST_CASE("pid_exists: this process yes, a reaped child no") {
  CHECK(pid_exists(::getpid()));
  SpawnSpec s;
  s.argv = {"/bin/true"};
  auto pid = spawn(s);
  REQUIRE(pid);
  stop_process(*pid, SIGTERM, 2000, true);  // reaps it
  CHECK_FALSE(pid_exists(*pid));
}

TEST_CASE("make_temp_file: a fresh 0600 file from the template") {
  TempDir d;
  std::string t = d / "hook.XXXXXX";
  int fd = -1;
  REQUIRE(make_temp_file(&t, &fd) == 0);
  CHECK(t != d / "hook.XXXXXX");
  CHECK(fd >= 0);
  CHECK(close_fd(fd) == 0);
  FileInfo st;
  REQUIRE(local_lstat(t, &st) == 0);
  CHECK(st.type == FileInfo::File);
  CHECK(st.mode == 0600);
}
