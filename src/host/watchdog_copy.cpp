// nfsup host: the watchdog: verification and the local copies of releases.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

// Keeps a local copy of the run tree of a release this host verified, so that it can
// restart its agent while the share is unreachable. Copied under the share deadline;
// published locally by rename. Older copies are dropped.
void Watchdog::cache_release(const std::string& version) {
  std::string dst = cache_dir(version);
  struct stat cs{};
  if (::stat(dst.c_str(), &cs) == 0) {  // published earlier, by rename after a verified copy
    st_.cached = version;
    return;
  }
  std::string tmp = dst + ".tmp";
  ::mkdir(path_join(cfg_.state_dir, "cache").c_str(), 0755);
  (void)remove_tree(tmp);
  std::string why;
  int64_t limit = cfg_.share_timeout_ms * 6;
  // Copied in-process from the manifest, each file hashed on the way (an external `cp -a`
  // cost an exec per host, all at the same heartbeat after an upgrade, and checked nothing).
  auto ok = share_call<Status>([share = share_, version, cls = st_.cls, tmp, store = store_dir()]() mutable {
        LocalStore objects(store);
        return share.copy_run_tree(version, cls, tmp, &objects);
      },
      limit, &why, cfg_.share_timeout_ms);
  if (!ok || !*ok || ::rename(tmp.c_str(), dst.c_str()) != 0) {
    log(LogLevel::Warn, fmt::format("{}: no local copy of {}: {}", cfg_.host, version,
                                    !ok ? why : !*ok ? (*ok).error().msg : "rename: " + errno_str(errno)));
    (void)remove_tree(tmp);
    if (!ok) {
      cache_at_ms_ = boot_ms() + 2 * cfg_.heartbeat_interval_ms;  // the share hung: try again later
    } else {
      st_.cached = "!" + version;  // not again for this release (until it is started anew)
    }
    return;
  }
  prune_cache({version, st_.runs_from});
  st_.cached = version;
}

// Drops every local run tree but those of `keep` (the running release, the one it runs from,
// the one being switched to) and the keep_releases most recent others (by the time they were
// made: the releases this host ran before, for a regression without the share), with their
// .verified stamps; then the store objects no kept tree links.
void Watchdog::prune_cache(const std::vector<std::string>& keep0) {
  std::vector<std::string> keep = keep0;
  for (const auto& v : services_.trees()) keep.push_back(v);  // trees the other services run from
  std::string dir = path_join(cfg_.state_dir, "cache");
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::pair<int64_t, std::string>> others;  // (made at, version)
  std::vector<std::string> old;
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    std::string v = n.ends_with(".verified") ? n.substr(0, n.size() - 9) : n;
    if (std::find(keep.begin(), keep.end(), v) != keep.end()) continue;
    struct stat st{};
    if (v == n && !n.ends_with(".tmp") && ::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode))
      others.emplace_back(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, n);
    else if (v == n || ::faccessat(::dirfd(d), v.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) != 0)
      old.push_back(n);  // a temp, or a stamp without its tree
  }
  ::closedir(d);
  std::sort(others.rbegin(), others.rend());
  for (size_t i = static_cast<size_t>(std::max(cfg_.keep_releases, 0)); i < others.size(); ++i) {
    old.push_back(others[i].second);
    old.push_back(others[i].second + ".verified");
  }
  for (const auto& n : old) {
    std::string p = path_join(dir, n);
    if (n.ends_with(".verified")) ::unlink(p.c_str());
    else (void)remove_tree(p);
  }
  if (auto r = LocalStore(store_dir()).prune(); !r) log(LogLevel::Warn, fmt::format("{}: {}", cfg_.host, r.error().msg));
}

// Share unreachable and the agent down: start the last verified release from local disk.
void Watchdog::start_from_local_copy() {
  if (ctl_->up(st_) || st_.gave_up || st_.running.empty() || st_.cached != st_.running) return;
  if (st_.restart_at && boot_ms() < st_.restart_at) return;
  SpawnSpec s = agent_spec(st_.running);
  std::string local = cache_dir(st_.running), shared = s.cwd;
  for (auto& a : s.argv)
    if (starts_with(a, shared + "/")) a = local + a.substr(shared.size());
  s.cwd = local;
  s.env["NFSUP_RELEASE_DIR"] = local;
  auto r = ctl_->start(st_, s);
  if (!r) {
    log(LogLevel::Error, fmt::format("{}: starting the local copy of {}: {}", cfg_.host, st_.running, r.error().msg));
    return;
  }
  st_.lc = {};
  set_state("running", st_.status_gen,
            fmt::format("started {} from its local copy in {} while the share was unreachable", st_.running, local));
  log(LogLevel::Warn, fmt::format("{}: {}", cfg_.host, st_.reason));
}

// A started agent counts as running once it has stayed up for start_grace.
void Watchdog::promote_if_settled() {
  if (st_.lc.phase != host::Phase::Starting || boot_ms() < st_.lc.deadline_ms) return;
  host::Step s = host::step(st_.lc, host::Event::Poll, ctl_->up(st_), boot_ms(), timeouts());
  if (s.effect == host::Effect::DiedStarting) {  // (a daemon's child is reaped before: on_agent_exit)
    st_.agent_pid = 0;
    st_.agent_start = 0;
    return agent_died("it is no longer running");
  }
  if (s.effect != host::Effect::Settled) return;
  st_.lc = s.next;
  st_.trial = false;
  if (st_.state != "starting") return save_state();  // (back on the old release: stays `failed`)
  if (!cfg_.agent.health_command.empty()) {
    struct stat hs{};
    std::string hpath = path_join(release_dir_for(st_.running), cfg_.agent.health_command[0]);
    std::string why;
    // The share may hang: look for the health command under the deadline.
    auto ships = share_call<bool>([hpath] {
      struct stat x{};
      return ::stat(hpath.c_str(), &x) == 0;
    }, cfg_.share_timeout_ms, &why);
    (void)hs;
    if (!ships) {
      note_share_error(why);
    } else if (!*ships) {
      log(LogLevel::Warn, fmt::format("{}: release {} does not ship {}; no health gate for it", cfg_.host,
                                      st_.running, cfg_.agent.health_command[0]));
    } else if (!health_ok(&why)) {
      return health_failed(why);
    }
  }
  set_state("running", st_.status_gen, "");
  log(LogLevel::Info, fmt::format("{}: running {}", cfg_.host, st_.running));
  publish_status(true);
  save_state();
  // The local copy is made later, out of the upgrade's busy moment in which every host
  // starts its agent and reports at once, and not by every host at the same moment either
  // (a thundering herd on the share): at a random time 1 to 3 heartbeat intervals from now.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = (static_cast<uint64_t>(::getpid()) << 32) ^ static_cast<uint64_t>(ts.tv_nsec) ^
               std::hash<std::string>{}(cfg_.host);
  x ^= x >> 31, x *= 0x9E3779B97F4A7C15ULL, x ^= x >> 29;  // mixed: hosts started together differ
  double u = static_cast<double>(x >> 11) / static_cast<double>(1ULL << 53);  // [0, 1)
  cache_at_ms_ = boot_ms() + cfg_.heartbeat_interval_ms +
                 static_cast<int64_t>(2 * u * static_cast<double>(cfg_.heartbeat_interval_ms));
}

// The release running here has no local copy yet, and copying it has not failed.
bool Watchdog::copy_due() const {
  return !st_.running.empty() && st_.cached != st_.running && st_.cached != "!" + st_.running;
}

// Verifies the release on the share under a deadline that grows with its size.
// hashed: the files were hashed against this very manifest while the host waited (prepare_switch).
bool Watchdog::verify(const std::string& version, std::string* why, bool hashed) {
  Result<std::vector<std::string>> r = std::vector<std::string>();
  std::string t;
  std::string cls = version == pending_ ? pending_cls_ : st_.cls;
  if (runs_local()) return verified_copy(version, cls, why);
  // verify_before_start: false skips hashing every file, never the signature and expiry checks.
  if (cfg_.verify_before_start && !hashed) {
    auto got = share_call<Result<std::vector<std::string>>>(
        [this, version, cls] { return share_.verify_release(version, cls); }, cfg_.share_timeout_ms * 6, &t,
        cfg_.share_timeout_ms);
    if (!got) {
      *why = "verifying " + version + ": " + t;
      note_share_error(t);
      return false;
    }
    r = std::move(*got);
  }
  if (!r) {
    *why = r.error().msg;
    return false;
  }
  if (!r->empty()) {
    *why = fmt::format("release {} fails verification: {}", version, (*r)[0]);
    return false;
  }
  auto tgot = share_call<Result<std::string>>(
      [this, version, policy = cfg_.trust] { return check_release_trust(share_, version, policy, time(nullptr)); },
      cfg_.share_timeout_ms, &t);
  if (!tgot) {
    *why = "checking the signature of " + version + ": " + t;
    note_share_error(t);
    return false;
  }
  Result<std::string> trust = std::move(*tgot);
  if (!trust) {
    *why = trust.error().msg;
    return false;
  }
  if (!trust->empty()) {
    *why = *trust;
    return false;
  }
  return true;
}

// run_from: local (always in signed mode): makes (or finds) the local copy of `version` for class `cls` that the agent
// will run, every byte hashed against the signed manifest as it was copied, with the
// signature and expiry checked on the manifest bytes the copy was made from, and nothing on
// the share that the manifest does not list. verify_before_start does not apply: the copy
// is always hashed. Runs under the share deadline (it grows with the release while the copy
// moves).
bool Watchdog::verified_copy(const std::string& version, const std::string& cls, std::string* why) {
  std::string t;
  ::mkdir(path_join(cfg_.state_dir, "cache").c_str(), 0755);
  auto got = share_call<Result<std::string>>(
      [share = share_, version, cls, policy = cfg_.trust, dst = cache_dir(version), store = store_dir()]() mutable {
        return make_verified_copy(share, version, cls, policy, time(nullptr), dst, store);
      },
      cfg_.share_timeout_ms * 6, &t, cfg_.share_timeout_ms);
  if (!got) {
    *why = "verifying " + version + ": " + t;
    note_share_error(t);
    return false;
  }
  if (!*got) {
    *why = got->error().msg;
    return false;
  }
  *why = **got;
  return why->empty();
}

// Writes the backup of the configuration left pending by the last switch. Called before
// anything may rewrite the configuration or look for a backup, when idle, and on exit.
void Watchdog::flush_backup() {
  if (pending_backup_.first.empty()) return;
  if (auto s = write_backup(cfg_, pending_backup_.first, pending_backup_.second); !s)
    log(LogLevel::Error, s.error().msg);
  pending_backup_ = {};
}

}  // namespace wd
}  // namespace nfsup
