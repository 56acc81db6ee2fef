// nfsup master: a rollout plan — what a strategy intends to do, as data.
//
// As ninja keeps "what we intend to build" (Plan) apart from "building it" (Builder), a
// strategy (all-at-once, rolling, a --hosts/--class subset, rollback, finalize) turns what the
// master read from the share into a Plan: typed steps and a failure policy. Planning is pure
// (no share, no clock), so each strategy's step list is unit-tested; `--dry-run` prints the
// plan the run itself builds (describe_plan), so the two cannot disagree on the steps.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "record.h"
#include "util.h"

namespace nfsup {

enum class StepKind {
  Acquire,  ///< take MARKER with link() (one master), read the pointer again under it
  Vote,     ///< the named hosts run their checks and accept or veto
  Stop,     ///< the named hosts stop their agent for this generation
  Migrate,  ///< the release's migration hook, on the master, while hosts are stopped
  Switch,   ///< write the pointer (the named hosts, or the whole fleet, get `release`)
  Start,    ///< the named hosts start `release` (or fail and go back)
  Fence,    ///< every live host reports acting version `release`
  Release,  ///< remove MARKER
};
const char* step_name(StepKind k);

struct Step {
  StepKind kind = StepKind::Acquire;
  std::vector<std::string> hosts;  ///< the hosts the step acts on or waits for (empty: none, or all live)
  std::string release;             ///< Switch/Start: the release; Migrate: to; Fence: the acting version
  int batch = 0;                   ///< rolling: the batch this step belongs to (1-based); 0: none
  bool operator==(const Step&) const = default;
};

/// What the engine does when hosts fail.
enum class OnFailure {
  BackOut,           ///< before the pointer moved: the old pointer again, marker removed
  UndoOrKeep,        ///< all-at-once: undo when no host started (or > max_failures), else keep with host lines
  RollBackUpgraded,  ///< rolling: more than max_failures failed hosts send every upgraded host back
};
struct FailurePolicy {
  OnFailure before_switch = OnFailure::BackOut;
  OnFailure after_switch = OnFailure::UndoOrKeep;
  int max_failures = -1;  ///< failed hosts tolerated (-1: all-at-once default, see OnFailure::UndoOrKeep)
  bool operator==(const FailurePolicy&) const = default;
};

struct Plan {
  std::string action;    ///< push | rollback | finalize
  std::string strategy;  ///< all-at-once | rolling | finalize
  std::string from, to;  ///< the pointer's release now, the target
  std::vector<Step> steps;
  FailurePolicy policy;
  int batch_size = 0;    ///< rolling: hosts per batch
  /// The hosts of each batch, in order (rolling; empty otherwise).
  std::vector<std::vector<std::string>> batches() const;
};

/// What the master read from the share, as far as planning needs it.
struct PlanInput {
  std::string action = "push";
  std::string strategy = "all-at-once";
  std::string from, to;   ///< the pointer's release ("" if none), the target
  std::string acting;     ///< the pointer's acting version ("" if none)
  std::vector<std::string> hosts;           ///< live hosts the rollout moves, in order
  size_t fleet = 0;                         ///< live hosts in all (a --batch percentage counts these)
  std::map<std::string, std::string> groups;  ///< host -> redundancy group ("" or absent: none)
  bool vote = false;      ///< a vote round first
  bool subset = false;    ///< --hosts / --class: overrides only; acting version and data left alone
  std::string batch = "1";
  int max_unavailable = 1;
  int max_failures = -1;
  bool hold_acting = false;
};

/// Hosts per batch for --batch N or N% of `n` hosts; -1 if the spec is not valid.
int batch_size(const std::string& spec, size_t n);
/// Takes the next batch out of `remaining` (in order): at most b hosts, at most
/// max_unavailable of any one redundancy group.
std::vector<std::string> next_batch(std::vector<std::string>& remaining,
                                    const std::map<std::string, std::string>& groups, int b, int max_unavailable);

/// The plan of a push or rollback (all-at-once, subset or rolling) or a finalize.
/// Fails (Exit::Usage) on a strategy or --batch it cannot plan.
Result<Plan> build_plan(const PlanInput& in);
/// One line per step, as --dry-run prints them.
std::vector<std::string> describe_plan(const Plan& p);

}  // namespace nfsup
