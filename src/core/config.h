// nfsup core: the watchdog configuration (YAML), parsed strictly from memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trust.h"
#include "util.h"

namespace nfsup {

/// How a service is asked about a changeover and how it answers (issue 18). Either a signal
/// (the watchdog writes the question to state_dir/changeover/<service>/ask and the service
/// answers in .../reply) or a command run with the stage as its last argument.
struct ChangeoverConfig {
  enum class OnTimeout { Veto, Restart };
  int signal = 0;
  std::vector<std::string> command;  ///< [0] relative to the release directory
  int64_t timeout_ms = 30000;
  /// A service that does not answer in time: during the vote its silence is a veto; during the
  /// changeover `veto` gives the switch up, `restart` stops and restarts the service.
  OnTimeout on_timeout = OnTimeout::Veto;
  bool configured() const { return signal != 0 || !command.empty(); }
};

/// One supervised process of a release. `agent:` in the file is the one service named "agent".
struct AgentConfig {
  std::string name = "agent";              ///< service name (module-name rules)
  std::vector<std::string> modules;        ///< release modules it runs ([] = every module)
  ChangeoverConfig changeover;
  std::vector<std::string> command;        ///< argv; [0] relative to the release directory
  std::string config;                      ///< this host's configuration file ("" = none)
  int stop_signal = 15;
  int64_t stop_timeout_ms = 30000;
  std::vector<std::string> start_command;  ///< external control (systemd): all three or none
  std::vector<std::string> stop_command;
  std::vector<std::string> status_command; ///< exit 0 = running
  int restart_limit = 5;                   ///< crashes within restart_window before giving up
  int64_t restart_window_ms = 300000;
  int64_t reconfig_timeout_ms = 60000;
  int64_t start_grace_ms = 1000;           ///< must stay up this long to count as running
  int acting_signal = 0;                   ///< sent when the acting version changes (0 = none)
  int drain_signal = 0;                    ///< drain: a signal ...
  std::vector<std::string> drain_command;  ///< ... or a command (run with the agent's env)
  int64_t drain_timeout_ms = 60000;
  std::vector<std::string> health_command; ///< [0] relative to the release directory
  int64_t health_timeout_ms = 20000;
};

struct WatchdogConfig {
  std::string path;              ///< the file it came from, for messages
  std::string share;
  std::string host;
  std::string group;             ///< redundancy group
  std::string cls;               ///< host class (selects a release's module subset)
  std::map<std::string, std::string> traits;  ///< characteristics matched by release classes
  std::string checks_dir;        ///< executables run before an upgrade: non-zero exit = veto
  std::string metrics_file;      ///< Prometheus textfile written at each status write ("" none)
  int64_t poll_interval_ms = 2000;
  int64_t heartbeat_interval_ms = 10000;
  int64_t share_timeout_ms = 10000;
  std::string state_dir = "/var/lib/nfsup";
  bool verify_before_start = true;
  /// run_from: local (false) runs the agent from a verified run tree of hard links into the
  /// host's object store (state_dir/cache/<version>, state_dir/store/); share (true) runs it
  /// from the release on the share. Signed mode requires local.
  bool run_from_share = false;
  int keep_releases = 2;         ///< local run trees kept besides the running one (run_from: local)
  TrustPolicy trust;             ///< trusted_keys, revoked_keys, allow_unsigned
  std::vector<std::string> trusted_key_paths;
  /// The first of `services` (or the `agent:` service): the one the switch machinery drives.
  AgentConfig agent;
  /// Every service of this host, in file order; never empty once parsed; [0] is `agent`.
  std::vector<AgentConfig> services;
};

/// Parses a config document. `path` only names the file in errors ("path:line:col: ...").
Result<WatchdogConfig> parse_watchdog_config(std::string_view yaml, const std::string& path);
/// The same, always through yaml-cpp (parse_watchdog_config reads the plain subset of YAML
/// itself; tests compare the two).
Result<WatchdogConfig> parse_watchdog_config_with_yaml_cpp(std::string_view yaml, const std::string& path);
/// Reads and parses a config file (local disk).
Result<WatchdogConfig> load_watchdog_config(const std::string& path);

/// "TERM", "SIGTERM" or a number.
int parse_signal(std::string_view s);
std::string signal_name(int sig);

}  // namespace nfsup
