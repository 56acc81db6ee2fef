// nfsup-install status: the fleet as text, JSON (nfsup-status/1), Prometheus, or refreshed (--watch).
#pragma once

#include <cstdint>
#include <string>

#include "master.h"

namespace nfsup::tools {

/// What `status` was asked for on the command line.
struct StatusFlags {
  std::string share;     ///< the share path as given (trailing slashes dropped)
  bool json = false;
  bool prometheus = false;
  bool watch = false;
  std::string interval;  ///< --interval, for --watch
};

/// The exit code of `status` for monitoring, as documented in nfsup-install(1).
int status_exit_code(const StatusReport& r);

/// `status [--watch]`: one report, or one every interval until interrupted.
int cmd_status(Share& share, const StatusFlags& f, int64_t stale_after_ms);

}  // namespace nfsup::tools
