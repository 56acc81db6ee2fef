// nfsup master: the all-at-once switch.
#include "internal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <variant>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "hash.h"
#include "process.h"
#include "reconfig.h"
#include "trust.h"

namespace nfsup {

// A switch that failed on some hosts keeps its pointer: each failed host gets a host line naming
// the release it still runs (none if that is the pointer's release), and the acting version is
// the lowest release the pointer assigns.
void keep_with_host_lines(Share& share, Pointer& p, const std::vector<std::string>& failed, RolloutState& rs) {
  for (const auto& h : failed) {
    auto st = share.read_status(h);
    std::string v = st && *st ? (*st)->running : "";
    if (v.empty()) continue;
    rs.installed[h] = v;
    if (v == p.release) p.overrides.erase(h);
    else p.overrides[h] = v;
  }
  p.acting = p.release;
  for (const auto& [h, v] : p.overrides)
    if (compare_versions(v, p.acting) < 0) p.acting = v;
}

// An undone switch: waits for the hosts that had started the target to run what pointer `p`
// names for them again; reports them rolled back.
Status wait_undone(Share& share, Marker& m, const Pointer& p, const std::vector<std::string>& moved,
                   const MasterOptions& opt, SwitchReport& rep, RolloutState& rs) {
  auto back = wait_hosts(share, moved, &m, opt,
                         [&](const HostStatus& s) -> std::optional<HostOutcome> {
                           if (s.generation >= p.generation && s.running == p.release_for(s.host) &&
                               (s.state == "running" || s.state == "failed"))
                             return HostOutcome{s.host, "rolled-back", fmt::format("{}; back on {}", rs.note, s.running)};
                           return std::nullopt;
                         },
                         "going back");
  if (!back) return back.error();
  for (const auto& o : *back) rep.hosts.push_back(o);
  for (const auto& h : moved) rs.installed[h] = p.release_for(h);
  rep.undone_to = p.release;
  return ok_status();
}

std::string failure_note(const std::string& target, bool none_started, const std::vector<std::string>& failed,
                         int max_failures) {
  if (none_started) return fmt::format("no host could start {}", target);
  return fmt::format("{} host(s) failed{}: {}", failed.size(),
                     max_failures >= 0 ? fmt::format(" (max {})", max_failures) : "", join(failed, " "));
}

// After an all-at-once switch's hosts have started or failed: applies the failure policy and
// returns the pointer that stands (see nfsup-install(1), WHEN HOSTS FAIL):
//  - a push that no switched host could start, or with more failed hosts than --max-failures
//    (when given), is undone: the old pointer again, under a new generation, and the hosts that
//    started the target go back to what it names for them;
//  - otherwise the pointer stays, with host lines for the failed hosts (keep_with_host_lines).
// Either way the acting version is never a release that no live host runs.
Result<Pointer> settle_switch(Share& share, Marker& m, const std::optional<Pointer>& old, const Pointer& np,
                              const std::vector<HostOutcome>& started, const MasterOptions& opt, SwitchReport& rep,
                              RolloutState& rs) {
  std::vector<std::string> failed, ok;
  for (const auto& o : started) {
    if (o.outcome == "ok") ok.push_back(o.host);
    else if (o.outcome == "failed" || o.outcome == "timeout") failed.push_back(o.host);
    if (o.outcome != "ok") rep.hosts.push_back(o);
  }
  rs.phase = "done";
  if (failed.empty()) {
    for (const auto& h : ok) rep.hosts.push_back({h, "ok", ""});
    return np;
  }
  const bool over = opt.max_failures >= 0 && static_cast<int>(failed.size()) > opt.max_failures;
  // (A switch again to the pointer's own release has nothing to undo to: its failed hosts get
  // host lines, and the acting version comes down to what they run.)
  const bool undo = m.action == "push" && old && old->release != m.release && (ok.empty() || over);
  rs.note = failure_note(m.release, ok.empty(), failed, opt.max_failures);
  Pointer p = undo ? *old : np;
  p.generation = m.generation + 1;
  p.action = undo ? "rollback" : m.action;
  p.updated = utc_now_iso();
  p.updated_by = fmt::format("{}:{}", short_hostname(), self_pid());
  if (!undo) keep_with_host_lines(share, p, failed, rs);
  note(opt, undo ? fmt::format("{}; undoing the {}: current -> {}", rs.note, m.action, p.release)
                 : fmt::format("{}; they keep their release (acting version {})", rs.note, p.acting));
  m.generation = p.generation;
  if (auto s = rewrite_marker(share, m); !s) return s.error();
  if (auto s = write_pointer(share, p, opt); !s) return s.error();
  rep.generation = p.generation;
  rs.acting = p.acting.empty() ? p.release : p.acting;
  rs.phase = undo || ok.empty() ? "failed" : "partial";
  if (!undo) {
    for (const auto& h : ok) rep.hosts.push_back({h, "ok", ""});
    return p;
  }
  rs.note += "; undone";
  if (auto s = wait_undone(share, m, p, ok, opt, rep, rs); !s) return s.error();
  return p;
}

// Waits, holding marker `m`, until each of `go` runs `target` (or failed) under generation `gen`.
Result<std::vector<HostOutcome>> wait_started(Share& share, const std::vector<std::string>& go, Marker& m,
                                                     int64_t gen, const std::string& target, const MasterOptions& opt) {
  return wait_hosts(share, go, &m, opt,
                    [&](const HostStatus& s) -> std::optional<HostOutcome> {
                      if (s.generation < gen) return std::nullopt;
                      if (s.state == "running" && s.running == target) return HostOutcome{s.host, "ok", ""};
                      if (s.state == "failed") return HostOutcome{s.host, "failed", s.reason};
                      return std::nullopt;
                    },
                    "starting");
}

// A wait after the pointer moved was cut short. A signal backs nothing out (the switch is done,
// the hosts go on starting it) but removes the marker, which holds nobody by then.
Error after_switch_error(Share& share, Error e, const std::string& action, const SwitchReport& rep,
                                const std::string& target, int64_t gen, const MasterOptions& opt) {
  if (e.code != Exit::Interrupted) return e;
  release_marker(share, opt);
  audit_or_say(share, opt, action, fmt::format("{} -> {}", rep.previous.empty() ? "-" : rep.previous, target),
                    "switched; interrupted while hosts started");
  return interrupted_error(opt, fmt::format("while hosts were starting {}: the switch is done (generation {}), "
                                            "nothing to back out; hosts go on starting it; 'nfsup-install resume {}' applies the "
                                            "failure policy and fences the acting version",
                                            target, gen, share.root()));
}

// The hosts of `go` start the target (or fail) while the marker, holding nobody, stays up;
// the failure policy settles the pointer (recorded in SHARE/state before the step is).
// Returns the acting version to fence.
Result<std::string> start_and_settle(Share& share, Marker& m, const std::optional<Pointer>& old, const Pointer& np,
                                     const std::vector<std::string>& go, const MasterOptions& opt, SwitchReport& rep,
                                     RolloutState& rs) {
  m.targets = std::vector<std::string>{};
  if (auto s = rewrite_marker(share, m); !s) return s.error();
  note(opt, "hosts restart on the new release");
  auto started = wait_started(share, go, m, np.generation, m.release, opt);
  if (!started) return started.error();
  auto settled = settle_switch(share, m, old, np, *started, opt, rep, rs);
  if (!settled) return settled.error();
  record_rollout(share, rs, opt);
  return settled->acting.empty() ? settled->release : settled->acting;
}

// What SHARE/state says while the hosts start the target of switch `m` (the pointer `np`).
RolloutState switching_state(Share& share, const Marker& m, const Pointer& np, const std::vector<std::string>& go,
                             const MasterOptions& opt) {
  RolloutState rs;
  if (auto last = read_rollout(share); last && *last) rs.migrated = (*last)->migrated;
  rs.acting = np.acting;
  rs.target = m.release;
  rs.phase = opt.wait ? "switching" : "switched";  // "done" only once the hosts have shown it
  rs.master_host = short_hostname();
  rs.master_pid = self_pid();
  rs.lease_ms = opt.lease_ms;
  for (const auto& h : go) rs.installed[h] = m.release;
  return rs;
}

// Backs out of a switch whose pointer has not moved: the old pointer again under the switch's
// generation (so hosts that stopped for it resume at once, not after the lease), then the
// marker goes, even if the pointer could not be written.
Status back_out(Share& share, const std::optional<Pointer>& old, int64_t gen, const MasterOptions& opt) {
  Status wrote = ok_status();
  if (old) {
    Pointer back = *old;
    back.generation = gen;
    back.action = "abort";
    back.updated = utc_now_iso();
    back.updated_by = fmt::format("{}:{}", short_hostname(), self_pid());
    wrote = write_pointer(share, back, opt);
  }
  release_marker(share, opt);
  return wrote;
}

// Another master may have switched between this master's first read of the pointer and its
// marker: the pointer is read again once the marker is ours (nobody else can move it now),
// so that the generation never goes backwards. Returns whether it moved.
Result<bool> reread_pointer_under_marker(Share& share, Result<std::optional<Pointer>>& ptr, const MasterOptions& opt) {
  auto again = share.read_pointer();
  if (!again) {
    release_marker(share, opt);
    return again.error();
  }
  auto gen_of = [](const std::optional<Pointer>& p) { return p ? p->generation : 0; };
  if (gen_of(*again) == gen_of(*ptr)) return false;
  note(opt, fmt::format("{} moved to generation {} ({}) since it was read; going on from there", share.pointer_path(),
                        gen_of(*again), *again ? (*again)->release : "-"));
  ptr = again;
  return true;
}

// The first step of every switch (all-at-once, rolling, finalize): take the marker with
// link() (one master only), then read the pointer again under it. Returns whether the
// pointer moved since `ptr` was read (ptr then holds the new one). `step` names the test
// points around it: <step>-before-marker (NFSUP_STOP_AT), <step>-after-marker (NFSUP_CRASH_AT).
Result<bool> acquire_marker(Share& share, const Marker& m, Result<std::optional<Pointer>>& ptr,
                            const MasterOptions& opt, const std::string& step) {
  if (interrupted(opt)) return interrupted_error(opt, "nothing was switched");
  stop_point((step + "-before-marker").c_str());
  auto created = write_marker(share, m, MarkerWrite::Create);
  if (!created) return created.error();
  if (!*created)
    return err(Exit::Busy, fmt::format("{}: another master created the marker first", share.marker_path()));
  crash_point((step + "-after-marker").c_str());
  return reread_pointer_under_marker(share, ptr, opt);
}

namespace {

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// One all-at-once switch (push, rollback, or a --hosts/--class subset): one method per phase.
struct Switch : StepRunner {
  Share& share;
  const std::string& target;
  const std::string& action;
  const MasterOptions& opt;
  SwitchReport rep;
  Result<std::optional<Pointer>> ptr = std::optional<Pointer>{};
  Fleet hints, fleet;
  Marker m;
  bool partial = false;
  Progressing pr;
  // Learnt as the steps run: the hosts that stopped, the pointer that switched them, SHARE/state,
  // the acting version to fence.
  std::vector<std::string> go;
  Pointer np;
  RolloutState rs;
  std::string acting;

  Switch(Share& s, const std::string& t, const std::string& a, const MasterOptions& o, SwitchReport r)
      : share(s), target(t), action(a), opt(o), rep(std::move(r)), partial(!o.hosts.empty() || !o.cls.empty()) {}

  void from_pointer() {
    rep.previous = *ptr ? (*ptr)->release : "";
    rep.generation = (*ptr ? (*ptr)->generation : 0) + 1;
  }

  Status refuse_if_busy() {
    auto existing = share.read_marker();
    if (!existing) return existing.error();
    if (!*existing) return ok_status();
    return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) holds the marker since {}; if it died, run "
                                       "'nfsup-install abort {}'",
                                       share.marker_path(), (*existing)->action, (*existing)->release,
                                       (*existing)->master_host, (*existing)->master_pid, (*existing)->started,
                                       share.root()));
  }

  // Already the pointer's release: done if every live host runs it; otherwise switch again
  // under a new generation so hosts that refused or failed it try once more.
  Result<bool> already_done() {
    if (!*ptr || (*ptr)->release != target) return false;
    auto f = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!f) return f.error();
    bool all = true;
    for (const auto& h : f->live) {
      auto s = share.read_status(h);
      if (!s || !*s || (*s)->state != "running" || (*s)->running != target) all = false;
    }
    if (all) {
      note(opt, fmt::format("{} is already the current release on every live host; nothing to switch", target));
      return true;
    }
    note(opt, fmt::format("{} is the current release but not every live host runs it; switching again", target));
    return false;
  }

  Status verify() {
    note(opt, fmt::format("verifying release {}", target));
    auto problems = share.verify_release(target);
    if (!problems) return problems.error();
    if (!problems->empty())
      return err(Exit::Integrity, fmt::format("release {} fails verification: {}", target, (*problems)[0]));
    return ok_status();
  }

  // Hosts say in their status whether they vote with local checks. When no live host does,
  // a vote could only accept: the marker starts in its stop phase and saves hosts one poll
  // (a cron-mode host: one tick). A host that does not say (older status) gets a vote phase.
  // (--class names its hosts only after the survey: until then, a vote phase holds nobody.)
  Status acquire() {
    auto h = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!h) return h.error();
    hints = *h;
    m = make_marker(rep.generation, action, target, rep.previous, opt);
    if (!opt.hosts.empty()) m.targets = opt.hosts;
    m.phase = hints.votes || !opt.cls.empty() ? "vote" : "stop";
    auto moved = acquire_marker(share, m, ptr, opt, "switch");
    if (!moved) return moved.error();
    if (*moved) {
      from_pointer();
      m.generation = rep.generation;
      m.previous = rep.previous;
      if (auto s = rewrite_marker(share, m); !s) {
        release_marker(share, opt);
        return s;
      }
    }
    audit_or_say(share, opt, action,
                 fmt::format("start {} -> {} generation {}", or_dash(rep.previous), target, m.generation), "started");
    note(opt, fmt::format("marker written: {} {} -> {} (generation {})", action, or_dash(rep.previous), target,
                          m.generation));
    return ok_status();
  }

  // Which hosts are live, judged by server-stamped times only; a subset keeps only its hosts.
  Status take_fleet() {
    auto st = share.fs().stat(share.marker_path());
    const int64_t now = (st && *st) ? (*st)->mtime_ms : server_now_ms(share);
    auto f = survey(share, now, opt.stale_after_ms);
    if (!f) return f.error();
    fleet = *f;
    if (partial)
      if (auto s = narrow_fleet(); !s) return s;
    for (auto& s : fleet.skipped) {
      note(opt, fmt::format("skipping {}: {}", s.host, s.detail));
      rep.hosts.push_back(s);
    }
    return ok_status();
  }

  // Only the named hosts, or the hosts of one class, take part.
  Status narrow_fleet() {
    std::vector<std::string> keep = targeted(share, fleet.live, opt);
    std::vector<HostOutcome> skipped;
    for (auto& s : fleet.skipped)
      if (opt.hosts.empty() || std::find(opt.hosts.begin(), opt.hosts.end(), s.host) != opt.hosts.end())
        skipped.push_back(s);
    fleet.skipped = skipped;
    fleet.live = keep;
    if (keep.empty()) {
      release_marker(share, opt);
      return err(Exit::Usage, opt.cls.empty() ? "none of the --hosts is live"
                                              : fmt::format("no live host of class '{}'", opt.cls));
    }
    m.targets = keep;
    return rewrite_marker(share, m);
  }

  // The plan this switch runs, and its first progress record (the marker is taken).
  Status start_progress() {
    PlanInput in;
    in.action = action;
    in.from = rep.previous;
    in.to = target;
    in.acting = *ptr ? (*ptr)->acting : "";
    in.hosts = fleet.live;
    in.fleet = fleet.live.size();
    in.vote = m.phase == "vote";
    in.subset = partial;
    in.max_failures = opt.max_failures;
    auto p = build_plan(in);
    if (!p) {
      release_marker(share, opt);
      return p.error();
    }
    pr.plan = *p;
    pr.rec = Progress{};
    pr.rec.rollout = m.nonce;
    pr.rec.generation = m.generation;
    pr.rec.action = action;
    pr.rec.target = target;
    pr.rec.previous = rep.previous;
    pr.rec.hosts = fleet.live;
    pr.rec.policy = "undo-or-keep";
    pr.rec.max_failures = opt.max_failures;
    pr.rec.subset = partial;
    pr.rec.old = *ptr;
    pr.rec.plan = plan_tokens(pr.plan);
    pr.on = true;
    pr.done(share, StepKind::Acquire, opt);
    return ok_status();
  }

  // Votes: every targeted live host runs its checks and answers before anybody stops.
  Status vote() {
    auto go = vote_round(share, m, fleet.live, hints.min_poll_ms, opt, rep,
                         fmt::format("{} -> {}", or_dash(rep.previous), target));
    if (!go) return go.error();
    if (go->size() != fleet.live.size()) {
      fleet.live = *go;
      m.targets = *go;
    }
    m.phase = "stop";
    return rewrite_marker(share, m);
  }

  // Waits for every live host to stop. Returns the hosts that stopped, or ends the switch:
  // backed out (a signal, or a host that never stopped) or an error.
  std::variant<std::vector<std::string>, Result<SwitchReport>> stop() {
    const int64_t gen = m.generation;
    auto stopped = wait_hosts(share, fleet.live, &m, opt,
                              [&](const HostStatus& s) -> std::optional<HostOutcome> {
                                if (s.generation >= gen && (s.state == "stopped" || s.state == "unchanged"))
                                  return HostOutcome{s.host, "ok", ""};
                                return std::nullopt;
                              },
                              "stopping");
    if (!stopped && stopped.error().code == Exit::Interrupted) return interrupted_out();
    if (!stopped) return Result<SwitchReport>(stopped.error());
    std::vector<std::string> go;
    std::vector<HostOutcome> not_stopped;
    for (const auto& o : *stopped) {
      if (o.outcome == "ok") go.push_back(o.host);
      else if (o.outcome == "lost") rep.hosts.push_back(o);
      else not_stopped.push_back(o);
    }
    if (not_stopped.empty()) return go;
    // Some live host never stopped: back out. The pointer is re-written with the old release and
    // the same generation so hosts that did stop resume it.
    note(opt, fmt::format("{} host(s) did not stop; backing out", not_stopped.size()));
    if (auto s = back_out(share, *ptr, gen, opt); !s) return Result<SwitchReport>(s.error());
    audit_or_say(share, opt, action, fmt::format("{} -> {} backed out", rep.previous, target), "failed");
    for (auto& o : not_stopped) rep.hosts.push_back(o);
    return Result<SwitchReport>(rep);
  }

  Result<SwitchReport> interrupted_out() {
    auto b = back_out(share, *ptr, m.generation, opt);
    audit_or_say(share, opt, action,
                 fmt::format("{} -> {} interrupted while hosts stopped; backed out", rep.previous, target),
                 "interrupted");
    if (!b) return b.error();
    return interrupted_error(opt, fmt::format("the {} of {} backed out while hosts were stopping; the marker is "
                                              "removed and hosts resume {}",
                                              action, target, rep.previous.empty() ? "nothing" : rep.previous));
  }

  // Every live host is stopped: the moment to bring shared data to the new format. (A switch
  // of part of the fleet leaves the acting version and the data alone.) A failure backs out.
  Status migrate() {
    if (action != "push" || !*ptr || m.targets.has_value()) return ok_status();
    RolloutState rs;
    if (auto last = read_rollout(share); last && *last) rs = **last;
    std::string from = (*ptr)->acting.empty() ? (*ptr)->release : (*ptr)->acting;
    if (compare_versions(target, from) <= 0) return ok_status();
    auto s = run_migration(share, from, target, rs, m, opt);
    if (s) return s;
    Error e = s.error();
    if (auto b = back_out(share, *ptr, m.generation, opt); !b) e.msg += "; backing out: " + b.error().msg;
    else if (e.code == Exit::Interrupted) e.msg += "; backed out: the marker is removed and hosts resume " + rep.previous;
    audit_or_say(share, opt, action, fmt::format("{} -> {}", rep.previous, target), "failed: " + s.error().msg);
    return e;
  }

  // The pointer that switches: all-at-once, every host runs the target, so it is the acting
  // version; a subset keeps the others on their release and gives the named hosts overrides.
  Pointer new_pointer(const std::vector<std::string>& go) {
    Pointer np;
    np.release = target;
    np.previous = rep.previous;
    np.acting = target;
    if (m.targets.has_value() && *ptr) {
      np = **ptr;
      for (const auto& h : go) np.overrides[h] = target;
      for (auto it = np.overrides.begin(); it != np.overrides.end();)
        it = it->second == np.release ? np.overrides.erase(it) : std::next(it);
      np.acting = np.release;
      for (const auto& [h, v] : np.overrides)
        if (compare_versions(v, np.acting) < 0) np.acting = v;
    }
    np.generation = m.generation;
    np.action = action;
    np.updated = utc_now_iso();
    np.updated_by = fmt::format("{}:{}", short_hostname(), self_pid());
    return np;
  }

  Result<SwitchReport> run() {
    ptr = share.read_pointer();
    if (!ptr) return ptr.error();
    rep.target = target;
    from_pointer();
    if (auto s = refuse_if_busy(); !s) return s.error();
    auto done = already_done();
    if (!done) return done.error();
    if (*done) {
      rep.nothing_to_do = true;
      return rep;
    }
    if (auto s = verify(); !s) return s.error();
    if (auto s = acquire(); !s) return s.error();
    if (auto s = take_fleet(); !s) return s.error();
    if (auto s = start_progress(); !s) return s.error();
    return run_plan(share, pr, 1, *this, opt);  // step 1, acquire, is done (it needs the fleet)
  }

  // ---- the steps, as the engine (run_plan) runs them
  std::optional<StepEnd> run_step(const Step& s) override;  // (defined below the struct)

  std::optional<StepEnd> step_vote() {
    if (auto e = vote(); !e) return StepEnd{e.error(), false};
    pr.rec.hosts = fleet.live;
    return std::nullopt;
  }

  std::optional<StepEnd> step_stop() {
    auto stopped = stop();
    if (auto* end = std::get_if<Result<SwitchReport>>(&stopped)) return StepEnd{std::move(*end), false};
    go = std::get<std::vector<std::string>>(stopped);
    pr.rec.hosts = go;
    crash_point("switch-after-stopped");
    return std::nullopt;
  }

  std::optional<StepEnd> step_switch() {
    np = new_pointer(go);
    if (auto e = write_pointer(share, np, opt); !e) return StepEnd{e.error(), false};
    rs = switching_state(share, m, np, go, opt);
    record_rollout(share, rs, opt);
    crash_point("switch-after-pointer");
    note(opt, fmt::format("current -> {}", target));
    acting = np.acting.empty() ? np.release : np.acting;
    return std::nullopt;
  }

  // The hosts start the target while the marker, holding nobody, stays up (other masters stay
  // out, every host reads the pointer at each poll); the failure policy settles the pointer.
  std::optional<StepEnd> step_start() {
    if (!opt.wait) return std::nullopt;
    auto a = start_and_settle(share, m, *ptr, np, go, opt, rep, rs);
    if (!a) return StepEnd{after_switch_error(share, a.error(), action, rep, target, np.generation, opt), false};
    acting = *a;
    return std::nullopt;
  }

  std::optional<StepEnd> step_fence() {
    if (!opt.wait) return std::nullopt;
    if (auto e = fence_acting(share, m, acting, opt, rep, rs); !e)
      return StepEnd{after_switch_error(share, e.error(), action, rep, target, np.generation, opt), false};
    return std::nullopt;
  }

  std::optional<StepEnd> step_release() {
    if (opt.wait) record_rollout(share, rs, opt);
    if (auto u = share.fs().unlink(share.marker_path()); !u) return StepEnd{u.error(), false};
    crash_point("switch-after-unmark");
    if (!opt.wait) {
      note(opt, "marker removed; hosts restart on the new release");
      for (const auto& h : go) rep.hosts.push_back({h, "ok", "not waited for (--no-wait)"});
      audit_or_say(share, opt, action, fmt::format("{} -> {}", rep.previous, target), "switched");
      return StepEnd{rep, true};
    }
    note(opt, "marker removed");
    std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& b) { return a.host < b.host; });
    if (auto deps = check_dependencies(share, opt.stale_after_ms); deps) rep.dependency_problems = *deps;
    audit_or_say(share, opt, action,
                 fmt::format("{} -> {}{}", or_dash(rep.previous), target,
                             rep.undone_to.empty() ? "" : fmt::format(" undone: {}", rs.note)),
                 !rep.undone_to.empty() ? "undone" : rep.all_ok() ? "ok" : "failed");
    return StepEnd{rep, true};
  }

  // A resume: what the dead master recorded in SHARE/state, as the pointer `np` now stands.
  void take_recorded_state(StepKind last_done) {
    rs = switching_state(share, m, np, go, opt);
    acting = np.acting.empty() ? np.release : np.acting;
    if (last_done == StepKind::Switch) return;
    if (auto last = read_rollout(share); last && *last) rs = **last;
    if (rs.phase == "switching" || rs.phase == "switched")
      rs.phase = np.release != target ? "failed" : np.overrides.empty() ? "done" : "partial";
    rs.acting = acting;
    if (np.release != target) rep.undone_to = np.release;
  }
};

std::optional<StepEnd> Switch::run_step(const Step& s) {
  switch (s.kind) {
    case StepKind::Acquire: return std::nullopt;  // done before the plan could be made
    case StepKind::Vote: return step_vote();
    case StepKind::Stop: return step_stop();
    case StepKind::Migrate:
      if (auto e = migrate(); !e) return StepEnd{e.error(), false};
      return std::nullopt;
    case StepKind::Switch: return step_switch();
    case StepKind::Start: return step_start();
    case StepKind::Fence: return step_fence();
    case StepKind::Release: return step_release();
  }
  return std::nullopt;
}

}  // namespace

Result<SwitchReport> run_switch_impl(Share& share, const std::string& target, const std::string& action,
                                     const MasterOptions& opt, SwitchReport rep) {
  Switch sw(share, target, action, opt, std::move(rep));
  return sw.run();
}

Result<SwitchReport> finish_switch(Share& share, Marker& m, const std::optional<Pointer>& old, const Pointer& np,
                                   const std::vector<std::string>& go, const MasterOptions& opt, SwitchReport rep,
                                   Progressing& pr, StepKind last_done) {
  Switch sw(share, m.release, m.action, opt, std::move(rep));
  sw.ptr = old;
  sw.m = m;
  sw.go = go;
  sw.np = np;
  sw.pr = pr;
  sw.take_recorded_state(last_done);
  return run_plan(share, sw.pr, index_after(sw.pr.plan, last_done), sw, opt);
}

}  // namespace nfsup
