// nfsup core: the master side (nfsup-install): init, push, rollback, abort, status, verify.
//
// The protocol, for one all-at-once switch to release R (push and rollback alike):
//  1. R is published and verified (releases/R with every hash matching its manifest).
//  2. MARKER is created with link(), so only one master can hold it. It carries the generation
//     G = current.generation + 1, the target, the previous release, the master's host and pid, a
//     random nonce and a lease; the master rewrites it (renewal + 1) every lease/3.
//  3. The master reads every host's status; a host whose status file's server-stamped mtime is
//     older than stale_after compared with the marker's own mtime is stale: named and skipped.
//     Live hosts must report `stopped` for G. A live host whose heartbeat counter stops changing
//     for stale_after (master's monotonic clock) becomes stale and is skipped.
//  4. `current` is replaced (rename) with {G, R, previous, acting R}; MARKER is rewritten to hold
//     nobody (it still keeps other masters out, and its lease is still renewed).
//  5. Hosts start R; the master waits until each live host reports running R for G, or failed.
//     If some failed, the pointer is settled under G+1: undone (a push no host could start, or
//     with more failures than --max-failures), or kept with a host line per failed host and
//     the acting version lowered to what they run.
//  6. The master waits until every live host reports the pointer's acting version (the fence),
//     then unlinks MARKER. Only then is the rollout `done`.
// A crash at any point leaves either the old pointer (hosts resume the old release once the
// lease lapses, or at `abort`) or the new one (hosts start R); never a half-visible release.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "share.h"
#include "stage.h"

namespace nfsup {

class Procs;  // os/procs.h

struct MasterOptions {
  int64_t lease_ms = 30000;
  int64_t stale_after_ms = 45000;
  int64_t timeout_ms = 600000;       ///< for hosts to stop, and again for hosts to start
  int64_t poll_ms = 250;
  bool wait = true;                  ///< wait for hosts to run the new release
  bool force = false;
  std::function<void(const std::string&)> note;  ///< progress lines for humans
  std::function<void(uint64_t, uint64_t)> progress;
  const struct SecretKey* sign_key = nullptr;  ///< signs manifests and the pointer
  /// Set (to the signal number) by the caller's SIGINT/SIGTERM/SIGHUP handler; every wait
  /// checks it and backs out as on a failure (the marker is rewritten or removed): Exit::Interrupted.
  const std::atomic<int>* interrupt = nullptr;
  // Rolling upgrades.
  std::string strategy = "all-at-once";  ///< all-at-once | rolling
  std::string batch = "1";               ///< hosts per batch: N or N%
  int max_failures = -1;                 ///< host failures tolerated before the push is undone (-1: not
                                         ///< given: 0 for rolling; all-at-once undoes only when no host started)
  int max_unavailable = 1;               ///< per redundancy group, at once
  bool hold_acting = false;              ///< keep the acting version back until `finalize`
  int64_t migrate_timeout_ms = 600000;
  /// Runs the migration hook (nullptr: a verified local copy of it as a real process). The
  /// simulator's fake runs it in simulated time; it is given the hook's path on the share.
  Procs* hook_runner = nullptr;
  // Targets and votes.
  std::vector<std::string> hosts;        ///< only these hosts (push/rollback --hosts)
  std::string cls;                       ///< only hosts of this class (push --class)
  int64_t vote_timeout_ms = 60000;
  bool assume_accept = false;            ///< a host that does not vote counts as accepting
  bool skip_vetoed = false;              ///< upgrade only the hosts that accepted
};

/// Module dependencies inside each live host and APIs across live hosts; one line per problem.
Result<std::vector<std::string>> check_dependencies(Share& share, int64_t stale_after_ms);

/// What the master saw each host do during one switch, for `report --html`.
struct TimelineEvent {
  std::string host, state, running;
  int64_t unix_ms = 0;
};
struct Timeline {
  int64_t generation = 0;
  std::string action, from, to, strategy;
  int64_t start_ms = 0, end_ms = 0;
  std::vector<TimelineEvent> events;
  std::map<std::string, std::string> last;  ///< host -> "state running", to log only changes
  void see(const std::string& host, const std::string& state, const std::string& running);
};
std::string pack_timeline(const Timeline& t);
Result<Timeline> unpack_timeline(std::string_view text, std::string_view what);
/// The newest timeline in SHARE/rollouts/, if any.
Result<std::optional<Timeline>> read_last_timeline(Share& share);
/// Generations that have a timeline in SHARE/rollouts/, oldest first.
Result<std::vector<int64_t>> list_timelines(Share& share);
/// The timeline of `generation` (0: the newest), or nothing when the share has none for it.
Result<std::optional<Timeline>> read_timeline(Share& share, int64_t generation);

struct HostOutcome {
  std::string host;
  std::string outcome;   ///< ok | failed | stale (skipped at start) | lost (went silent) | timeout | vetoed | rolled-back
  std::string detail;
};

struct SwitchReport {
  std::string target;
  std::string previous;
  int64_t generation = 0;
  bool nothing_to_do = false;
  StageResult stage;
  std::vector<HostOutcome> hosts;
  std::vector<std::string> dependency_problems;
  std::vector<std::string> warnings;  ///< done, but something beside the switch was not (its timeline)
  std::string undone_to;  ///< the push failed and was undone: the release the pointer names again
  bool all_ok() const;
};

Status init_share(Share& share);

struct PushRequest {
  StageRequest stage;
};
Result<SwitchReport> push(Share& share, const PushRequest& req, const MasterOptions& opt);
/// What a push (staged: the scanned source) or a rollback (staged: null) to `target` would do,
/// one line per step or refusal; reads the share and writes nothing.
struct DryRunPlan {
  std::vector<std::string> lines;
  int exit_code = 0;  ///< what the real run would exit with at its first refusal (0: none foreseen)
};
Result<DryRunPlan> dry_run_plan(Share& share, const std::string& action, const std::string& target,
                                              const Manifest* staged, const MasterOptions& opt);
/// The release a rollback goes to: `to` if given (it must be kept), else the pointer's
/// `previous` (the release the last switch replaced), never a release that merely sits on the
/// share. Refused (Exit::Usage) when `previous` is newer (the last switch went back): a second
/// rollback would return to the release just left; say --to.
Result<std::string> rollback_target(Share& share, const std::string& to);
/// Whether --batch is N or N% with N >= 1.
bool valid_batch(const std::string& spec);
Result<SwitchReport> rollback(Share& share, const std::string& to, const MasterOptions& opt);
struct PruneReport {
  std::vector<std::string> deleted;
  std::vector<std::string> kept;   ///< with the reason, e.g. "1.0 (runs on web01)"
  int objects_removed = 0;
  uint64_t bytes_freed = 0;
  std::vector<std::string> leftovers_removed;  ///< `.deleting-*` trees of earlier prunes, now gone
  std::vector<std::string> leftovers_kept;     ///< ... still not removable (a file in use on a client)
};
/// Deletes old releases: keeps the newest `keep`, the current release and its overrides, the
/// rollback target (newest release below current, and `previous`), and every release any
/// host's status says it runs. Then removes objects no release links any more.
Result<PruneReport> prune(Share& share, int keep, bool dry_run, const MasterOptions& opt);

/// Releases an acting version held back by --hold-acting (runs the migration hook once).
Result<std::string> finalize(Share& share, const MasterOptions& opt);

/// SHARE/state: the rollout as the master last wrote it (for status and for humans).
struct RolloutState {
  std::string acting, min_supported, target, phase;  ///< phase: batch i/n | done | held | failed
  std::string master_host;
  int64_t master_pid = 0, lease_ms = 0;
  std::map<std::string, std::string> installed;      ///< host -> release
  std::vector<std::string> migrated;                 ///< versions whose migration hook ran
  std::string note;
};
std::string pack_rollout(const RolloutState& s);
Result<RolloutState> unpack_rollout(std::string_view text, std::string_view what);
Result<std::optional<RolloutState>> read_rollout(Share& share);

struct AbortReport {
  bool had_marker = false;
  std::string resumed;          ///< release the hosts resume
  int removed_staging = 0;
  std::vector<std::string> notes;
};
Result<AbortReport> abort_push(Share& share, const MasterOptions& opt);

struct HostView {
  std::string host;
  std::optional<HostStatus> status;
  std::string error;            ///< unreadable status
  int64_t age_ms = -1;          ///< server time since its last write (-1 unknown)
  bool stale = false;
};
struct StatusReport {
  std::optional<RolloutState> rollout;
  std::optional<Pointer> pointer;
  std::optional<Marker> marker;
  std::vector<std::string> releases;
  std::vector<HostView> hosts;
  std::vector<std::string> warnings;
  std::vector<std::string> dependency_problems;
};
Result<StatusReport> share_status(Share& share, int64_t stale_after_ms);

struct VerifyReport {
  std::map<std::string, std::vector<std::string>> problems;  ///< release -> problems
  std::vector<std::string> checked;
  std::vector<std::string> warnings;
};
Result<VerifyReport> verify_share(Share& share);

/// The server's idea of "now" (mtime of a file just written), in ms; falls back to local time.
int64_t server_now_ms(Share& share);

}  // namespace nfsup
