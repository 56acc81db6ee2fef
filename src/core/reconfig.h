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

/// Local atomic write (temp in the same directory, fsync, rename), keeping `mode`.
Status write_local_atomic(const std::string& path, std::string_view data, uint32_t mode);
/// The same without the fsync, for a local file recomputed from the share whenever it is
/// needed (a crash may lose the last version, never leave a torn one).
Status write_local_derived(const std::string& path, std::string_view data, uint32_t mode);
/// Replaces a local file that only its writer reads (the watchdog's state, read back only by
/// the holder of the state_dir lock) without a new inode: the data goes into a spare file
/// beside it (`.NAME.spare`, rewritten in place and fsynced), then renameat2(RENAME_EXCHANGE)
/// swaps the two names in one step; the spare then holds the previous content. Readers see
/// the old file or the new one, never a mix; a crash mid-write leaves the target untouched.
/// Falls back to temp + fsync + rename when the target does not exist yet or the file system
/// has no RENAME_EXCHANGE.
Status write_local_exchange(const std::string& path, std::string_view data, uint32_t mode);
Result<std::optional<std::string>> read_local(const std::string& path, size_t max = 16 * 1024 * 1024);

}  // namespace nfsup
