// nfsup master: SHARE/progress, the master's record of how far a rollout got, and `resume`.
//
// After every step of a rollout's plan (plan.h) the master replaces SHARE/progress (temp +
// fsync + rename through the share's confined file system, so never through a symlink and
// under the share deadline) with what another master needs to go on: the rollout (the
// marker's nonce), its generation, action, strategy, target, the pointer it replaced, the
// hosts it moves, the failure policy and the index and name of the step it finished. Then
// it passes the test crash point "<step>-done" ("<step>-<batch>-done" for a rolling batch's
// steps), so every recorded state can be killed into (NFSUP_CRASH_AT).
//
// `nfsup-install resume SHARE` reads it back and finishes a rollout whose master died
// (resume.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "master.h"
#include "plan.h"

namespace nfsup {

struct Progress {
  std::string rollout;                ///< the marker's nonce: which rollout this record is of
  int64_t generation = 0;             ///< the generation the rollout switches under
  std::string action = "push";        ///< push | rollback | finalize
  std::string strategy = "all-at-once";  ///< all-at-once | rolling | finalize
  std::string target, previous;
  std::vector<std::string> hosts;     ///< the hosts the rollout moves (after `stop`: those that stopped)
  std::vector<std::string> vetoed;    ///< rolling: hosts left out by their veto (they keep their release)
  std::string policy;                 ///< after the switch: undo-or-keep | roll-back-upgraded
  int max_failures = -1;
  bool subset = false;                ///< --hosts / --class
  int step = 0;                       ///< 1-based index in the plan of the last finished step (0: none)
  std::string step_name;              ///< its kind (step_name()), "" for none
  int batch = 0;                      ///< rolling: the batch of that step (0: none)
  std::vector<std::vector<std::string>> batches;  ///< rolling: the hosts of each batch
  std::vector<std::string> plan;      ///< the plan's steps: kind, or kind:batch
  std::optional<Pointer> old;         ///< the pointer the rollout replaced (none: the first push)
  std::string ended;                  ///< "" (its own master or resume ended it) | backed-out | aborted:
                                      ///< `abort` ended it, before or after the pointer moved
  std::string master_host;
  int64_t master_pid = 0;
  bool operator==(const Progress&) const = default;
};

/// The plan's steps as Progress::plan keeps them, and back (hosts are not kept: `hosts`/`batches`).
std::vector<std::string> plan_tokens(const Plan& p);
Result<std::vector<Step>> steps_of(const std::vector<std::string>& tokens);
std::string pack_progress(const Progress& p);
/// Strict: a garbled record is Exit::Integrity naming `what` and the line.
Result<Progress> unpack_progress(std::string_view text, std::string_view what);
Result<std::optional<Progress>> read_progress(Share& share);
std::string progress_path(Share& share);
/// The crash point name after step `s`: "<kind>-done", or "<kind>-<batch>-done".
std::string step_done_point(const Step& s);

/// Writes progress `p` as having finished step `s` (index `index`, 1-based) and passes its crash
/// point. A failed write is said (resume then starts from the step before), not returned: the
/// rollout itself went on.
void record_step(Share& share, Progress& p, const Step& s, int index, const MasterOptions& opt);
/// Marks the progress record of rollout `nonce` ended by `how` (Progress::ended) at its last step,
/// so `resume` has nothing to do. No record, another rollout's, or one already ended: nothing. A
/// failed write is said, not returned (the marker is gone by then; resume reads the pointer).
void end_progress(Share& share, const std::string& nonce, const std::string& how, const MasterOptions& opt);
/// record_step for the first step of `plan` whose kind is `kind` (and batch `batch`).
void record_plan_step(Share& share, Progress& p, const Plan& plan, StepKind kind, int batch, const MasterOptions& opt);

struct ResumeReport {
  std::string takeover;                ///< why the marker could be taken over ("" none was)
  std::string outcome;                 ///< nothing | backed-out | done | undone | partial | failed
  std::string release;                 ///< what the pointer names at the end
  std::string acting;
  int64_t generation = 0;
  std::vector<std::string> lines;      ///< what was done (or, --dry-run, would be done)
  std::vector<HostOutcome> hosts;
};
/// Finishes the rollout whose master died, from its recorded step (see resume.cpp).
/// `dry_run`: reads the share, changes nothing, says what it would do.
Result<ResumeReport> resume_rollout(Share& share, const MasterOptions& opt, bool dry_run);

}  // namespace nfsup
