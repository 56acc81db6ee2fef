// nfsup os: starting, watching and stopping processes (never waits on the share).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "util.h"

namespace nfsup {

struct SpawnSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  ///< added to the inherited environment
  std::string cwd;                         ///< "" = keep
  std::string stdout_path;                 ///< "" = inherit; else appended to (local file)
  bool new_session = true;                 ///< setsid, so killpg reaches grandchildren
  bool detach = false;                     ///< double fork: not our child (cron mode)
};

/// Starts a process. Returns its pid (for detach, the grandchild's pid).
Result<pid_t> spawn(const SpawnSpec& spec);

struct RunResult {
  int exit_code = -1;      ///< -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;  ///< `keep_going` said stop: the process group got SIGKILL
  std::string output;      ///< stdout+stderr, at most 64 KiB
};

/// Runs to completion with a deadline; on timeout the whole process group gets SIGKILL.
/// `keep_going`, if set, is called about every 100 ms while the process runs (the caller's
/// chance to do its own work while it waits, such as renewing a lease); when it returns false
/// the process group gets SIGKILL and the result says `cancelled`.
Result<RunResult> run_with_timeout(const SpawnSpec& spec, int64_t timeout_ms,
                                   const std::function<bool()>& keep_going = {});

/// Sends `sig` to the process group (or the pid if it is not a group leader), waits up to
/// `timeout_ms` for it to go, then SIGKILLs the group. `is_child` selects waitpid vs polling.
/// Returns true if it exited before the SIGKILL.
/// Sends sig (unless already_sent) to pid's process group (or pid), waits up to timeout_ms
/// for it to exit (through a pidfd, so the exit is seen at once), then SIGKILLs it.
bool stop_process(pid_t pid, int sig, int64_t timeout_ms, bool is_child, bool already_sent = false);
/// Sends sig to pid's process group when pid leads one, else to pid.
void signal_process(pid_t pid, int sig);
/// Waits up to timeout_ms for pid to exit (pidfd; a short sleep where pidfd_open is missing).
/// Returns when it exited or the time is up; the caller checks which.
void wait_for_exit(pid_t pid, int64_t timeout_ms);

/// True if a process `pid` exists (kill(pid, 0) succeeds or is refused with EPERM); false when
/// there is none (ESRCH). Says nothing about whether it is still the same process.
bool pid_exists(pid_t pid);

/// Start time of a pid in clock ticks since boot (from /proc), 0 if it does not exist.
uint64_t process_start_time(pid_t pid);
/// True if `pid` is alive and still the same process (same start time).
bool process_alive(pid_t pid, uint64_t start_time);

/// Makes SIGCHLD, SIGTERM, SIGINT, SIGHUP readable from a self-pipe. Returns the read fd.
int install_signal_pipe();
/// Drains the self-pipe and returns the signals seen.
std::vector<int> read_signals(int fd);

/// The process runner as an interface, for components that take their OS seams through a
/// constructor (a fake in test/unit/fake_os.h). RealProcs calls the functions above.
class Procs {
 public:
  virtual ~Procs() = default;
  virtual Result<pid_t> spawn(const SpawnSpec& spec) = 0;
  virtual Result<RunResult> run(const SpawnSpec& spec, int64_t timeout_ms,
                                const std::function<bool()>& keep_going = {}) = 0;
  virtual bool stop(pid_t pid, int sig, int64_t timeout_ms, bool is_child) = 0;
  virtual void signal(pid_t pid, int sig) = 0;
  virtual uint64_t start_time(pid_t pid) = 0;
  virtual bool alive(pid_t pid, uint64_t start_time) = 0;
};

class RealProcs : public Procs {
 public:
  Result<pid_t> spawn(const SpawnSpec& spec) override { return nfsup::spawn(spec); }
  Result<RunResult> run(const SpawnSpec& spec, int64_t timeout_ms,
                        const std::function<bool()>& keep_going = {}) override {
    return run_with_timeout(spec, timeout_ms, keep_going);
  }
  bool stop(pid_t pid, int sig, int64_t timeout_ms, bool is_child) override {
    return stop_process(pid, sig, timeout_ms, is_child);
  }
  void signal(pid_t pid, int sig) override { signal_process(pid, sig); }
  uint64_t start_time(pid_t pid) override { return process_start_time(pid); }
  bool alive(pid_t pid, uint64_t start_time) override { return process_alive(pid, start_time); }
};

}  // namespace nfsup
