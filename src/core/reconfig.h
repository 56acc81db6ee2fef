// nfsup core: the config-rewrite runner (nfsup-reconfig and the watchdog share it).
//
// Moving a host from version A to version B:
//  - B older than A and a backup of this host's config taken while it ran B exists:
//    the backup is restored (rollback restores the configuration as it was).
//  - otherwise, if release B carries a reconfig script: the config is copied to a temp file next
//    to it, the script (first copied to local disk and checked against the manifest hash) rewrites
//    the copy under a timeout, and on success the copy replaces the config by rename.
//  - either way the config as it was under A is kept as the backup for A first.
// On any failure the config file is untouched.
#pragma once

#include <string>

#include "config.h"
#include "os/files.h"
#include "share.h"

namespace nfsup {

struct ReconfigPlan {
  enum Kind { Nothing, Restore, Script } kind = Nothing;
  std::string from, to;
  std::string local_script;   ///< verified local copy of the release's script
  std::string backup_source;  ///< for Restore
  std::string describe() const;
};

/// Share part (run under the caller's deadline): decides what to do and fetches the script.
Result<ReconfigPlan> plan_reconfig(Share& share, const WatchdogConfig& cfg, const std::string& from,
                                   const std::string& to);

struct ReconfigOutcome {
  bool changed = false;
  std::string diff;      ///< unified diff of the config (dry run, or what was applied)
  std::string message;
  /// With defer_backup and nothing to change: the backup still to be written (path, content).
  std::string backup_path, backup;
};

/// Local part: applies (or, with dry_run, only shows) the plan. Never touches the share.
/// A plan that changes nothing still backs up the configuration under `from` (for a later
/// rollback); with defer_backup that write is left to the caller (outcome.backup_path), which
/// must make it before anything rewrites the configuration (write_backup).
Result<ReconfigOutcome> apply_reconfig(const WatchdogConfig& cfg, const ReconfigPlan& plan, bool dry_run,
                                       bool defer_backup = false);
Status write_backup(const WatchdogConfig& cfg, const std::string& path, std::string_view content);

std::string backup_path(const WatchdogConfig& cfg, const std::string& version);

// read_local, write_local_atomic, write_local_derived, write_local_exchange: src/os/files.h.

}  // namespace nfsup
