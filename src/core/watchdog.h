// nfsup core: the watchdog (one per host), as a daemon (`run`) or a cron tick (`check`).
//
// Decisions are a pure function of what the host last saw on the share and what it knows
// locally (decide()); the runtime around it gathers observations through a ShareWorker that
// never lets a share call block longer than share_timeout, and carries out the action.
//
// Rules (see decide()):
//  - share unreadable             -> keep the agent exactly as it is, report nothing new
//  - MARKER present, lease alive  -> stop the agent, report `stopped` for the marker's generation
//  - MARKER gone (or lease lapsed)-> run what `current` names; but if we stopped for generation G
//                                   and `current` still shows an older generation (a stale cache),
//                                   wait: never start the old release because of a cached pointer
//  - running != current           -> stop, verify hashes, reconfig, start the new release;
//                                   on failure restart the old one and report `failed`
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "config.h"
#include "share.h"

namespace nfsup {

// ---------------------------------------------------------------- pure decision

struct Observation {
  bool share_ok = true;
  bool garbled = false;         ///< the share answered, but a file read back malformed (retry next poll)
  std::string share_error;
  std::optional<Marker> marker;
  bool marker_lapsed = false;
  bool pointer_read = false;
  std::optional<Pointer> pointer;
  int64_t root_mtime_ns = 0;    ///< the share root's mtime as the marker probe saw it (0: unknown)
};

struct LocalView {
  std::string host;             ///< this host's name (markers may target a subset)
  std::string running;          ///< release the agent runs (or last ran) on this host
  bool agent_up = false;
  int64_t held_gen = 0;         ///< we stopped for this marker generation
  int64_t held_wait_ms = 0;     ///< how long the pointer has lagged behind held_gen
  int64_t lease_ms = 30000;
  int64_t failed_gen = 0;       ///< pointer generation whose switch failed here
  bool gave_up = false;         ///< restart-loop limit reached
};

struct Decision {
  enum Kind {
    Keep,        ///< nothing to do
    Hold,        ///< marker present: make sure the agent is stopped, ack the generation
    WaitPointer, ///< marker gone but pointer older than what we stopped for
    NeedPointer, ///< read `current` and decide again
    Switch,      ///< move from `from` to `to`
    Start,       ///< (re)start `to` (same release)
    Idle,        ///< no release published yet
    Vote,        ///< marker in its vote phase names this host: run the checks, write the vote
  } kind = Keep;
  std::string from, to;
  int64_t generation = 0;
  std::string nonce;  ///< Vote: the marker's nonce, echoed in the vote with generation and `to`
  std::string why;
};

Decision decide(const Observation& obs, const LocalView& local);
const char* decision_name(Decision::Kind k);

/// Lease tracking on the host's own monotonic clock: the lease has lapsed when the marker's
/// renewal counter has not changed for lease_ms.
struct LeaseTracker {
  std::string nonce;
  int64_t renewal = -1;
  int64_t changed_at_ms = 0;
  bool update(const Marker& m, int64_t now_ms);  ///< returns lapsed
};

// ---------------------------------------------------------------- share worker

/// Runs share operations on one worker thread so a hung mount never blocks the caller past its
/// deadline. At most one operation is outstanding: while a timed-out one is still stuck, every
/// new call fails at once. The thread starts with the first call.
///
/// An idle daemon also hands the worker its marker probe (set_probe): the worker runs it every
/// period on its own and wakes the caller (writes to wake_fd) only when the probe returns
/// true. An idle poll is then one timed wake-up of one thread and the probe's system calls,
/// with no hand-off between threads.
class ShareWorker {
 public:
  ShareWorker() = default;
  ~ShareWorker();
  ShareWorker(const ShareWorker&) = delete;
  ShareWorker& operator=(const ShareWorker&) = delete;
  /// Runs fn with a deadline. false = timed out or still busy with an earlier hung call.
  /// With stall_ms > 0, also false as soon as g_read_progress has not moved for stall_ms
  /// (a long verification or copy that hangs is given up on without waiting for timeout_ms).
  bool run(const std::function<void()>& fn, int64_t timeout_ms, std::string* why, int64_t stall_ms = 0);
  bool busy();
  /// How long the operation or probe in progress has been running (0 when none is).
  int64_t busy_for_ms();
  /// Runs probe every period_ms, the first time at first_at_ms (boot_ms clock); writes to
  /// wake_fd when it returns true, and then stops probing until set_probe is called again.
  void set_probe(std::function<bool()> probe, int64_t period_ms, int64_t first_at_ms, int wake_fd);
  void clear_probe();

 private:
  void start_locked();
  void loop();
  void sleep_unlocked(std::unique_lock<std::mutex>& l, int64_t ms);
  void kick();
  std::mutex mu_;
  int kick_fd_ = -1;                 ///< eventfd: the worker sleeps on it until a job or its next probe
  std::condition_variable done_cv_;  ///< callers wait here for their job to finish
  std::shared_ptr<std::function<void()>> job_;
  std::shared_ptr<std::function<bool()>> probe_;
  int64_t probe_period_ms_ = 0, next_probe_ms_ = 0;
  int wake_fd_ = -1;
  bool probing_ = false;
  uint64_t posted_ = 0, finished_ = 0;
  int64_t busy_since_ = 0;
  bool quit_ = false, started_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------- runtime

enum class LogLevel { Debug, Info, Warn, Error };
using Logger = std::function<void(LogLevel, const std::string&)>;

struct WatchdogRuntimeOptions {
  bool daemon = true;
  Logger log;
  std::function<void()> on_ready;     ///< called once the first tick is done (sd_notify READY)
  std::function<void()> on_alive;     ///< called every loop iteration (sd_notify WATCHDOG)
  int64_t alive_interval_ms = 0;      ///< call on_alive at least this often (0: no need)
  std::function<Result<WatchdogConfig>()> reload;  ///< SIGHUP
};

/// Daemon: supervises the agent as its child until SIGTERM/SIGINT. Returns the exit code.
int run_watchdog_daemon(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt);
/// One cron tick: takes the local lock, observes, acts, returns an exit code.
int run_watchdog_check(const WatchdogConfig& cfg, const WatchdogRuntimeOptions& opt);

}  // namespace nfsup
