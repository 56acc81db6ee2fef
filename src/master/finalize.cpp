// nfsup master: finalize: the acting version held back by --hold-acting moves to the release.
//
// A plan of its own (plan_finalize: acquire, migrate, switch, fence, release) run by the one
// engine loop (run_plan), so it is recorded in SHARE/progress after every step, passes the
// crash points "<step>-done", and `resume` finishes a finalize whose master died: before its
// pointer write it is backed out (nothing changed for any host), after it the fence and the
// marker's removal run again. The marker stops nobody (no targets).
#include <fmt/format.h>

#include "internal.h"

namespace nfsup {

namespace {

std::string acting_of(const Pointer& p) { return p.acting.empty() ? p.release : p.acting; }

struct Finalize : StepRunner {
  Share& share;
  const MasterOptions& opt;
  Marker m;
  Pointer cur;          ///< the pointer finalize replaces, then the one it wrote
  std::string acting;   ///< the acting version it replaces
  RolloutState rs;
  SwitchReport fenced;
  Progressing pr;

  Finalize(Share& s, const MasterOptions& o) : share(s), opt(o) {}

  // The plan, and its first progress record (the marker is taken).
  Status start_progress() {
    PlanInput in;
    in.action = "finalize";
    in.from = cur.release;
    in.to = cur.release;
    in.acting = acting;
    auto p = build_plan(in);
    if (!p) return p.error();
    pr.plan = *p;
    pr.rec = Progress{};
    pr.rec.rollout = m.nonce;
    pr.rec.generation = m.generation;
    pr.rec.action = "finalize";
    pr.rec.strategy = "finalize";
    pr.rec.target = cur.release;
    pr.rec.previous = acting;
    pr.rec.policy = "back-out";
    pr.rec.max_failures = 0;
    pr.rec.old = cur;
    pr.rec.plan = plan_tokens(pr.plan);
    pr.on = true;
    pr.done(share, StepKind::Acquire, opt);
    return ok_status();
  }

  StepEnd fail(Error e) {
    release_marker(share, opt);
    return StepEnd{std::move(e), false};
  }

  std::optional<StepEnd> step_migrate() {
    auto mig = run_migration(share, acting, cur.release, rs, m, opt);
    if (mig) return std::nullopt;
    Error e = mig.error();
    if (e.code == Exit::Interrupted) {
      e.msg += fmt::format("; backed out: the acting version stays {}; the marker is removed", acting);
      audit_or_say(share, opt, "finalize", fmt::format("acting {} -> {}", acting, cur.release), "interrupted");
    }
    return fail(e);
  }

  std::optional<StepEnd> step_switch() {
    Pointer np = cur;
    np.acting = np.release;
    np.generation = m.generation;
    np.updated = utc_now_iso();
    np.updated_by = fmt::format("{}:{}", short_hostname(), self_pid());
    if (auto s = write_pointer(share, np, opt); !s) return fail(s.error());
    cur = np;
    rs.acting = cur.release;
    rs.target = cur.release;
    rs.phase = "done";
    rs.note.clear();
    return std::nullopt;
  }

  std::optional<StepEnd> step_fence() {
    if (auto s = fence_acting(share, m, cur.release, opt, fenced, rs); !s) return fail(s.error());
    return std::nullopt;
  }

  std::optional<StepEnd> step_release() {
    release_marker(share, opt);
    record_rollout(share, rs, opt);
    audit_or_say(share, opt, "finalize", fmt::format("acting {} -> {}", acting, cur.release),
                 rs.phase == "done" ? "ok" : "failed");
    SwitchReport rep = fenced;
    rep.target = cur.release;
    rep.previous = acting;
    rep.generation = cur.generation;
    if (rs.phase == "done") return StepEnd{rep, true};
    std::vector<std::string> lines;
    for (const auto& h : fenced.hosts)
      if (h.outcome != "stale") lines.push_back(fmt::format("{}: {}", h.host, h.detail));
    return StepEnd{err(Exit::Failed, fmt::format("acting version {} -> {}, but not every live host has taken it:\n  {}",
                                                 acting, cur.release, join(lines, "\n  "))),
                   true};
  }

  std::optional<StepEnd> run_step(const Step& s) override {
    switch (s.kind) {
      case StepKind::Migrate: return step_migrate();
      case StepKind::Switch: return step_switch();
      case StepKind::Fence: return step_fence();
      case StepKind::Release: return step_release();
      default: return std::nullopt;  // Acquire: done before the plan; finalize has no other steps
    }
  }
};

// Why finalize has nothing to do (a message) or cannot (an error); nullopt: it can go on.
std::optional<Result<std::string>> finalize_refusal(const std::optional<Pointer>& p) {
  if (!p) return Result<std::string>(err(Exit::Usage, "nothing has been pushed yet"));
  if (acting_of(*p) == p->release && p->overrides.empty()) return Result<std::string>("acting version is already " + acting_of(*p));
  if (!p->overrides.empty())
    return Result<std::string>(err(Exit::Usage, fmt::format("hosts {} do not run {} yet; cannot finalize",
                                                            p->overrides.begin()->first, p->release)));
  return std::nullopt;
}

Result<std::string> said(const Result<SwitchReport>& r) {
  if (!r) return r.error();
  return fmt::format("acting version {} -> {}", r->previous, r->target);
}

}  // namespace

Result<std::string> finalize(Share& share, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (auto r = finalize_refusal(*ptr)) return *r;
  Finalize f(share, opt);
  f.m = make_marker((*ptr)->generation + 1, "push", (*ptr)->release, acting_of(**ptr), opt);
  f.m.strategy = "rolling";
  f.m.targets = std::vector<std::string>{};  // holds the lock, stops nobody
  auto moved = acquire_marker(share, f.m, ptr, opt, "finalize");
  if (!moved) return moved.error();
  if (*moved) {
    if (auto r = finalize_refusal(*ptr)) {
      release_marker(share, opt);
      return *r;
    }
    f.m.generation = (*ptr)->generation + 1;
    f.m.release = (*ptr)->release;
    f.m.previous = acting_of(**ptr);
    if (auto s = rewrite_marker(share, f.m); !s) {
      release_marker(share, opt);
      return s.error();
    }
  }
  f.cur = **ptr;
  f.acting = acting_of(f.cur);
  if (auto old = read_rollout(share); old && *old) f.rs = **old;
  if (auto s = f.start_progress(); !s) {
    release_marker(share, opt);
    return s.error();
  }
  return said(run_plan(share, f.pr, 1, f, opt));  // step 1, acquire, is done
}

Result<SwitchReport> resume_finalize(Share& share, const Progress& pg, const Marker& taken, const Pointer& now,
                                     const MasterOptions& opt, StepKind last_done) {
  Finalize f(share, opt);
  f.m = taken;
  f.cur = now;
  f.acting = pg.previous;
  if (auto old = read_rollout(share); old && *old) f.rs = **old;
  f.rs.acting = now.release;
  f.rs.target = now.release;
  f.rs.phase = "done";
  f.pr.rec = pg;
  auto steps = steps_of(pg.plan);
  if (!steps) return steps.error();
  f.pr.plan.action = "finalize";
  f.pr.plan.strategy = "finalize";
  f.pr.plan.steps = *steps;
  f.pr.on = true;
  return run_plan(share, f.pr, index_after(f.pr.plan, last_done), f, opt);
}

}  // namespace nfsup
