// nfsup host: how the watchdog starts, stops and watches an agent (internal to the watchdog).
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
#include "os/spawner.h"
#include "nfsup_version.h"
#include "reconfig.h"
#include "stage.h"
#include "trust.h"
#include "local_state.h"

namespace nfsup {
namespace wd {

// ---------------------------------------------------------------- agent control

class AgentCtl {
 public:
  virtual ~AgentCtl() = default;
  virtual bool up(LocalState& st) = 0;
  virtual Status start(LocalState& st, const SpawnSpec& spec) = 0;
  virtual void stop(LocalState& st, const AgentConfig& a) = 0;
  /// Daemon only: the child exited on its own (exit status), or nullopt.
  virtual std::optional<int> reap(LocalState&) { return std::nullopt; }
  /// Sends a signal to the agent (drain, acting-version change). False if it has no pid.
  virtual bool signal(LocalState& st, int sig) {
    if (st.agent_pid <= 0) return false;
    return ::kill(static_cast<pid_t>(st.agent_pid), sig) == 0;
  }
  /// Waits up to timeout_ms for the agent to exit by itself; true if it did.
  virtual bool wait_exit(LocalState& st, int64_t timeout_ms) {
    int64_t until = boot_ms() + timeout_ms;
    while (true) {
      if (reap(st) || !up(st)) return true;
      int64_t left = until - boot_ms();
      if (left <= 0) return false;
      if (st.agent_pid > 0) wait_for_exit(static_cast<pid_t>(st.agent_pid), std::min<int64_t>(left, 100));
      else std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 50)));
    }
  }
  /// Sends the stop signal now, so that the agent winds down while the watchdog reports
  /// `stopping`; stop() then only waits. Agents stopped by a command do nothing here.
  virtual void begin_stop(LocalState& st, const AgentConfig& a) {
    if (st.agent_pid <= 0 || !up(st)) return;
    signal_process(static_cast<pid_t>(st.agent_pid), a.stop_signal);
    stop_sent_ = true;
  }

 protected:
  bool stop_sent_ = false;
};

class ChildAgent : public AgentCtl {
 public:
  bool up(LocalState& st) override { return st.agent_pid > 0; }
  Status start(LocalState& st, const SpawnSpec& spec) override {
    auto pid = spawn(spec);
    if (!pid) return pid.error();
    st.agent_pid = *pid;
    st.agent_start = process_start_time(*pid);
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    if (st.agent_pid > 0)
      stop_process(static_cast<pid_t>(st.agent_pid), a.stop_signal, a.stop_timeout_ms, true, std::exchange(stop_sent_, false));
    stop_sent_ = false;
    st.agent_pid = 0;
    st.agent_start = 0;
  }
  std::optional<int> reap(LocalState& st) override {
    if (st.agent_pid <= 0) return std::nullopt;
    int status = 0;
    pid_t w = waitpid(static_cast<pid_t>(st.agent_pid), &status, WNOHANG);
    if (w == st.agent_pid || (w < 0 && errno == ECHILD)) {
      // Take the rest of its process group down too.
      kill(-static_cast<pid_t>(st.agent_pid), SIGKILL);
      st.agent_pid = 0;
      st.agent_start = 0;
      return status;
    }
    return std::nullopt;
  }
};

class DetachedAgent : public AgentCtl {
 public:
  bool up(LocalState& st) override {
    return st.agent_pid > 0 && process_alive(static_cast<pid_t>(st.agent_pid), st.agent_start);
  }
  Status start(LocalState& st, const SpawnSpec& spec0) override {
    SpawnSpec spec = spec0;
    spec.detach = true;
    auto pid = spawn(spec);
    if (!pid) return pid.error();
    st.agent_pid = *pid;
    for (int i = 0; i < 50 && (st.agent_start = process_start_time(*pid)) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    if (up(st))
      stop_process(static_cast<pid_t>(st.agent_pid), a.stop_signal, a.stop_timeout_ms, false, std::exchange(stop_sent_, false));
    stop_sent_ = false;
    st.agent_pid = 0;
    st.agent_start = 0;
  }
};

class CommandAgent : public AgentCtl {
 public:
  void begin_stop(LocalState&, const AgentConfig&) override {}  // its stop_command does the stopping
  explicit CommandAgent(const AgentConfig& a) : a_(a) {}
  bool up(LocalState& st) override {
    if (a_.status_command.empty()) return st.agent_wanted;
    SpawnSpec s;
    s.argv = a_.status_command;
    auto r = run_with_timeout(s, 30000);
    return r && !r->timed_out && r->exit_code == 0;
  }
  Status start(LocalState& st, const SpawnSpec& spec) override {
    SpawnSpec s;
    s.argv = a_.start_command;
    s.env = spec.env;
    auto r = run_with_timeout(s, std::max<int64_t>(a_.stop_timeout_ms, 60000));
    if (!r) return r.error();
    if (r->timed_out || r->exit_code != 0)
      return err(Exit::Failed, fmt::format("start_command {} failed ({})", a_.start_command[0],
                                           r->timed_out ? "timed out" : fmt::format("exit {}", r->exit_code)));
    st.agent_wanted = true;
    return ok_status();
  }
  void stop(LocalState& st, const AgentConfig& a) override {
    SpawnSpec s;
    s.argv = a.stop_command;
    (void)run_with_timeout(s, a.stop_timeout_ms + 5000);
    st.agent_wanted = false;
  }

 private:
  AgentConfig a_;
};

}  // namespace wd
}  // namespace nfsup
