// nfsup core: Prometheus text exposition format (node_exporter's textfile collector) for one
// host (the watchdog's metrics_file) and for the fleet (`nfsup-install status --prometheus`).
//
// Rendering is pure. The host file also carries what a counter needs between two cron ticks
// (restarts, the last switch, the agent's pid): the next write reads them back from the file
// it replaces, so no other local state is needed. A missing or garbled previous file starts
// the counters again (Prometheus handles counter resets), it is never an error.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "util.h"

namespace nfsup {

struct StatusReport;

/// One observation of this host, taken when the watchdog writes its status.
struct HostSample {
  std::string host;
  std::string state;             ///< idle|starting|running|... (the status file's state)
  std::string release;           ///< release the agent runs ("" none)
  std::string watchdog_version;
  int64_t agent_pid = 0;
  bool share_up = true;          ///< the status write succeeded within share_timeout
  int64_t share_latency_ms = 0;  ///< how long that write took
  int64_t now_s = 0;             ///< wall clock, Unix seconds
};

/// What a host file carries from one write to the next.
struct HostCarry {
  std::string release;
  int64_t agent_pid = 0;
  int64_t restarts = 0;
  int64_t last_switch_s = 0;     ///< 0: no switch seen since metrics_file was set
};

/// Reads the carried values back from a file written by render_host_metrics (anything else: {}).
HostCarry parse_host_carry(std::string_view prom);
/// The carry after `s`: a new release is a switch (at s.now_s), a new agent pid on the same
/// release is a restart.
HostCarry next_carry(const HostCarry& prev, const HostSample& s);
/// The host file's text for sample `s` and the carry `c` (from next_carry).
std::string render_host_metrics(const HostSample& s, const HostCarry& c);
/// Reads the previous file at `path`, renders the new one and replaces it atomically
/// (temp file in the same directory, rename). `path` is on local disk.
Status write_host_metrics(const std::string& path, const HostSample& s);

/// The fleet as the master sees it on the share; `converged` is status's exit code 0.
std::string render_fleet_metrics(const StatusReport& r, bool converged);

}  // namespace nfsup
