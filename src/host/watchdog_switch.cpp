// nfsup host: the watchdog: votes and switches.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

// Which class of release `version` this host runs, and its modules (name -> version).
bool Watchdog::resolve(const std::string& version, std::string* cls, std::map<std::string, std::string>* mods,
             std::map<std::string, std::string>* hashes, std::string* why) {
  std::string t;
  auto got = share_call<Result<std::optional<Manifest>>>([this, version] { return share_.read_manifest(version); },
                                                         cfg_.share_timeout_ms, &t);
  if (!got) {
    note_share_error(t);
    *why = t;
    return false;
  }
  Result<std::optional<Manifest>> m = std::move(*got);
  if (!m) {
    *why = m.error().msg;
    return false;
  }
  if (!*m) {
    *why = fmt::format("release {} is not on the share", version);
    return false;
  }
  const ClassInfo* c = (*m)->pick_class(cfg_.cls, cfg_.traits);
  *cls = c ? c->name : "";
  for (const auto* mod : (*m)->modules_for(c)) {
    if (mods) (*mods)[mod->name] = mod->version;
    if (hashes) (*hashes)[mod->name] = mod->sha256;
  }
  return true;
}

// The restart is skipped when nothing this host runs changes: both releases are made of
// modules, this host's class gets exactly the same module hashes from both, and the new
// release has no reconfig script or migration hook. The agent keeps running from the old
// release's directory (kept by prune, reported as runs_from).
bool Watchdog::unchanged_for(const std::string& to) {
  if (unchanged_cache_.first == to + "|" + st_.running) return unchanged_cache_.second;
  bool same = false;
  if (!st_.running.empty() && to != st_.running && ctl_->up(st_)) {
    std::string why, c1, c2;
    std::map<std::string, std::string> h1, h2;
    // The target first: a release without modules is never "unchanged", and then the
    // running release's manifest need not be read (this is on the path to stopping).
    if (resolve(to, &c2, nullptr, &h2, &why) && !h2.empty() && resolve(st_.running, &c1, nullptr, &h1, &why)) {
      auto m = share_call<Result<std::optional<Manifest>>>([this, to] { return share_.read_manifest(to); },
                                                           cfg_.share_timeout_ms, &why);
      if (m && *m && **m)
        same = !h1.empty() && h1 == h2 && c1 == c2 && (***m).reconfig.empty() && (***m).migrate.empty();
    }
    // Going back to a release whose configuration backup differs from the configuration in
    // use (the newer release's script rewrote it): the backup is put back, and the agent has
    // to restart to read it.
    if (same && config_restore_due(to)) same = false;
  }
  unchanged_cache_ = {to + "|" + st_.running, same};
  return same;
}

// A downgrade to `to` would restore a configuration backup that differs from the file now.
bool Watchdog::config_restore_due(const std::string& to) {
  if (cfg_.agent.config.empty() || compare_versions(to, st_.running) >= 0) return false;
  flush_backup();
  auto b = read_local(backup_path(cfg_, to));
  if (!b || !*b) return false;  // no backup: a downgrade without one keeps the configuration
  auto c = read_local(cfg_.agent.config);
  return !c || !*c || **c != **b;
}

namespace {

// The modules whose content differs between the two releases' module hashes.
std::vector<std::string> modules_changing(const std::map<std::string, std::string>& now_h,
                                          const std::map<std::string, std::string>& next_h) {
  std::vector<std::string> changing;
  for (const auto& [m, h] : next_h)
    if (auto it = now_h.find(m); it == now_h.end() || it->second != h) changing.push_back(m);
  for (const auto& [m, h] : now_h)
    if (!next_h.count(m)) changing.push_back(m);
  return changing;
}

// The executable regular files in checks_dir (none without one), sorted.
std::vector<std::string> list_checks(const std::string& checks_dir) {
  std::vector<std::string> checks;
  if (checks_dir.empty()) return checks;
  if (DIR* dir = ::opendir(checks_dir.c_str())) {
    while (dirent* de = ::readdir(dir)) {
      std::string n = de->d_name;
      if (n.empty() || n[0] == '.') continue;
      std::string p = path_join(checks_dir, n);
      struct stat cs{};
      if (::stat(p.c_str(), &cs) == 0 && S_ISREG(cs.st_mode) && (cs.st_mode & 0111)) checks.push_back(p);
    }
    ::closedir(dir);
  }
  std::sort(checks.begin(), checks.end());
  return checks;
}

// Why check `c` vetoes: its first output line, else how it ended.
std::string check_refusal(const std::string& c, const Result<RunResult>& r) {
  std::string out;
  if (r)
    for (const auto& l : split(r->output, '\n'))
      if (!l.empty() && out.empty()) out = l;
  return fmt::format("{}: {}", basename_of(c),
                     !out.empty()     ? out
                     : !r             ? r.error().msg
                     : r->timed_out   ? std::string("timed out")
                                      : fmt::format("exit code {}", r->exit_code));
}

}  // namespace

// Runs the checks in checks_dir and writes this host's vote for the marker's generation.
void Watchdog::vote(const Decision& d) {
  if (st_.voted_gen == d.generation && st_.voted_nonce == d.nonce) return;
  std::string cls, why;
  std::map<std::string, std::string> now_h, next_h;
  std::vector<std::string> changing;
  if (resolve(d.to, &cls, nullptr, &next_h, &why)) {
    if (!d.from.empty()) resolve(d.from, &cls, nullptr, &now_h, &why);
    changing = modules_changing(now_h, next_h);
  }
  Vote v;
  v.host = cfg_.host;
  v.generation = d.generation;
  v.nonce = d.nonce;
  v.target = d.to;
  // The release is fetched and verified now, while the agent still runs: a host that cannot
  // make its run tree vetoes, and the stop that follows costs no fetch.
  if (std::string no; !prepare_local(d.to, d.generation, &no)) {
    v.accept = false;
    v.reason = no;
  }
  for (const auto& c : v.accept ? list_checks(cfg_.checks_dir) : std::vector<std::string>{}) {
    SpawnSpec s;
    s.argv = {c};
    s.env = {{"NFSUP_HOST", cfg_.host},
             {"NFSUP_FROM_VERSION", d.from},
             {"NFSUP_TO_VERSION", d.to},
             {"NFSUP_MODULES_CHANGING", join(changing, " ")},
             {"NFSUP_SHARE", cfg_.share}};
    auto r = run_with_timeout(s, 30000);
    if (r && !r->timed_out && r->exit_code == 0) continue;
    v.accept = false;
    v.reason = check_refusal(c, r);
    break;
  }
  std::string t;
  auto res = share_call<Status>([this, v] { return share_.write_vote(v); }, cfg_.share_timeout_ms, &t);
  if (!res) return note_share_error(t);
  if (!*res) return log(LogLevel::Error, res->error().msg);
  st_.voted_gen = d.generation;
  st_.voted_nonce = d.nonce;
  log(LogLevel::Info, fmt::format("{}: voted {} on {} -> {}{}{}", cfg_.host, v.accept ? "accept" : "veto",
                                  d.from.empty() ? "-" : d.from, d.to, v.reason.empty() ? "" : ": ", v.reason));
}

// The SHA-256 of the target's manifest as the share has it now, or "" (share trouble, no
// manifest: the caller then does the work in full).
std::string Watchdog::manifest_digest(const std::string& version) {
  std::string t;
  auto got = share_call<Result<std::optional<std::string>>>(
      [this, version] { return share_.read_manifest_text(version); }, cfg_.share_timeout_ms, &t);
  if (!got || !*got || !**got) return "";
  return sha256_hex(***got);
}

// Work a switch needs that does not depend on the pointer having moved, done while this host
// waits stopped for the unmark (the marker names the target): resolving this host's class
// and modules, hashing the target's files against its manifest, planning the reconfig
// (fetching and checking the script), writing the pending config backup. At the unmark the
// switch only checks that the manifest is byte for byte the one prepared (one read) and
// checks the signature and expiry again. The hashing leaves each host's downtime (for a
// large release on NFS it is the longest part of the restart), and the moment in which
// every host restarts at once carries less work. Only successes are kept: anything that
// fails here is done again, in full, by the switch. Daemons only (a cron tick's memory ends
// with the tick).
void Watchdog::prepare_switch(const std::string& to) {
  if (!opt_.daemon || to.empty() || to == st_.running || ctl_->up(st_)) return;
  std::string key = to + "|" + st_.running;
  if (prepared_.key == key || prepare_tried_ == key) return;
  prepare_tried_ = key;
  flush_backup();
  Prepared p;
  p.key = key;
  p.digest = manifest_digest(to);
  std::string why;
  if (p.digest.empty() || !resolve(to, &p.cls, &p.mods, nullptr, &why)) return;
  int64_t t0 = boot_ms();
  if (runs_local()) {
    if (!verified_copy(to, p.cls, &why)) return;
  } else if (cfg_.verify_before_start) {
    auto got = share_call<Result<std::vector<std::string>>>(
        [this, to, cls = p.cls] { return share_.verify_release(to, cls); }, cfg_.share_timeout_ms * 6, &why,
        cfg_.share_timeout_ms);
    if (!got || !*got || !(*got)->empty()) return;
  }
  auto plan = share_call<Result<ReconfigPlan>>(
      [this, cfg = cfg_, from = st_.running, to] { return plan_reconfig(share_, cfg, from, to); },
      cfg_.share_timeout_ms, &why);
  if (!plan || !*plan) return;
  p.plan = **plan;
  // Read again: what was hashed is this manifest, not one swapped in meanwhile.
  if (manifest_digest(to) != p.digest) return;
  prepared_ = std::move(p);
  log(LogLevel::Info, fmt::format("{}: {} {} while stopped in {}; ready to switch", cfg_.host, to,
                                  cfg_.verify_before_start || runs_local() ? "verified" : "resolved",
                                  format_duration_ms(boot_ms() - t0)));
}

// run_from: local: makes (or finds) the verified local run tree of `to` for this host's class
// before the agent stops (the vote, or the marker's stop phase), so that the agent is down
// for stop + start only. false (and why: "cannot fetch <to>: ...") when it cannot be made; a
// failure is remembered for the marker's generation (not fetched again at every poll).
bool Watchdog::prepare_local(const std::string& to, int64_t gen, std::string* why) {
  if (!runs_local() || to.empty()) return true;
  std::string key = to + "|" + std::to_string(gen);
  if (prep_failed_.first == key) {
    *why = prep_failed_.second;
    return false;
  }
  std::string cls, t;
  int64_t t0 = boot_ms();
  if (!resolve(to, &cls, nullptr, nullptr, &t) || !verified_copy(to, cls, &t)) {
    *why = fmt::format("cannot fetch {}: {}", to, t);
    prep_failed_ = {key, *why};
    log(LogLevel::Error, fmt::format("{}: {}", cfg_.host, *why));
    return false;
  }
  log(LogLevel::Info, fmt::format("{}: {} fetched and verified into {} in {}, before stopping", cfg_.host, to,
                                  cache_dir(to), format_duration_ms(boot_ms() - t0)));
  return true;
}

// Stops the agent for a switch; false while it is still draining or stopping. What was
// checked is kept for the pass that finds it down (a daemon's memory; a cron tick checks again).
bool Watchdog::stopped_for_switch(const std::string& from, const std::string& to, int64_t gen, const ReconfigPlan& plan) {
  if (advance_stop(fmt::format("switching to {}", to), gen)) return true;
  std::string digest = manifest_digest(to);
  if (!digest.empty()) prepared_ = Prepared{to + "|" + from, digest, pending_cls_, pending_mods_, plan};
  pending_.clear();
  return false;
}

// Switch `d` failed for `reason`: back to its `from` release (if the agent is down), and say so.
void Watchdog::switch_failed(const Decision& d, const std::string& reason) {
  const std::string& from = d.from;
  services_.follow_host();
  log(LogLevel::Error, fmt::format("{}: switch {} -> {} failed: {}", cfg_.host, from.empty() ? "-" : from, d.to, reason));
  st_.failed_gen = d.generation;
  if (!from.empty() && !ctl_->up(st_)) {
    std::string w2;
    if (!start_agent(from, &w2))
      log(LogLevel::Error, fmt::format("{}: could not restart {} either: {}", cfg_.host, from, w2));
    else
      log(LogLevel::Info, fmt::format("{}: kept on {}", cfg_.host, from));
  }
  set_state("failed", d.generation, reason);
  publish_status(true);
  save_state();
}

// "" if a signed host may go to `to`; else why not: going below the newest release it accepted
// needs the pointer to be a rollback to `to` signed by a trusted key.
std::string Watchdog::refuses_going_back(const std::string& to) const {
  if (!cfg_.trust.signed_mode() || st_.newest.empty() || compare_versions(to, st_.newest) >= 0) return "";
  if (last_pointer_.action == "rollback" && last_pointer_.release_for(cfg_.host) == to &&
      pointer_signed_by_trusted(last_pointer_, cfg_.trust))
    return "";
  return fmt::format("refusing to go back from {} (newest accepted here) to {}: {} is not a rollback "
                     "signed by a trusted key",
                     st_.newest, to, share_.pointer_path());
}

ServiceChange Watchdog::plan_services(const std::string& from, const std::string& to) {
  // Planned once per switch, while the agent still runs (at the marker, or here).
  if (services_plan_.first == to + "|" + from) return services_plan_.second;
  std::map<std::string, ServiceChange> change;
  std::string why, c1;
  std::map<std::string, std::string> old_h;
  std::optional<Manifest> next;
  if (!from.empty() && resolve(from, &c1, nullptr, &old_h, &why)) {
    auto m = share_call<Result<std::optional<Manifest>>>([this, to] { return share_.read_manifest(to); },
                                                         cfg_.share_timeout_ms, &why);
    if (m && *m && **m) next = std::move(***m);
  }
  std::vector<ModuleInfo> mods;
  if (next)
    for (const auto* mi : next->modules_for(next->pick_class(cfg_.cls, cfg_.traits))) mods.push_back(*mi);
  change = classify_services(cfg_.services, old_h, mods);
  ServiceChange first = change[cfg_.agent.name];
  // A reconfig script, a migration hook or a configuration to put back restarts the agent.
  if (!next || !next->reconfig.empty() || !next->migrate.empty() || config_restore_due(to) || !ctl_->up(st_))
    first = ServiceChange::Replaced;
  services_.retarget(to, change);
  services_plan_ = {to + "|" + from, first};
  std::string list;
  for (const auto& [n, c] : change) list += fmt::format("{}{} {}", list.empty() ? "" : ", ", n, service_change_name(c));
  log(LogLevel::Info, fmt::format("{}: {} -> {}: services: {}", cfg_.host, from.empty() ? "-" : from, to, list));
  return first;
}

bool Watchdog::agent_kept(const std::string& from, const std::string& to) {
  if (!services_.empty() && plan_services(from, to) != ServiceChange::Replaced) return true;
  return unchanged_for(to);
}

// Switch `d` changes none of this host's modules: keep the agent, move the bookkeeping.
void Watchdog::switch_modules_unchanged(const Decision& d) {
  const std::string &from = d.from, &to = d.to;
  if (st_.runs_from.empty()) st_.runs_from = from;
  st_.previous = from;
  st_.running = to;
  st_.cls = pending_cls_;
  st_.modules = pending_mods_;
  pending_.clear();
  st_.failed_gen = 0;
  st_.held_gen = 0;
  st_.held_since_ms = 0;
  if (st_.newest.empty() || compare_versions(to, st_.newest) > 0) st_.newest = to;
  set_state("running", d.generation, fmt::format("modules unchanged; agent not restarted (runs from {})", st_.runs_from));
  log(LogLevel::Info, fmt::format("{}: {} -> {}: {}", cfg_.host, from, to, st_.reason));
  publish_status(true);
  save_state();
}

// How the configuration goes from `from` to `to`, read from the share under its deadline.
Result<ReconfigPlan> Watchdog::read_reconfig_plan(const std::string& from, const std::string& to) {
  std::string t;
  auto got = share_call<Result<ReconfigPlan>>(
      [this, cfg = cfg_, from, to] { return plan_reconfig(share_, cfg, from, to); }, cfg_.share_timeout_ms, &t);
  if (!got) {
    note_share_error(t);
    return err(Exit::Share, "reading the reconfig script: " + t);
  }
  return std::move(*got);
}

// Puts back the configuration kept under `to_old` (the start of `failed` did not work). Best
// effort: the old release is started either way, and a failure here shows in its own start.
void Watchdog::restore_config(const std::string& failed, const std::string& to_old) {
  ReconfigPlan back;
  back.kind = ReconfigPlan::Restore;
  back.from = failed;
  back.to = to_old;
  back.backup_source = backup_path(cfg_, to_old);
  (void)apply_reconfig(cfg_, back, false);
}

void Watchdog::do_switch(const Decision& d) {
  std::string from = d.from, to = d.to;
  // A stop begun by an earlier pass of this switch goes on first; the switch proper (checks
  // again, then reconfig and start) follows once the agent is down.
  if (host::stopping(st_.lc.phase) && !advance_stop(fmt::format("switching to {}", to), d.generation)) return;
  flush_backup();
  // Prepared while this host waited, for this very switch and manifest?
  std::optional<Prepared> prep;
  if (prepared_.key == to + "|" + from && manifest_digest(to) == prepared_.digest) prep = prepared_;
  prepared_ = {};
  prepare_tried_.clear();
  log(LogLevel::Info, fmt::format("{}: switching {} -> {} (generation {}{})", cfg_.host, from.empty() ? "-" : from, to,
                                  d.generation, prep ? "; prepared while stopped" : ""));
  std::string why;
  auto fail = [&](const std::string& reason) { switch_failed(d, reason); };
  if (auto no = refuses_going_back(to); !no.empty()) return fail(no);
  if (prep) {
    pending_ = to;
    pending_cls_ = prep->cls;
    pending_mods_ = prep->mods;
  } else {
    std::string cls;
    std::map<std::string, std::string> mods;
    if (!resolve(to, &cls, &mods, nullptr, &why)) return fail(why);
    pending_ = to;
    pending_cls_ = cls;
    pending_mods_ = mods;
  }
  if (!verify(to, &why, prep.has_value())) return fail(why);
  if (agent_kept(from, to)) return switch_modules_unchanged(d);
  ReconfigPlan plan;
  if (prep) {
    plan = prep->plan;
  } else {
    auto p = read_reconfig_plan(from, to);
    if (!p) return fail(p.error().msg);
    plan = *p;
  }
  if (!stopped_for_switch(from, to, d.generation, plan)) return;
  // A daemon writes the backup of an unchanged configuration later (flush_backup), off the
  // moment in which every host restarts at once; a cron tick writes it now.
  auto applied = apply_reconfig(cfg_, plan, false, opt_.daemon);
  if (!applied) return fail(applied.error().msg);
  if (!applied->backup_path.empty()) pending_backup_ = {applied->backup_path, applied->backup};
  if (plan.kind != ReconfigPlan::Nothing)
    log(LogLevel::Info, fmt::format("{}: config {}: {}", cfg_.host, cfg_.agent.config, applied->message));
  st_.crashes.clear();
  st_.gave_up = false;
  st_.previous = from;
  std::string old_cls = st_.cls;
  auto old_mods = st_.modules;
  st_.cls = pending_cls_;
  st_.modules = pending_mods_;
  bool started = start_agent(to, &why, [&] {
    st_.failed_gen = 0;
    st_.held_gen = 0;
    st_.held_since_ms = 0;
    st_.trial = !from.empty() && from != to;  // dies in its start grace: back to `from`
    if (st_.newest.empty() || compare_versions(to, st_.newest) > 0) st_.newest = to;
    set_state("starting", d.generation, "");
  });
  pending_.clear();
  if (!started) {
    st_.cls = old_cls;
    st_.modules = old_mods;
    // Put the old configuration back before restarting the old release.
    if (!from.empty() && plan.kind != ReconfigPlan::Nothing) restore_config(to, from);
    return fail("starting " + to + ": " + why);
  }
  log(LogLevel::Info, fmt::format("{}: started {}", cfg_.host, to));
  if (runs_local()) {
    st_.cached = to;
    prune_cache({to, from, st_.runs_from});  // (`from` while `to` is on trial)
  }
  publish_status(true);
  save_state();
}

}  // namespace wd
}  // namespace nfsup
