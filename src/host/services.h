// nfsup host: the services of a host besides its first (issue 18), supervised beside the agent.
//
// The first service (cfg.agent) goes through the watchdog's whole switch machinery: drain,
// verify, reconfig, health gate, rollback. The others run from the run tree of the release the
// host runs, each on its own: started, health-checked after its start grace, restarted after a
// crash with the agent's back-off and restart_limit, never touching another service. The
// daemon owns them as children; a cron tick starts them detached and finds them by pid and
// start time. Their pids and versions are kept in state_dir/services (local disk).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <map>

#include "config.h"
#include "os/procs.h"
#include "share.h"
#include "watchdog.h"

namespace nfsup {
namespace wd {

/// What a release change means for one service. Replaced: a module it runs changed (its
/// hash, or the module is new or gone): it is stopped and started from the new run tree.
/// Affected: only a module that one of its modules depends on (directly or not) changed: it
/// stays up, from its old run tree, and is told of the changeover. Unchanged: it never notices.
enum class ServiceChange { Unchanged, Affected, Replaced };
const char* service_change_name(ServiceChange c);

/// Classifies every service of `services` for a change from a release whose modules (for this
/// host's class) had the hashes `old_hashes` to one with the modules `next`. A service with
/// modules [] runs every module. Without modules on either side nothing can be told apart:
/// every service is replaced.
std::map<std::string, ServiceChange> classify_services(const std::vector<AgentConfig>& services,
                                                       const std::map<std::string, std::string>& old_hashes,
                                                       const std::vector<ModuleInfo>& next);

struct ServiceRun {
  std::string name;
  int64_t pid = 0;
  uint64_t start = 0;      ///< process start time (cron: same process?)
  std::string version;     ///< release whose run tree it runs from ("" = none)
  std::string want;        ///< release whose run tree it should run from ("" = the host's)
  ServiceChange change = ServiceChange::Unchanged;  ///< at the last switch
  std::string state = "stopped";  ///< starting | running | stopped | failed
  std::string reason;
  int64_t started_ms = 0;  ///< boot_ms of the start (start grace, pid age)
  int64_t started_wall = 0;
  int64_t restart_at = 0;  ///< backing off after a crash: no restart before this
  std::vector<int64_t> crashes;
};

class Services {
 public:
  using SpecFn = std::function<SpawnSpec(const AgentConfig&, const std::string& version)>;
  Services(std::string state_dir, bool daemon, Logger log) : dir_(std::move(state_dir)), daemon_(daemon), log_(std::move(log)) {}

  /// The services after the first; runs of services no longer configured are stopped.
  void configure(const std::vector<AgentConfig>& all);
  void load();
  void save();
  /// Daemon start: processes left by an earlier watchdog are not its children; stop them.
  void adopt_orphans();
  /// Notices services that exited (daemon: waitpid; cron: pid and start time).
  void reap();
  /// Brings every service to `version`: starts those down (after their back-off), replaces
  /// those on another release, health-checks those past their start grace. version "" = none.
  void supervise(const std::string& version, const SpecFn& spec);
  void stop_all(const std::string& why);
  /// A switch to `to` classified by classify_services: replaced services are to run from
  /// `to`'s tree, the others keep the tree they run from. The first service (the agent) is
  /// not among these runs; its entry in `change` is ignored.
  void retarget(const std::string& to, const std::map<std::string, ServiceChange>& change);
  /// The switch did not happen: every service follows the release the host runs again.
  void follow_host();
  /// Stops the services whose run tree is to change (the replaced ones, during a switch).
  void stop_replaced(const std::string& why);
  /// Releases whose run trees the services use or are to use (kept by prune).
  std::vector<std::string> trees() const;
  /// SIGHUP: crash counts forgotten, services that gave up may start again.
  void forgive();
  /// The earliest boot_ms at which supervise() has something to do (0 = nothing due).
  int64_t next_due_ms() const;
  const std::vector<ServiceRun>& runs() const { return runs_; }
  bool empty() const { return cfgs_.empty(); }

 private:
  void start(ServiceRun& r, const AgentConfig& a, const std::string& version, const SpecFn& spec);
  void stop(ServiceRun& r, const AgentConfig& a, const std::string& why);
  void died(ServiceRun& r, const AgentConfig& a, const std::string& how);
  void check_health(ServiceRun& r, const AgentConfig& a, const std::string& version, const SpecFn& spec);
  void say(LogLevel l, const std::string& m) { if (log_) log_(l, m); }

  std::string dir_;
  bool daemon_;
  Logger log_;
  std::vector<AgentConfig> cfgs_;
  std::vector<ServiceRun> runs_;  // parallel to cfgs_
  std::string saved_;
};

/// The services file: "nfsup-services 1" then
/// "service NAME PID START VERSION WANT STATE CHANGE STARTED_WALL" ("-" for an empty version).
std::string pack_services(const std::vector<ServiceRun>& runs);
std::vector<ServiceRun> unpack_services(const std::string& text);

}  // namespace wd
}  // namespace nfsup
