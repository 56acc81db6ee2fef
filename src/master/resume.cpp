// nfsup master: resume: finishes a rollout whose master died, from its recorded step.
//
// What resume does depends on where the dead master got to, read from the share itself (the
// pointer) as much as from SHARE/progress (which may be one step behind: a master can die
// between a step and its record):
//  - the pointer has not moved to the rollout's target: the rollout is backed out exactly as
//    `abort` does (the old pointer under the marker's generation, the marker removed). Going on
//    instead would mean stopping the fleet again for a switch whose command already failed, after
//    hosts may have resumed the old release at the end of the lease: that is a new push, which
//    the operator can run; backing out is what every host already expects.
//  - the pointer names the target: the switch is done and cannot be taken back silently, so the
//    rest of the plan runs: wait for the hosts to start it, apply the failure policy (undo, or
//    host lines for failed hosts), fence the acting version, remove the marker. Without this the
//    acting version could stay above a host whose agent would not start the target.
//  - a rolling push that wrote its first batch's pointer: the batch in flight runs again, then
//    the batches after it and the end (Rolling::resume).
// Either way the rest runs through the same engine loop as the master's own run (run_plan).
// The marker is taken over only when its master is gone: a pid on this host that no longer
// exists, or (another host's master) a lease the server's clock says has lapsed; --force takes
// it anyway. Otherwise resume refuses (Exit::Busy) and changes nothing.
#include <errno.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include "internal.h"
#include "os/procs.h"
#include "progress.h"

namespace nfsup {

namespace {

bool pid_alive(int64_t pid) { return pid > 0 && pid_exists(static_cast<pid_t>(pid)); }

// Why the marker's master counts as gone, or Err(Busy) while it may be alive.
Result<std::string> takeover_reason(Share& share, const Marker& mk, const MasterOptions& opt) {
  if (mk.master_host == short_hostname()) {
    if (!pid_alive(mk.master_pid)) return fmt::format("its master (pid {} on this host) is gone", mk.master_pid);
    if (opt.force) return fmt::format("--force (its master, pid {} on this host, still runs)", mk.master_pid);
    return err(Exit::Busy, fmt::format("{}: the {} of {} by pid {} on this host is still running; let it finish, "
                                       "stop it, or use --force",
                                       share.marker_path(), mk.action, mk.release, mk.master_pid));
  }
  auto st = share.fs().stat(share.marker_path());
  if (!st) return st.error();
  const int64_t age = *st ? server_now_ms(share) - (*st)->mtime_ms : 0;
  if (age > mk.lease_ms)
    return fmt::format("its lease lapsed (renewed {} ago, lease {})", format_duration_ms(age),
                       format_duration_ms(mk.lease_ms));
  if (opt.force) return fmt::format("--force (its master {} pid {} renewed its lease {} ago)", mk.master_host,
                                    mk.master_pid, format_duration_ms(age));
  return err(Exit::Busy, fmt::format("{}: the {} of {} by {} (pid {}) renewed its lease {} ago (lease {}); if its "
                                     "master died, run resume again once the lease has lapsed, or use --force",
                                     share.marker_path(), mk.action, mk.release, mk.master_host, mk.master_pid,
                                     format_duration_ms(age), format_duration_ms(mk.lease_ms)));
}

// Whether the rollout of `pg` switched the pointer: its target under its generation, or the
// pointer the failure policy settled under the next one. (A back-out writes action "abort".)
bool switched(const Progress& pg, const std::optional<Pointer>& ptr) {
  if (!ptr || ptr->action == "abort") return false;
  if (pg.strategy == "finalize")  // its one pointer write: the acting version is the release
    return ptr->generation == pg.generation && ptr->release == pg.target && ptr->acting == pg.target;
  if (pg.strategy == "rolling")  // its first batch's pointer (overrides) is written at generation + 1
    return ptr->generation > pg.generation && ptr->action != "rollback";
  if (ptr->generation == pg.generation) return ptr->release == pg.target;
  if (ptr->generation == pg.generation + 1) return ptr->release == pg.target || ptr->action == "rollback";
  return false;
}

// The step the dead master finished, as far as the pointer shows: Switch, Start or Fence.
StepKind last_done(const Progress& pg, const Pointer& ptr) {
  if (pg.step_name == "fence") return StepKind::Fence;
  if (pg.step_name == "start" || ptr.generation > pg.generation) return StepKind::Start;
  return StepKind::Switch;
}

struct Resume {
  Share& share;
  MasterOptions opt;
  bool dry_run;
  ResumeReport rep;
  std::optional<Marker> marker;
  std::optional<Progress> pg;
  std::optional<Pointer> ptr;

  void say(const std::string& s) { rep.lines.push_back(s); }

  Status load() {
    if (auto s = share.check(); !s) return s;
    auto mk = share.read_marker();
    if (!mk) return mk.error();
    marker = *mk;
    auto p = read_progress(share);
    if (!p) return p.error();
    pg = *p;
    auto pt = share.read_pointer();
    if (!pt) return pt.error();
    ptr = *pt;
    return ok_status();
  }

  Result<ResumeReport> nothing(const std::string& why) {
    rep.outcome = "nothing";
    say(why);
    return rep;
  }

  // The rollout had not switched: backed out as `abort` does.
  Result<ResumeReport> back_out_dead() {
    const Marker& mk = *marker;
    const std::string at = pg && pg->rollout == mk.nonce ? fmt::format("after step {} ({})", pg->step, pg->step_name)
                                                         : "before its first step was recorded";
    const std::string resumes = ptr ? ptr->release : "nothing";
    rep.outcome = "backed-out";
    rep.release = resumes;
    if (dry_run) {
      say(fmt::format("would back out the {} of {} (generation {}), which died {} before switching the pointer: "
                      "hosts resume {}; the marker is removed",
                      mk.action, mk.release, mk.generation, at, resumes));
      return rep;
    }
    AbortReport arep;
    if (auto s = remove_dead_marker(share, mk, opt, arep); !s) return s.error();
    say(fmt::format("backed out the {} of {} (generation {}), which died {} before switching the pointer: hosts "
                    "resume {}; the marker is removed",
                    mk.action, mk.release, mk.generation, at, arep.resumed.empty() ? resumes : arep.resumed));
    rep.generation = mk.generation;
    return rep;
  }

  // The marker this process holds from now on: the dead master's (same rollout, same nonce), or
  // a new one when it is gone (interrupted after the switch, or `abort` removed it).
  Status take_marker(Marker& m) {
    if (marker) {
      m = *marker;
      m.renewal += 1;
    } else {
      m = make_marker(ptr->generation, pg->action == "finalize" ? "push" : pg->action, pg->target, pg->previous,
                      opt);
      m.nonce = pg->rollout;
    }
    m.master_host = short_hostname();
    m.master_pid = self_pid();
    m.signer = opt.sign_key;
    m.targets = std::vector<std::string>{};
    m.phase = "stop";
    auto w = write_marker(share, m, marker ? MarkerWrite::Replace : MarkerWrite::Create);
    if (!w) return w.error();
    if (!*w) return err(Exit::Busy, fmt::format("{}: another master created the marker first", share.marker_path()));
    return ok_status();
  }

  // The switch is done: the rest of the plan, from the step after the one the pointer shows.
  Result<ResumeReport> go_on() {
    const StepKind from = last_done(*pg, *ptr);
    Progressing pr;
    pr.rec = *pg;
    auto steps = steps_of(pg->plan);
    if (!steps) return steps.error();
    pr.plan.steps = *steps;
    pr.on = !steps->empty();
    std::vector<std::string> left;
    bool after = false;
    for (const auto& s : pr.plan.steps) {
      if (after) left.push_back(step_name(s.kind));
      after = after || s.kind == from;
    }
    say(fmt::format("the {} of {} (generation {}) switched the pointer; {} resumes after step '{}': {}", pg->action,
                    pg->target, pg->generation, dry_run ? "it would go on" : "going on", step_name(from),
                    join(left, ", ")));
    if (dry_run) {
      rep.outcome = "would-resume";
      return rep;
    }
    Marker m;
    if (auto s = take_marker(m); !s) return s.error();
    opt.max_failures = pg->max_failures;
    opt.wait = true;
    SwitchReport srep;
    srep.target = pg->target;
    srep.previous = pg->previous;
    srep.generation = ptr->generation;
    audit_or_say(share, opt, "resume", fmt::format("{} {} -> {} generation {} after step {}", pg->action,
                                                   pg->previous.empty() ? "-" : pg->previous, pg->target,
                                                   pg->generation, step_name(from)),
                 "started");
    auto r = finish_switch(share, m, pg->old, *ptr, pg->hosts, opt, srep, pr, from);
    if (!r) return r.error();
    rep.hosts = r->hosts;
    rep.outcome = !r->undone_to.empty() ? "undone" : r->all_ok() ? "done" : "partial";
    return rep;
  }

  // The dead master's marker, taken over and rewritten as rolling (finalize and rolling go on
  // batch by batch; hosts hold only when a batch names them).
  Status take_marker_as_rolling(Marker& m) {
    if (auto s = take_marker(m); !s) return s;
    m.strategy = "rolling";
    return rewrite_marker(share, m);
  }

  // A finalize that wrote its pointer: the fence (again) and the marker's removal.
  Result<ResumeReport> go_on_finalize() {
    const StepKind from = pg->step_name == "fence" ? StepKind::Fence : StepKind::Switch;
    say(fmt::format("the finalize of {} (generation {}) switched the acting version; {} after step '{}'", pg->target,
                    pg->generation, dry_run ? "it would go on" : "going on", step_name(from)));
    if (dry_run) {
      rep.outcome = "would-resume";
      return rep;
    }
    Marker m;
    if (auto s = take_marker_as_rolling(m); !s) return s.error();
    audit_or_say(share, opt, "resume", fmt::format("finalize acting {} -> {} after step {}", pg->previous, pg->target,
                                                   step_name(from)),
                 "started");
    auto r = resume_finalize(share, *pg, m, *ptr, opt, from);
    if (!r) return r.error();
    rep.outcome = "done";
    return rep;
  }

  // A rolling push that moved at least one batch: on from the batch in flight.
  Result<ResumeReport> go_on_rolling() {
    say(fmt::format("the rolling push of {} moved hosts; {} from step {} ({}{}) of its plan", pg->target,
                    dry_run ? "it would go on" : "going on", pg->step, pg->step_name,
                    pg->batch > 0 ? fmt::format(", batch {} of {}", pg->batch, pg->batches.size()) : ""));
    if (dry_run) {
      rep.outcome = "would-resume";
      return rep;
    }
    Marker m;
    if (auto s = take_marker_as_rolling(m); !s) return s.error();
    audit_or_say(share, opt, "resume", fmt::format("rolling {} -> {} after step {} {}", pg->previous, pg->target,
                                                   pg->step, pg->step_name),
                 "started");
    auto r = resume_rolling(share, *pg, m, *ptr, opt);
    if (!r) return r.error();
    rep.hosts = r->hosts;
    rep.outcome = !r->undone_to.empty() ? "undone" : r->all_ok() ? "done" : "partial";
    return rep;
  }

  // No marker: why there is nothing to resume, or refused (its master lives), or nullopt: go on.
  std::optional<Result<ResumeReport>> without_marker() {
    if (pg && !pg->ended.empty())
      return nothing(fmt::format("nothing to resume: the {} of {} (generation {}) was {}", pg->action, pg->target,
                                 pg->generation, pg->ended == "aborted" ? "ended by abort after its switch" : "backed out"));
    if (!pg || pg->step_name == "release")
      return nothing(pg ? fmt::format("nothing to resume: the {} of {} (generation {}) finished", pg->action,
                                      pg->target, pg->generation)
                        : "nothing to resume: no rollout in progress");
    if (!switched(*pg, ptr))
      return nothing(fmt::format("nothing to resume: the {} of {} (generation {}) was backed out", pg->action,
                                 pg->target, pg->generation));
    if (pg->master_host == short_hostname() && pid_alive(pg->master_pid) && pg->master_pid != self_pid() && !opt.force)
      return Result<ResumeReport>(err(Exit::Busy, fmt::format("{}: the {} of {} by pid {} on this host is still "
                                                              "running; let it finish",
                                                              progress_path(share), pg->action, pg->target,
                                                              pg->master_pid)));
    rep.takeover = "no marker (its master was interrupted, or abort removed it)";
    say(fmt::format("the marker is gone, the {} of {} unfinished after step {} ({})", pg->action, pg->target, pg->step,
                    pg->step_name));
    return std::nullopt;
  }

  Result<ResumeReport> run() {
    if (auto s = load(); !s) return s.error();
    // A signed fleet ignores an unsigned marker and pointer: refused before anything is written
    // (a back-out as abort does, with no marker to rewrite, needs no key either way).
    if (!dry_run && pg && (!marker || pg->rollout == marker->nonce) && switched(*pg, ptr))
      if (auto s = check_signer(share, opt); !s) return s.error();
    if (marker) {
      auto why = takeover_reason(share, *marker, opt);
      if (!why) return why.error();
      rep.takeover = *why;
      say(fmt::format("{} the marker of the {} of {} by {} (pid {}): {}", dry_run ? "would take over" : "taking over",
                      marker->action, marker->release, marker->master_host, marker->master_pid, *why));
      if (!pg || pg->rollout != marker->nonce || !switched(*pg, ptr)) return back_out_dead();
    } else if (auto end = without_marker()) {
      return std::move(*end);
    }
    if (pg->strategy == "rolling") return go_on_rolling();
    if (pg->strategy == "finalize") return go_on_finalize();
    return go_on();
  }
};

}  // namespace

Result<ResumeReport> resume_rollout(Share& share, const MasterOptions& opt, bool dry_run) {
  Resume r{share, opt, dry_run, {}, {}, {}, {}};
  auto out = r.run();
  if (!out) return out;
  if (auto p = share.read_pointer(); p && *p) {
    out->release = (*p)->release;
    out->acting = (*p)->acting.empty() ? (*p)->release : (*p)->acting;
    out->generation = (*p)->generation;
  }
  return out;
}

}  // namespace nfsup
