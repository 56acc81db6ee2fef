// reconfig.h: the local part (apply_reconfig) against a real temp directory.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "helpers.h"
#include "process.h"
#include "reconfig.h"

using namespace nfsup;
using nfsup::test::file_exists;
using nfsup::test::slurp;
using nfsup::test::spit;
using nfsup::test::TempDir;

namespace {

const std::string kOld = "port=1\nname=web\n";

struct Fixture {
  TempDir dir;
  WatchdogConfig cfg;
  std::string conf;

  Fixture() {
    conf = dir / "agent.conf";
    spit(conf, kOld, 0640);
    cfg.host = "web-01";
    cfg.state_dir = dir / "state";
    cfg.agent.config = conf;
    cfg.agent.reconfig_timeout_ms = 5000;
    // plan_reconfig creates state_dir (the verified script copy lives in state_dir/scripts),
    // and the script runs with state_dir as its working directory.
    std::filesystem::create_directory(cfg.state_dir);
  }

  std::string script(const std::string& body) {
    std::string p = dir / "reconfig.sh";
    spit(p, "#!/bin/sh\n" + body, 0755);
    return p;
  }

  ReconfigPlan plan(const std::string& script_path) {
    ReconfigPlan p;
    p.kind = ReconfigPlan::Script;
    p.from = "1.0";
    p.to = "2.0";
    p.local_script = script_path;
    return p;
  }

  ino_t ino() const {
    struct stat st {};
    ::stat(conf.c_str(), &st);
    return st.st_ino;
  }
  std::pair<uid_t, gid_t> owner() const {
    struct stat st {};
    ::stat(conf.c_str(), &st);
    return {st.st_uid, st.st_gid};
  }
  // As root, give the config a foreign owner so keeping it is observable.
  bool foreign_owner() {
    if (::geteuid() != 0) return false;
    return ::chown(conf.c_str(), 12345, 23456) == 0;
  }
  mode_t mode() const {
    struct stat st {};
    ::stat(conf.c_str(), &st);
    return st.st_mode & 07777;
  }
  // Files beside the config other than the ones the test made (temp copies left behind).
  std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      std::string n = e.path().filename().string();
      if (n != "agent.conf" && n != "reconfig.sh" && n != "state" && n != "pid" && n != "backup-src") out.push_back(n);
    }
    return out;
  }
};

bool gone(pid_t pid) { return process_start_time(pid) == 0; }  // also true for a zombie

}  // namespace

TEST_CASE("reconfig: a Script plan rewrites the config atomically and backs up `from`") {
  Fixture f;
  std::string s = f.script(
      "set -e\n"
      "sed 's/^port=1$/port=2/' \"$NFSUP_CONFIG\" > \"$NFSUP_CONFIG.x\"\n"
      "mv \"$NFSUP_CONFIG.x\" \"$NFSUP_CONFIG\"\n"
      "echo \"from=$NFSUP_FROM_VERSION to=$NFSUP_TO_VERSION host=$NFSUP_HOST orig=$NFSUP_ORIGINAL_CONFIG\" "
      ">> \"$NFSUP_CONFIG\"\n"
      "echo \"cwd=$(pwd)\" >> \"$NFSUP_CONFIG\"\n");
  ino_t before = f.ino();
  bool owned = f.foreign_owner();
  auto r = apply_reconfig(f.cfg, f.plan(s), false);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  std::string want = "port=2\nname=web\nfrom=1.0 to=2.0 host=web-01 orig=" + f.conf + "\ncwd=" + f.cfg.state_dir + "\n";
  CHECK(slurp(f.conf) == want);
  CHECK(r->changed);
  CHECK(r->message == "1.0 -> 2.0: run release 2.0's reconfig script");
  CHECK(r->diff.find("-port=1") != std::string::npos);
  CHECK(r->diff.find("+port=2") != std::string::npos);
  CHECK(f.ino() != before);   // replaced by rename, never rewritten in place
  CHECK(f.mode() == 0640);    // keeps the config's mode although the script replaced the copy (mv)
  if (owned) CHECK(f.owner() == std::make_pair(uid_t{12345}, gid_t{23456}));
  std::string backup = backup_path(f.cfg, "1.0");
  CHECK(backup == f.cfg.state_dir + "/backups/agent.conf@1.0");
  CHECK(slurp(backup) == kOld);
  struct stat bst {};
  REQUIRE(::stat(backup.c_str(), &bst) == 0);
  CHECK((bst.st_mode & 07777) == 0600);
  CHECK(f.leftovers().empty());
}

TEST_CASE("reconfig: a failing script leaves the config byte-identical and reports the exit code") {
  Fixture f;
  std::string s = f.script("echo 'half written' > \"$NFSUP_CONFIG\"\necho 'cannot parse agent.conf' >&2\nexit 1\n");
  ino_t before = f.ino();
  auto r = apply_reconfig(f.cfg, f.plan(s), false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Failed);
  CHECK(r.error().msg ==
        "reconfig script of 2.0 failed (exit code 1): cannot parse agent.conf; " + f.conf + " left unchanged");
  CHECK(slurp(f.conf) == kOld);
  CHECK(f.ino() == before);
  CHECK(f.mode() == 0640);
  CHECK_FALSE(file_exists(backup_path(f.cfg, "1.0")));
  CHECK(f.leftovers().empty());

  s = f.script("exit 3\n");
  r = apply_reconfig(f.cfg, f.plan(s), false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == "reconfig script of 2.0 failed (exit code 3); " + f.conf + " left unchanged");

  s = f.script("kill -TERM $$\n");
  r = apply_reconfig(f.cfg, f.plan(s), false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == "reconfig script of 2.0 failed (killed by SIGTERM); " + f.conf + " left unchanged");

  s = f.script("rm \"$NFSUP_CONFIG\"\n");
  r = apply_reconfig(f.cfg, f.plan(s), false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().msg == f.conf + ": the script removed the configuration copy");
  CHECK(slurp(f.conf) == kOld);
  CHECK(f.leftovers().empty());
}

TEST_CASE("reconfig: a script running past reconfig_timeout is killed and reported as timed out") {
  Fixture f;
  f.cfg.agent.reconfig_timeout_ms = 300;
  std::string pidfile = f.dir / "pid";
  std::string s = f.script("echo changed > \"$NFSUP_CONFIG\"\nsleep 30 &\necho $! > " + pidfile + "\nwait\n");
  auto t0 = std::chrono::steady_clock::now();
  auto r = apply_reconfig(f.cfg, f.plan(s), false);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Failed);
  CHECK(r.error().msg == "reconfig script of 2.0 failed (timed out after 300ms); " + f.conf + " left unchanged");
  CHECK(took >= 290);  // boot_ms() has millisecond granularity
  CHECK(took < 3000);
  CHECK(slurp(f.conf) == kOld);
  CHECK(f.leftovers().empty());
  // The script's own child (same process group) was killed too.
  auto pid_text = slurp(pidfile);
  REQUIRE(pid_text.has_value());
  pid_t sleeper = static_cast<pid_t>(std::stol(*pid_text));
  for (int i = 0; i < 100 && !gone(sleeper); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(gone(sleeper));
}

TEST_CASE("reconfig: dry_run returns a unified diff and changes nothing") {
  Fixture f;
  std::string s = f.script("sed 's/^port=1$/port=2/' \"$NFSUP_CONFIG\" > \"$NFSUP_CONFIG.x\" && "
                           "cat \"$NFSUP_CONFIG.x\" > \"$NFSUP_CONFIG\" && rm \"$NFSUP_CONFIG.x\"\n");
  ino_t before = f.ino();
  auto r = apply_reconfig(f.cfg, f.plan(s), true);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  CHECK(r->changed);
  CHECK(r->message == "1.0 -> 2.0: run release 2.0's reconfig script");
  CHECK(r->diff == "--- " + f.conf + " (now)\n+++ " + f.conf + " (after)\n@@ -1,2 +1,2 @@\n-port=1\n+port=2\n name=web\n");
  CHECK(slurp(f.conf) == kOld);
  CHECK(f.ino() == before);
  CHECK_FALSE(file_exists(backup_path(f.cfg, "1.0")));
  CHECK(f.leftovers().empty());

  // A script that changes nothing: no diff, and the message says so.
  s = f.script("true\n");
  r = apply_reconfig(f.cfg, f.plan(s), true);
  REQUIRE(r.ok());
  CHECK_FALSE(r->changed);
  CHECK(r->diff.empty());
  CHECK(r->message == "1.0 -> 2.0: run release 2.0's reconfig script (no change)");
}

TEST_CASE("reconfig: a Restore plan puts the backup back and keeps the current config as `from`'s backup") {
  Fixture f;
  const std::string saved = "port=0\nname=web\nlegacy=yes\n";
  std::string src = f.dir / "backup-src";
  spit(src, saved, 0600);
  ReconfigPlan p;
  p.kind = ReconfigPlan::Restore;
  p.from = "2.0";
  p.to = "1.0";
  p.backup_source = src;
  ino_t before = f.ino();
  bool owned = f.foreign_owner();
  auto r = apply_reconfig(f.cfg, p, false);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  CHECK(slurp(f.conf) == saved);
  CHECK(f.ino() != before);
  CHECK(f.mode() == 0640);  // the config's mode, not the backup's
  if (owned) CHECK(f.owner() == std::make_pair(uid_t{12345}, gid_t{23456}));
  CHECK(r->changed);
  CHECK(r->message == "2.0 -> 1.0: restore the configuration backed up under 1.0");
  CHECK(slurp(backup_path(f.cfg, "2.0")) == kOld);
  CHECK(f.leftovers().empty());

  // A missing backup fails without touching the config.
  p.backup_source = f.dir / "no-such-backup";
  std::string now = *slurp(f.conf);
  r = apply_reconfig(f.cfg, p, false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Failed);
  CHECK(r.error().msg == p.backup_source + ": cannot read the backup");
  CHECK(slurp(f.conf) == now);
  CHECK(f.leftovers().empty());
}

TEST_CASE("reconfig: a Nothing plan keeps the config and still backs it up for `from`") {
  Fixture f;
  ReconfigPlan p;
  p.from = "1.0";
  p.to = "2.0";
  auto r = apply_reconfig(f.cfg, p, false);
  REQUIRE(r.ok());
  CHECK_FALSE(r->changed);
  CHECK(r->message == "1.0 -> 2.0: keep the configuration as it is");
  CHECK(slurp(f.conf) == kOld);
  CHECK(slurp(backup_path(f.cfg, "1.0")) == kOld);

  // Dry run writes nothing.
  Fixture g;
  auto d = apply_reconfig(g.cfg, p, true);
  REQUIRE(d.ok());
  CHECK_FALSE(file_exists(g.cfg.state_dir + "/backups"));
}

TEST_CASE("reconfig: a missing config is an error, not an empty file") {
  Fixture f;
  std::filesystem::remove(f.conf);
  auto r = apply_reconfig(f.cfg, f.plan(f.script("true\n")), false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Exit::Failed);
  CHECK(r.error().msg == f.conf + ": No such file or directory");
  CHECK_FALSE(file_exists(f.conf));
}

TEST_CASE("write_local_exchange: replaces by swapping with a spare, no new inode after the first write") {
  TempDir dir;
  std::string p = dir / "state", spare = dir / ".state.spare";
  auto ino = [](const std::string& f) {
    struct stat st{};
    REQUIRE(::stat(f.c_str(), &st) == 0);
    return st.st_ino;
  };
  // First write: no target to swap with; the spare is renamed into place.
  REQUIRE(write_local_exchange(p, "one\n", 0644));
  CHECK(slurp(p) == "one\n");
  CHECK_FALSE(file_exists(spare));
  auto i1 = ino(p);
  // Second: the new content goes into a fresh spare, the names are swapped; the old file is
  // now the spare.
  REQUIRE(write_local_exchange(p, "two, longer\n", 0644));
  CHECK(slurp(p) == "two, longer\n");
  CHECK(slurp(spare) == "one\n");
  CHECK(ino(spare) == i1);
  auto i2 = ino(p);
  // From then on the two inodes trade places; a shorter content leaves no tail behind.
  REQUIRE(write_local_exchange(p, "3\n", 0600));
  CHECK(slurp(p) == "3\n");
  CHECK(ino(p) == i1);
  CHECK(ino(spare) == i2);
  struct stat st{};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(write_local_exchange(p, "four\n", 0644));
  CHECK(slurp(p) == "four\n");
  CHECK(ino(p) == i2);
}

TEST_CASE("write_local_exchange: a spare that is a link or a symlink is never written through") {
  TempDir dir;
  std::string p = dir / "state", spare = dir / ".state.spare", other = dir / "other";
  spit(other, "precious\n", 0644);
  REQUIRE(write_local_exchange(p, "one\n", 0644));
  // A hard link to another file as the spare: left alone, a plain temp + rename is used.
  REQUIRE(::link(other.c_str(), spare.c_str()) == 0);
  REQUIRE(write_local_exchange(p, "two\n", 0644));
  CHECK(slurp(p) == "two\n");
  CHECK(slurp(other) == "precious\n");
  REQUIRE(::unlink(spare.c_str()) == 0);
  // A symlink as the spare: O_NOFOLLOW refuses it; the same fallback.
  REQUIRE(::symlink(other.c_str(), spare.c_str()) == 0);
  REQUIRE(write_local_exchange(p, "three\n", 0644));
  CHECK(slurp(p) == "three\n");
  CHECK(slurp(other) == "precious\n");
}
