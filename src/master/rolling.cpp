// nfsup master: the rolling upgrade, batch by batch.
#include "internal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "hash.h"
#include "process.h"
#include "reconfig.h"
#include "trust.h"

namespace nfsup {

int batch_size(const std::string& spec, size_t n) {
  if (!spec.empty() && spec.back() == '%') {
    auto p = parse_i64(spec.substr(0, spec.size() - 1));
    if (!p || *p <= 0) return -1;
    return std::max<int>(1, static_cast<int>((static_cast<int64_t>(n) * *p + 99) / 100));
  }
  auto v = parse_i64(spec);
  return v && *v > 0 ? static_cast<int>(*v) : -1;
}

// Takes the next batch out of `remaining` (in order): at most b hosts, at most
// max_unavailable of any one redundancy group.
std::vector<std::string> next_batch(std::vector<std::string>& remaining,
                                           const std::map<std::string, HostStatus>& st, int b, int max_unavailable) {
  std::vector<std::string> batch, rest;
  std::map<std::string, int> per_group;
  for (const auto& h : remaining) {
    auto it = st.find(h);
    const std::string g = it == st.end() ? "" : it->second.group;
    if (static_cast<int>(batch.size()) < b && (g.empty() || per_group[g] < max_unavailable)) {
      batch.push_back(h);
      if (!g.empty()) ++per_group[g];
    } else {
      rest.push_back(h);
    }
  }
  remaining = rest;
  return batch;
}

Result<SwitchReport> run_rolling_impl(Share& share, const std::string& target, const MasterOptions& opt,
                                      SwitchReport rep) {
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (!*ptr) return err(Exit::Usage, "the first release must be pushed all-at-once (no release runs yet)");
  Pointer base = **ptr;
  if (!base.overrides.empty())
    return err(Exit::Usage, fmt::format("{}: a rollout is unfinished (hosts {} have their own release); roll back or "
                                        "push all-at-once first",
                                        share.pointer_path(), base.overrides.begin()->first));
  rep.target = target;
  rep.previous = base.release;
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
  const std::string min_compat = (*man)->min_compatible;

  // The fleet: live hosts, their groups and what they run.
  auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  std::map<std::string, HostStatus> st;
  for (const auto& h : fleet->live) {
    auto s = share.read_status(h);
    if (s && *s) st[h] = **s;
  }
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
  int b = batch_size(opt.batch, st.size());
  if (b < 0) return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
  for (auto& s : fleet->skipped) {
    note(opt, fmt::format("skipping {}: {}", s.host, s.detail));
    rep.hosts.push_back(s);
  }
  std::vector<std::string> todo;
  for (const auto& [h, s] : st)
    if (!(s.state == "running" && s.running == target)) todo.push_back(h);
    else rep.hosts.push_back({h, "ok", "already running " + target});

  const std::string acting0 = base.acting.empty() ? base.release : base.acting;
  RolloutState rs;
  if (auto old = read_rollout(share); old && *old) rs.migrated = (*old)->migrated;
  rs.acting = acting0;
  rs.min_supported = min_compat;
  rs.target = target;
  rs.master_host = short_hostname();
  rs.master_pid = getpid();
  rs.lease_ms = opt.lease_ms;
  for (const auto& [h, s] : st) rs.installed[h] = s.running;

  Marker m = make_marker(base.generation + 1, "push", target, base.release, opt);
  m.strategy = "rolling";
  // Hosts that vote with local checks answer for the whole rollout before its first batch
  // stops, as in an all-at-once push; the marker names only the hosts still to upgrade.
  const bool votes = fleet->votes && !todo.empty();
  std::vector<std::string> vetoed;  // skipped after a veto (--skip-vetoed): they keep their release
  m.phase = votes ? "vote" : "stop";
  m.targets = votes ? todo : std::vector<std::string>{};
  // Everything above was planned from the pointer read before the marker: if another master
  // switched meanwhile, this plan is stale. Nobody has stopped yet: give the marker back.
  if (auto moved = acquire_marker(share, m, ptr, opt, "rolling"); !moved) {
    return moved.error();
  } else if (*moved) {
    release_marker(share, opt);
    return err(Exit::Busy, fmt::format("another master switched to {} (generation {}) while this rollout was "
                                       "prepared; nothing was stopped: run it again",
                                       *ptr ? (*ptr)->release : "-", *ptr ? (*ptr)->generation : 0));
  }
  const int max_failures = std::max(0, opt.max_failures);  // (not given: none tolerated)
  audit_or_say(share, opt, "push", fmt::format("rolling {} -> {} batch {} max-failures {}", base.release, target, opt.batch,
                                        max_failures),
                    "started");
  if (votes) {
    auto go = vote_round(share, m, todo, fleet->min_poll_ms, opt, rep,
                         fmt::format("rolling {} -> {}", base.release, target));
    if (!go) return go.error();
    for (const auto& h : todo)
      if (std::find(go->begin(), go->end(), h) == go->end()) vetoed.push_back(h);
    todo = *go;
    m.phase = "stop";
    m.targets = std::vector<std::string>{};
    if (auto s = rewrite_marker(share, m); !s) return s.error();
  }
  Pointer cur = base;
  cur.min_supported = min_compat;
  cur.acting = acting0;
  std::vector<std::string> upgraded, failed;
  int64_t gen = m.generation;
  size_t nbatches = todo.empty() ? 0 : (todo.size() + b - 1) / b, bi = 0;

  // Undo: every upgraded host goes back to the base release under a new generation; after a
  // failure the master waits for them, after a signal it does not.
  auto finish_fail = [&](const std::string& why, bool wait_back) -> Result<SwitchReport> {
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
    if (wait_back) {
      auto back = wait_hosts(share, upgraded, &m, opt,
                       [&](const HostStatus& s) -> std::optional<HostOutcome> {
                         if (s.generation >= gen && s.running == base.release &&
                             (s.state == "running" || s.state == "failed"))
                           return HostOutcome{s.host, "ok", ""};
                         return std::nullopt;
                       },
                       "rolling back");
      if (!back)  // the marker goes anyway: the pointer already sends every host back
        note(opt, fmt::format("waiting for the hosts to roll back: {}", back.error().msg));
    }
    release_marker(share, opt);
    rs.phase = "failed";
    rs.note = why;
    record_rollout(share, rs, opt);
    audit_or_say(share, opt, "push", fmt::format("rolling {} -> {}", base.release, target), "rolled back: " + why);
    for (const auto& h : upgraded) rep.hosts.push_back({h, "rolled-back", why});
    rep.generation = gen;
    return rep;
  };
  auto interrupted_out = [&](const std::string& when) -> Result<SwitchReport> {
    auto r = finish_fail("interrupted " + when, false);
    if (!r) return r.error();
    return interrupted_error(opt, fmt::format("the rolling push of {} backed out {}: every host returns to {}; the "
                                              "marker is removed",
                                              target, when, base.release));
  };

  std::vector<std::string> remaining = todo;
  while (!remaining.empty()) {
    if (interrupted(opt)) return interrupted_out("between batches");
    std::vector<std::string> batch = next_batch(remaining, st, b, opt.max_unavailable);
    ++bi;
    gen += 1;
    m.generation = gen;
    m.targets = batch;
    rs.phase = fmt::format("batch {}/{}", bi, std::max(nbatches, bi));
    record_rollout(share, rs, opt);
    if (auto s = rewrite_marker(share, m); !s) return s.error();
    note(opt, fmt::format("batch {}: stopping {}", bi, join(batch, " ")));
    auto stopped = wait_hosts(share, batch, &m, opt,
                              [&](const HostStatus& s) -> std::optional<HostOutcome> {
                                if (s.generation >= gen && (s.state == "stopped" || s.state == "unchanged"))
                                  return HostOutcome{s.host, "ok", ""};
                                return std::nullopt;
                              },
                              "stopping");
    if (!stopped && stopped.error().code == Exit::Interrupted) return interrupted_out("while hosts were stopping");
    if (!stopped) return stopped.error();
    std::vector<std::string> go;
    for (const auto& o : *stopped) {
      if (o.outcome == "ok") go.push_back(o.host);
      else rep.hosts.push_back(o);
    }
    for (const auto& h : go) cur.overrides[h] = target;
    cur.generation = gen;
    cur.action = "push";
    if (auto s = write_pointer(share, cur, opt); !s) return s.error();
    m.targets = std::vector<std::string>{};
    if (auto s = rewrite_marker(share, m); !s) return s.error();
    auto started = wait_started(share, go, m, gen, target, opt);
    if (!started && started.error().code == Exit::Interrupted) return interrupted_out("while hosts were starting");
    if (!started) return started.error();
    for (const auto& o : *started) {
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
    if (static_cast<int>(failed.size()) > max_failures)
      return finish_fail(fmt::format("{} host(s) failed (max {}): {}", failed.size(), max_failures, join(failed, " ")),
                         true);
  }
  // Every live host has moved (or failed within the budget). The acting version is the lowest
  // release installed on a live host.
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
  if (acting != acting0 && !opt.hold_acting) {
    if (auto s = run_migration(share, acting0, acting, rs, m, opt); !s) {
      cur.acting = acting0;
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
  } else {
    cur.acting = acting0;
  }
  if (auto s = write_pointer(share, cur, opt); !s) return s.error();
  rs.acting = cur.acting;
  rs.phase = cur.acting == target ? "done" : opt.hold_acting ? "held" : "partial";
  if (auto s = fence_acting(share, m, cur.acting, opt, rep, rs); !s) {
    release_marker(share, opt);
    return s.error();
  }
  release_marker(share, opt);
  record_rollout(share, rs, opt);
  note(opt, fmt::format("rollout of {} {}; acting version {}", target,
                        rs.phase == "done" ? "complete" : rs.phase, cur.acting));
  for (const auto& h : upgraded) rep.hosts.push_back({h, "ok", ""});
  rep.generation = gen;
  std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& c) { return a.host < c.host; });
  if (auto deps = check_dependencies(share, opt.stale_after_ms); deps) rep.dependency_problems = *deps;
  audit_or_say(share, opt, "push", fmt::format("rolling {} -> {} acting {}", base.release, target, cur.acting),
                    rep.all_ok() ? "ok" : "failed");
  return rep;
}

}  // namespace nfsup
