// nfsup master: what the files under src/master/ share with each other (not a public API;
// the public one is master.h).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "master.h"
#include "plan.h"
#include "progress.h"

namespace nfsup {

// ---- marker.cpp
void note(const MasterOptions& o, const std::string& s);
/// The signal the caller's handler recorded (0: none). Every wait of the master checks it.
int interrupted(const MasterOptions& o);
Error interrupted_error(const MasterOptions& o, const std::string& what);
/// Removes this master's marker on the way out; a failure is said.
void release_marker(Share& share, const MasterOptions& opt);
std::string random_nonce();
/// A marker held by this process: the master's identity, a fresh nonce, the lease.
Marker make_marker(int64_t generation, const std::string& action, const std::string& release,
                   const std::string& previous, const MasterOptions& opt);
enum class MarkerWrite {
  Create,   ///< link(): fails over (returns false) when another master's marker exists
  Replace,  ///< temp + fsync + rename over the marker this master holds
};
/// Every write of MARKER by the master goes through here (the one place that encodes, and will
/// sign, a marker). Returns whether the marker was written (Create: false if one existed).
Result<bool> write_marker(Share& share, const Marker& m, MarkerWrite how);
/// write_marker(Replace), as a Status.
Status rewrite_marker(Share& share, const Marker& m);
/// Appends to the audit log; a failure does not undo what was done, so it is said, not returned.
void audit_or_say(Share& share, const MasterOptions& opt, const std::string& action, const std::string& detail,
                  const std::string& result);
/// Writes SHARE/state; a failure leaves `status` behind the truth, so it is said, not returned.
void record_rollout(Share& share, const RolloutState& rs, const MasterOptions& opt);
/// Signs the pointer when the master has a key (hosts need a signed pointer to go back).
Status write_pointer(Share& share, Pointer p, const MasterOptions& opt);

// ---- progress.cpp
/// A rollout's plan and its progress record: done() records each finished step (and passes its
/// crash point) once the plan is known (`on`).
struct Progressing {
  Progress rec;
  Plan plan;
  bool on = false;
  void done(Share& share, StepKind k, const MasterOptions& opt, int batch = 0) {
    if (on) record_plan_step(share, rec, plan, k, batch, opt);
  }
};

// ---- engine.cpp
/// How a rollout step ended when it ended the rollout: its result, and whether the step
/// counts as done (recorded in SHARE/progress: the last step) or not (backed out, an error).
struct StepEnd {
  Result<SwitchReport> result;
  bool done = false;
};
/// A strategy's way of doing each kind of step (Switch: all-at-once; Rolling).
struct StepRunner {
  virtual ~StepRunner() = default;
  /// Does step `s`; nothing to go on with the next, or the end of the rollout.
  virtual std::optional<StepEnd> run_step(const Step& s) = 0;
};
/// The engine: runs the steps of `pr.plan` from index `from` (0-based) with `r`, recording each
/// finished step in SHARE/progress and passing its crash point (record_step). Every wait inside
/// a step renews the lease (wait_hosts, run_migration). Returns the end a step gave, or an
/// internal error if the plan ran out without one.
Result<SwitchReport> run_plan(Share& share, Progressing& pr, size_t from, StepRunner& r, const MasterOptions& opt);
/// The index in `plan` of the first step after the first one of kind `k` (the size if none).
size_t index_after(const Plan& plan, StepKind k, int batch = 0);

// ---- wait.cpp
struct Fleet {
  std::vector<std::string> live;
  std::vector<HostOutcome> skipped;
  // What the hosts told about themselves in their status files:
  bool votes = false;          ///< some live host votes with local checks (or cannot tell)
  int64_t min_poll_ms = 0;     ///< fastest poll_interval among live hosts (0: none reported)
};
/// Reads every host status once and splits the fleet by server-stamped age.
Result<Fleet> survey(Share& share, int64_t now_ms, int64_t stale_after_ms);
/// The live hosts that a switch limited by --hosts or --class takes part in.
std::vector<std::string> targeted(Share& share, const std::vector<std::string>& live, const MasterOptions& opt);
/// --hosts and --class, checked against the share before anything is staged or audited.
Status check_targets(Share& share, const MasterOptions& opt);
/// Refuses (Exit::Usage) a switch of live signed-mode hosts without a key they trust.
Status check_signer(Share& share, const MasterOptions& opt);
int64_t master_pace_ms(int64_t min_host_poll_ms, int64_t last_round_ms, const MasterOptions& opt, size_t pending,
                       size_t total);
/// Rewrites the marker with renewal+1 when due. Fails if the marker is no longer ours.
Status renew_lease(Share& share, Marker& m, int64_t& last_renew);
/// Before each round of a wait: stop on a signal, renew the lease if this master holds the marker.
Status keep_waiting(Share& share, Marker* marker, int64_t& last_renew, const MasterOptions& opt, const char* phase);
using Done = std::function<std::optional<HostOutcome>(const HostStatus&)>;
/// Waits until `done` gives an outcome for every host in `hosts`, renewing the lease while
/// `marker` is held.
Result<std::vector<HostOutcome>> wait_hosts(Share& share, const std::vector<std::string>& hosts, Marker* marker,
                                            const MasterOptions& opt, const Done& done, const char* phase);
/// The acting version fence: waits until every live host reports `acting`.
Status fence_acting(Share& share, Marker& m, const std::string& acting, const MasterOptions& opt, SwitchReport& rep,
                    RolloutState& rs);

// ---- votes.cpp
Result<std::vector<std::string>> vote_round(Share& share, Marker& m, const std::vector<std::string>& hosts,
                                            int64_t min_poll_ms, const MasterOptions& opt, SwitchReport& rep,
                                            const std::string& what);

// ---- switch.cpp
Status back_out(Share& share, const std::optional<Pointer>& old, int64_t gen, const MasterOptions& opt);
Result<bool> reread_pointer_under_marker(Share& share, Result<std::optional<Pointer>>& ptr, const MasterOptions& opt);
/// Takes the marker with link() (one master only), then reads the pointer again under it.
Result<bool> acquire_marker(Share& share, const Marker& m, Result<std::optional<Pointer>>& ptr,
                            const MasterOptions& opt, const std::string& step);
Result<std::vector<HostOutcome>> wait_started(Share& share, const std::vector<std::string>& go, Marker& m,
                                              int64_t gen, const std::string& target, const MasterOptions& opt);
/// The rest of an all-at-once switch whose pointer names the target, after step `last_done`
/// (Switch, Start or Fence): start, settle by the failure policy, fence, remove the marker.
Result<SwitchReport> finish_switch(Share& share, Marker& m, const std::optional<Pointer>& old, const Pointer& np,
                                   const std::vector<std::string>& go, const MasterOptions& opt, SwitchReport rep,
                                   Progressing& pr, StepKind last_done);
/// Removes a dead master's marker after backing its switch out if the pointer had not moved
/// (abort.cpp): the old pointer again under the marker's generation, so stopped hosts resume.
Status remove_dead_marker(Share& share, const Marker& mk, const MasterOptions& opt, AbortReport& rep);
Result<SwitchReport> run_switch_impl(Share& share, const std::string& target, const std::string& action,
                                     const MasterOptions& opt, SwitchReport rep);

// ---- rolling.cpp
Result<SwitchReport> run_rolling_impl(Share& share, const std::string& target, const MasterOptions& opt,
                                      SwitchReport rep);

/// Goes on with the rolling rollout of record `pg` whose master died, under the marker this
/// process took over, from the batch in flight (run again) to the end.
Result<SwitchReport> resume_rolling(Share& share, const Progress& pg, const Marker& taken, const Pointer& now,
                                    const MasterOptions& opt);

// ---- finalize.cpp
/// Goes on with the finalize of record `pg` whose master died after its pointer write, under the
/// marker this process took over: the steps after `last_done` (Switch or Fence).
Result<SwitchReport> resume_finalize(Share& share, const Progress& pg, const Marker& taken, const Pointer& now,
                                     const MasterOptions& opt, StepKind last_done);

// ---- record.cpp
extern thread_local Timeline* g_timeline;  ///< the switch being recorded (one per process)
int64_t unix_ms();
Status save_timeline(Share& share, Timeline& t);
Status write_rollout(Share& share, const RolloutState& s);
/// Runs release `target`'s migration hook once (recorded in SHARE/state), renewing the lease.
Status run_migration(Share& share, const std::string& from, const std::string& target, RolloutState& st,
                     Marker& marker, const MasterOptions& opt);
Result<SwitchReport> run_switch(Share& share, const std::string& target, const std::string& action,
                                const MasterOptions& opt, SwitchReport rep);
Result<SwitchReport> run_rolling(Share& share, const std::string& target, const MasterOptions& opt, SwitchReport rep);

}  // namespace nfsup
