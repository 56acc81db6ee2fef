// Fakes of the src/os seams for unit tests: a clock that only moves when told, and a process
// runner that starts nothing. (The fake file system is fake_fs.h.)
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "os/clock.h"
#include "os/procs.h"

namespace nfsup::test {

/// Time stands still until sleep_ms() or advance() moves it. install() also routes the free
/// functions boot_ms()/sleep_ms() through it (set_test_clock) until the guard it returns ends.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1000000) : now_(start_ms) {}
  int64_t now_ms() override { return now_; }
  void sleep_ms(int64_t ms) override {
    sleeps.push_back(ms);
    if (ms > 0) now_ += ms;
    if (on_sleep) on_sleep(now_);
  }
  void advance(int64_t ms) { now_ += ms; }

  struct Installed {
    ~Installed() { set_test_clock({}); }
  };
  [[nodiscard]] Installed install() {
    set_test_clock({[](void* c) { return static_cast<FakeClock*>(c)->now_ms(); },
                    [](void* c, int64_t ms) { static_cast<FakeClock*>(c)->sleep_ms(ms); }, this});
    return {};
  }

  std::vector<int64_t> sleeps;                 ///< every sleep asked for, in order
  std::function<void(int64_t now)> on_sleep;   ///< runs after each sleep (another party's turn)

 private:
  int64_t now_;
};

/// Starts nothing: every spawn gets the next pid and is alive until stopped or exit() is
/// called; run() answers from `results` by argv[0] (exit 0 with no output if absent);
/// fail_spawn makes spawn/run of that argv[0] fail with an error.
class FakeProcs : public Procs {
 public:
  struct Proc {
    SpawnSpec spec;
    bool alive = true;
    std::vector<int> signals;  ///< every signal sent, in order
  };

  Result<pid_t> spawn(const SpawnSpec& spec) override {
    if (auto e = failure(spec)) return *e;
    pid_t pid = next_pid_++;
    procs[pid] = Proc{spec, true, {}};
    return pid;
  }
  Result<RunResult> run(const SpawnSpec& spec, int64_t timeout_ms,
                        const std::function<bool()>& keep_going = {}) override {
    if (auto e = failure(spec)) return *e;
    runs.push_back(spec);
    timeouts.push_back(timeout_ms);
    if (keep_going && !keep_going()) {
      RunResult r;
      r.cancelled = true;
      return r;
    }
    auto it = results.find(spec.argv.empty() ? "" : spec.argv[0]);
    if (it == results.end()) {
      RunResult r;
      r.exit_code = 0;
      return r;
    }
    return it->second;
  }
  bool stop(pid_t pid, int sig, int64_t, bool) override {
    auto it = procs.find(pid);
    if (it == procs.end()) return true;
    it->second.signals.push_back(sig);
    bool obeyed = !ignores_signals.count(pid);
    if (!obeyed) it->second.signals.push_back(9);  // SIGKILL after the timeout
    it->second.alive = false;
    return obeyed;
  }
  void signal(pid_t pid, int sig) override {
    if (auto it = procs.find(pid); it != procs.end()) it->second.signals.push_back(sig);
  }
  uint64_t start_time(pid_t pid) override {
    auto it = procs.find(pid);
    return it != procs.end() && it->second.alive ? static_cast<uint64_t>(pid) * 100 : 0;
  }
  bool alive(pid_t pid, uint64_t start) override { return start != 0 && start_time(pid) == start; }
  /// The process ends on its own (crash, exit).
  void exit(pid_t pid) { procs.at(pid).alive = false; }

  std::map<pid_t, Proc> procs;
  std::vector<SpawnSpec> runs;
  std::vector<int64_t> timeouts;
  std::map<std::string, RunResult> results;
  std::map<std::string, Error> fail_spawn;
  std::set<pid_t> ignores_signals;  ///< stop() must SIGKILL these

 private:
  std::optional<Error> failure(const SpawnSpec& spec) const {
    auto it = fail_spawn.find(spec.argv.empty() ? "" : spec.argv[0]);
    if (it == fail_spawn.end()) return std::nullopt;
    return it->second;
  }
  pid_t next_pid_ = 4000;
};

}  // namespace nfsup::test
