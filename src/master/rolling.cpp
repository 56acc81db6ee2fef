// nfsup master: the rolling upgrade, batch by batch. The batches come from the rollout plan
// (plan.h); one Rolling object holds what the run has learnt, one method per phase.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

#include "internal.h"
#include "plan.h"

namespace nfsup {

namespace {

// The hosts each host's status names as its redundancy group.
std::map<std::string, std::string> groups_of(const std::map<std::string, HostStatus>& st) {
  std::map<std::string, std::string> g;
  for (const auto& [h, s] : st) g[h] = s.group;
  return g;
}

std::optional<HostOutcome> stopped_for(const HostStatus& s, int64_t gen) {
  if (s.generation >= gen && (s.state == "stopped" || s.state == "unchanged")) return HostOutcome{s.host, "ok", ""};
  return std::nullopt;
}

struct Rolling : StepRunner {
  Share& share;
  const std::string& target;
  const MasterOptions& opt;
  SwitchReport rep;
  Result<std::optional<Pointer>> ptr = std::optional<Pointer>{};
  Pointer base, cur;
  std::string min_compat, acting0;
  Fleet fleet;
  std::map<std::string, HostStatus> st;
  std::vector<std::string> todo, vetoed, upgraded, failed;
  RolloutState rs;
  Marker m;
  int64_t gen = 0;
  int max_failures = 0;
  Progressing pr;
  std::vector<std::string> go;  ///< the hosts of the batch in flight that stopped
  bool moved = false;           ///< move_acting() ran
  bool voted = false;           ///< the rollout began with a vote round (its plan's step 2)

  Rolling(Share& s, const std::string& t, const MasterOptions& o, SwitchReport r)
      : share(s), target(t), opt(o), rep(std::move(r)) {}

  // Everything a rolling push checks before it takes the marker.
  Status check_release() {
    if (!base.overrides.empty())
      return err(Exit::Usage, fmt::format("{}: a rollout is unfinished (hosts {} have their own release); roll back "
                                          "or push all-at-once first",
                                          share.pointer_path(), base.overrides.begin()->first));
    auto existing = share.read_marker();
    if (!existing) return existing.error();
    if (*existing)
      return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) is in progress", share.marker_path(),
                                         (*existing)->action, (*existing)->release, (*existing)->master_host,
                                         (*existing)->master_pid));
    auto problems = share.verify_release(target);
    if (!problems) return problems.error();
    if (!problems->empty())
      return err(Exit::Integrity, fmt::format("release {} fails verification: {}", target, (*problems)[0]));
    auto man = share.read_manifest(target);
    if (!man) return man.error();
    min_compat = (*man)->min_compatible;
    return ok_status();
  }

  // The fleet: live hosts, their groups and what they run; none may be below --min-compatible.
  Status check_fleet() {
    auto f = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!f) return f.error();
    fleet = *f;
    for (const auto& h : fleet.live)
      if (auto s = share.read_status(h); s && *s) st[h] = **s;
    std::vector<std::string> incompatible;
    for (const auto& [h, s] : st) {
      std::string v = s.running.empty() ? base.release : s.running;
      if (!min_compat.empty() && compare_versions(v, min_compat) < 0) incompatible.push_back(h + " runs " + v);
    }
    if (!incompatible.empty())
      return err(Exit::Usage, fmt::format("a rolling upgrade to {} would run it beside older releases it cannot run "
                                          "beside ({} declares --min-compatible {}; {}); push it with --strategy "
                                          "all-at-once",
                                          target, target, min_compat, join(incompatible, ", ")));
    if (batch_size(opt.batch, st.size()) < 0)
      return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
    return ok_status();
  }

  void init_state() {
    for (auto& s : fleet.skipped) {
      note(opt, fmt::format("skipping {}: {}", s.host, s.detail));
      rep.hosts.push_back(s);
    }
    for (const auto& [h, s] : st)
      if (!(s.state == "running" && s.running == target)) todo.push_back(h);
      else rep.hosts.push_back({h, "ok", "already running " + target});
    acting0 = base.acting.empty() ? base.release : base.acting;
    if (auto old = read_rollout(share); old && *old) rs.migrated = (*old)->migrated;
    rs.acting = acting0;
    rs.min_supported = min_compat;
    rs.target = target;
    rs.master_host = short_hostname();
    rs.master_pid = self_pid();
    rs.lease_ms = opt.lease_ms;
    for (const auto& [h, s] : st) rs.installed[h] = s.running;
  }

  // Hosts that vote with local checks answer for the whole rollout before its first batch
  // stops, as in an all-at-once push; the marker names only the hosts still to upgrade.
  // Everything above was planned from the pointer read before the marker: if another master
  // switched meanwhile, this plan is stale. Nobody has stopped yet: give the marker back.
  Status acquire(bool votes) {
    m = make_marker(base.generation + 1, "push", target, base.release, opt);
    m.strategy = "rolling";
    m.phase = votes ? "vote" : "stop";
    m.targets = votes ? todo : std::vector<std::string>{};
    auto moved = acquire_marker(share, m, ptr, opt, "rolling");
    if (!moved) return moved.error();
    if (*moved) {
      release_marker(share, opt);
      return err(Exit::Busy, fmt::format("another master switched to {} (generation {}) while this rollout was "
                                         "prepared; nothing was stopped: run it again",
                                         *ptr ? (*ptr)->release : "-", *ptr ? (*ptr)->generation : 0));
    }
    max_failures = std::max(0, opt.max_failures);  // (not given: none tolerated)
    audit_or_say(share, opt, "push",
                 fmt::format("rolling {} -> {} batch {} max-failures {}", base.release, target, opt.batch,
                             max_failures),
                 "started");
    return ok_status();
  }

  Status vote() {
    auto go = vote_round(share, m, todo, fleet.min_poll_ms, opt, rep,
                         fmt::format("rolling {} -> {}", base.release, target));
    if (!go) return go.error();
    for (const auto& h : todo)
      if (std::find(go->begin(), go->end(), h) == go->end()) vetoed.push_back(h);
    todo = *go;
    m.phase = "stop";
    m.targets = std::vector<std::string>{};
    return rewrite_marker(share, m);
  }

  // The batches are planned from the hosts that go on after the vote (vetoed ones left out).
  Result<Plan> plan() const {
    PlanInput pin;
    pin.strategy = "rolling";
    pin.vote = voted;
    pin.from = base.release;
    pin.to = target;
    pin.acting = acting0;
    pin.hosts = todo;
    pin.fleet = st.size();
    pin.groups = groups_of(st);
    pin.batch = opt.batch;
    pin.max_unavailable = opt.max_unavailable;
    pin.max_failures = opt.max_failures;
    pin.hold_acting = opt.hold_acting;
    return build_plan(pin);
  }

  // The batches the dead master finished (their start recorded, or every batch once it was
  // past them): a host the pointer gives the target is upgraded, the others failed.
  size_t take_done_batches(const Progress& pg) {
    const auto batches = pr.plan.batches();
    size_t k = batches.size();
    if (pg.batch > 0) k = pg.step_name == "start" ? pg.batch : pg.batch - 1;
    else if (pg.step_name == "acquire" || pg.step_name == "vote") k = 0;
    k = std::min(k, batches.size());
    for (size_t i = 0; i < k; ++i)
      for (const auto& h : batches[i]) {
        if (cur.release_for(h) == target) {
          upgraded.push_back(h);
          rs.installed[h] = target;
        } else {
          failed.push_back(h);
        }
      }
    return k;
  }

  // A rollout whose master died, from its record `pg`, under the marker this process took over
  // (`taken`), with the pointer `now`: the batch in flight runs again (its hosts that already
  // run the target report it at once), then the batches after it, then the end.
  Result<SwitchReport> resume(const Progress& pg, const Marker& taken, const Pointer& now) {
    base = *pg.old;
    cur = now;
    m = taken;
    gen = std::max(now.generation, taken.generation);
    rep.target = target;
    rep.previous = base.release;
    acting0 = base.acting.empty() ? base.release : base.acting;
    min_compat = now.min_supported;
    max_failures = std::max(0, pg.max_failures);
    todo = pg.hosts;
    vetoed = pg.vetoed;
    if (auto old = read_rollout(share); old && *old) rs = **old;
    rs.target = target;
    rs.master_host = short_hostname();
    rs.master_pid = self_pid();
    rs.lease_ms = opt.lease_ms;
    auto steps = steps_of(pg.plan);
    if (!steps) return steps.error();
    for (auto& st : *steps)
      if (st.batch > 0 && static_cast<size_t>(st.batch) <= pg.batches.size()) st.hosts = pg.batches[st.batch - 1];
    pr.plan.steps = *steps;
    pr.rec = pg;
    pr.on = true;
    if (now.action == "rollback" && now.overrides.empty() && now.release == base.release) {
      release_marker(share, opt);  // the dead master was rolling the upgraded hosts back
      rs.phase = "failed";
      record_rollout(share, rs, opt);
      pr.done(share, StepKind::Release, opt);
      rep.undone_to = base.release;
      return rep;
    }
    return run_batches(take_done_batches(pg));
  }

  void start_progress(const Plan& p) {
    pr.plan = p;
    pr.rec = Progress{};
    pr.rec.rollout = m.nonce;
    pr.rec.generation = m.generation;
    pr.rec.action = "push";
    pr.rec.strategy = "rolling";
    pr.rec.target = target;
    pr.rec.previous = base.release;
    pr.rec.hosts = todo;
    pr.rec.vetoed = vetoed;
    pr.rec.policy = "roll-back-upgraded";
    pr.rec.max_failures = max_failures;
    pr.rec.batches = p.batches();
    pr.rec.plan = plan_tokens(p);
    pr.rec.old = base;
    pr.on = true;
  }

  // Undo: every upgraded host goes back to the base release under a new generation; after a
  // failure the master waits for them, after a signal it does not.
  Result<SwitchReport> fail(const std::string& why, bool wait_back) {
    note(opt, why + "; rolling the upgraded hosts back to " + base.release);
    cur.overrides.clear();
    cur.generation = ++gen;
    cur.action = "rollback";
    m.generation = gen;
    m.targets = std::vector<std::string>{};
    if (auto s = rewrite_marker(share, m); !s)  // the pointer below still sends the hosts back
      note(opt, fmt::format("could not rewrite the marker for the undo: {}", s.error().msg));
    if (auto s = write_pointer(share, cur, opt); !s) {
      release_marker(share, opt);
      return s.error();
    }
    if (wait_back) wait_rolled_back();
    release_marker(share, opt);
    rs.phase = "failed";
    rs.note = why;
    record_rollout(share, rs, opt);
    audit_or_say(share, opt, "push", fmt::format("rolling {} -> {}", base.release, target), "rolled back: " + why);
    for (const auto& h : upgraded) rep.hosts.push_back({h, "rolled-back", why});
    rep.generation = gen;
    return rep;
  }

  void wait_rolled_back() {
    const int64_t g = gen;
    const std::string& back_to = base.release;
    auto back = wait_hosts(share, upgraded, &m, opt,
                           [&](const HostStatus& s) -> std::optional<HostOutcome> {
                             if (s.generation >= g && s.running == back_to &&
                                 (s.state == "running" || s.state == "failed"))
                               return HostOutcome{s.host, "ok", ""};
                             return std::nullopt;
                           },
                           "rolling back");
    if (!back)  // the marker goes anyway: the pointer already sends every host back
      note(opt, fmt::format("waiting for the hosts to roll back: {}", back.error().msg));
  }

  Result<SwitchReport> interrupted_out(const std::string& when) {
    auto r = fail("interrupted " + when, false);
    if (!r) return r.error();
    return interrupted_error(opt, fmt::format("the rolling push of {} backed out {}: every host returns to {}; the "
                                              "marker is removed",
                                              target, when, base.release));
  }

  // ---- the steps, as the engine (run_plan) runs them. A batch: stop it, give it the target by
  // overrides, wait for it to start; the rollout ends in a batch only when it is backed out,
  // fails beyond the budget, or an error.
  std::optional<StepEnd> run_step(const Step& s) override;  // (defined below the struct)

  std::optional<StepEnd> batch_stop(const Step& s) {
    const size_t bi = static_cast<size_t>(s.batch), nbatches = pr.plan.batches().size();
    if (bi > 1 && interrupted(opt)) return StepEnd{interrupted_out("between batches"), false};
    gen += 1;
    m.generation = gen;
    m.targets = s.hosts;
    rs.phase = fmt::format("batch {}/{}", bi, std::max(nbatches, bi));
    record_rollout(share, rs, opt);
    if (auto e = rewrite_marker(share, m); !e) return StepEnd{e.error(), false};
    note(opt, fmt::format("batch {}: stopping {}", bi, join(s.hosts, " ")));
    const int64_t g = gen;
    auto stopped = wait_hosts(share, s.hosts, &m, opt, [&](const HostStatus& h) { return stopped_for(h, g); },
                              "stopping");
    if (!stopped && stopped.error().code == Exit::Interrupted)
      return StepEnd{interrupted_out("while hosts were stopping"), false};
    if (!stopped) return StepEnd{stopped.error(), false};
    go.clear();
    for (const auto& o : *stopped) {
      if (o.outcome == "ok") go.push_back(o.host);
      else rep.hosts.push_back(o);
    }
    return std::nullopt;
  }

  std::optional<StepEnd> batch_switch() {
    for (const auto& h : go) cur.overrides[h] = target;
    cur.generation = gen;
    cur.action = "push";
    if (auto e = write_pointer(share, cur, opt); !e) return StepEnd{e.error(), false};
    m.targets = std::vector<std::string>{};
    if (auto e = rewrite_marker(share, m); !e) return StepEnd{e.error(), false};
    return std::nullopt;
  }

  std::optional<StepEnd> batch_start() {
    auto started = wait_started(share, go, m, gen, target, opt);
    if (!started && started.error().code == Exit::Interrupted)
      return StepEnd{interrupted_out("while hosts were starting"), false};
    if (!started) return StepEnd{started.error(), false};
    take_started(*started);
    if (static_cast<int>(failed.size()) > max_failures)
      return StepEnd{fail(fmt::format("{} host(s) failed (max {}): {}", failed.size(), max_failures,
                                      join(failed, " ")),
                          true),
                     false};
    return std::nullopt;
  }

  void take_started(const std::vector<HostOutcome>& started) {
    for (const auto& o : started) {
      if (o.outcome == "ok") {
        upgraded.push_back(o.host);
        rs.installed[o.host] = target;
      } else {
        failed.push_back(o.host);
        cur.overrides.erase(o.host);  // it went back to its old release by itself
        rep.hosts.push_back(o);
      }
    }
    record_rollout(share, rs, opt);
  }

  // Every live host has moved (or failed within the budget): the pointer names the target; the
  // acting version is the lowest release installed on a live host, reached through the hook.
  Status move_acting() {
    if (moved) return ok_status();
    moved = true;
    std::string acting = target;
    for (const auto& [h, v] : rs.installed)
      if (!v.empty() && compare_versions(v, acting) < 0) acting = v;
    cur.overrides.clear();
    for (const auto& h : failed) cur.overrides[h] = rs.installed[h].empty() ? base.release : rs.installed[h];
    for (const auto& h : vetoed) cur.overrides[h] = rs.installed[h].empty() ? base.release : rs.installed[h];
    cur.release = target;
    cur.previous = base.release;
    cur.generation = ++gen;
    m.generation = gen;
    cur.acting = acting0;
    if (acting == acting0 || opt.hold_acting) return ok_status();
    if (auto s = run_migration(share, acting0, acting, rs, m, opt); !s) {
      Error e = s.error();
      if (auto w = write_pointer(share, cur, opt); !w) e.msg += "; writing the pointer: " + w.error().msg;
      else if (e.code == Exit::Interrupted)
        e.msg += fmt::format("; backed out: hosts run {}, the acting version stays {}", target, acting0);
      release_marker(share, opt);
      rs.phase = "failed";
      rs.note = s.error().msg;
      record_rollout(share, rs, opt);
      return e;
    }
    cur.acting = acting;
    return ok_status();
  }

  // Every live host has moved (or failed within the budget): the pointer names the target.
  std::optional<StepEnd> final_switch() {
    if (auto e = move_acting(); !e) return StepEnd{e.error(), false};
    if (auto e = write_pointer(share, cur, opt); !e) return StepEnd{e.error(), false};
    rs.acting = cur.acting;
    rs.phase = cur.acting == target ? "done" : opt.hold_acting ? "held" : "partial";
    return std::nullopt;
  }

  std::optional<StepEnd> fence() {
    if (auto e = fence_acting(share, m, cur.acting, opt, rep, rs); !e) {
      release_marker(share, opt);
      return StepEnd{e.error(), false};
    }
    return std::nullopt;
  }

  Result<SwitchReport> release() {
    release_marker(share, opt);
    record_rollout(share, rs, opt);
    note(opt, fmt::format("rollout of {} {}; acting version {}", target, rs.phase == "done" ? "complete" : rs.phase,
                          cur.acting));
    for (const auto& h : upgraded) rep.hosts.push_back({h, "ok", ""});
    rep.generation = gen;
    std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& c) { return a.host < c.host; });
    if (auto deps = check_dependencies(share, opt.stale_after_ms); deps) rep.dependency_problems = *deps;
    audit_or_say(share, opt, "push", fmt::format("rolling {} -> {} acting {}", base.release, target, cur.acting),
                 rep.all_ok() ? "ok" : "failed");
    return rep;
  }

  Result<SwitchReport> run() {
    ptr = share.read_pointer();
    if (!ptr) return ptr.error();
    if (!*ptr) return err(Exit::Usage, "the first release must be pushed all-at-once (no release runs yet)");
    base = **ptr;
    rep.target = target;
    rep.previous = base.release;
    if (auto s = check_release(); !s) return s.error();
    if (auto s = check_fleet(); !s) return s.error();
    init_state();
    const bool votes = fleet.votes && !todo.empty();
    if (auto s = acquire(votes); !s) return s.error();
    voted = votes;
    if (votes)
      if (auto s = vote(); !s) return s.error();
    cur = base;
    cur.min_supported = min_compat;
    cur.acting = acting0;
    gen = m.generation;
    auto p = plan();
    if (!p) {
      release_marker(share, opt);
      return p.error();
    }
    start_progress(*p);
    pr.done(share, StepKind::Acquire, opt);
    return run_batches(0);
  }

  // The plan from batch first+1 (0: the first), through the engine.
  Result<SwitchReport> run_batches(size_t first) {
    size_t from = index_after(pr.plan, StepKind::Start, static_cast<int>(first));
    if (first == 0) from = index_after(pr.plan, StepKind::Acquire);  // (a vote step: held before the plan)
    return run_plan(share, pr, from, *this, opt);
  }
};

std::optional<StepEnd> Rolling::run_step(const Step& s) {
  switch (s.kind) {
    case StepKind::Acquire:
    case StepKind::Vote: return std::nullopt;  // done before the batches could be planned
    case StepKind::Stop: return batch_stop(s);
    case StepKind::Switch: return s.batch > 0 ? batch_switch() : final_switch();
    case StepKind::Start: return batch_start();
    case StepKind::Migrate:
      if (auto e = move_acting(); !e) return StepEnd{e.error(), false};
      return std::nullopt;
    case StepKind::Fence: return fence();
    case StepKind::Release: return StepEnd{release(), true};
  }
  return std::nullopt;
}

}  // namespace

Result<SwitchReport> resume_rolling(Share& share, const Progress& pg, const Marker& taken, const Pointer& now,
                                    const MasterOptions& opt) {
  Rolling r(share, pg.target, opt, SwitchReport{});
  return r.resume(pg, taken, now);
}

Result<SwitchReport> run_rolling_impl(Share& share, const std::string& target, const MasterOptions& opt,
                                      SwitchReport rep) {
  Rolling r(share, target, opt, std::move(rep));
  return r.run();
}

}  // namespace nfsup
