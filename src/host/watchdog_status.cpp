// nfsup host: the watchdog: construction, local state, status and heartbeat, share health.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

Watchdog::Watchdog(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt)
    : cfg_(std::move(cfg)), opt_(opt), fs_(cfg_.host), share_(fs_, cfg_.share) {
  if (!cfg_.agent.start_command.empty()) ctl_ = std::make_unique<CommandAgent>(cfg_.agent);
  else if (opt_.daemon) ctl_ = std::make_unique<ChildAgent>();
  else ctl_ = std::make_unique<DetachedAgent>();
}

void Watchdog::log(LogLevel l, const std::string& m) {
  if (opt_.log) opt_.log(l, m);
}

Status Watchdog::load_state() {
  struct stat sd{};
  int sr = ::stat(cfg_.state_dir.c_str(), &sd);
  if (sr != 0 && errno == ENOENT && ::mkdir(cfg_.state_dir.c_str(), 0755) == 0) sr = ::stat(cfg_.state_dir.c_str(), &sd);
  if (sr != 0 || !S_ISDIR(sd.st_mode))
    return err(Exit::Usage, fmt::format("{}: state_dir is not a directory", cfg_.state_dir));
  auto t = read_local(state_file(), 1 << 20);
  Logger lg = opt_.log;
  if (t && *t) {
    st_ = unpack_local(**t, state_file(), lg);
    saved_ = **t;  // save_state() compares against what is on disk
    saved_st_ = st_;
  }
  std::string boot = read_boot_id();
  if (st_.boot_id != boot) {
    // A reboot: no process we knew is alive, and monotonic times restart. The acting
    // version file is written without fsync (apply_acting): a power loss may have lost it.
    if (!st_.acting.empty())
      if (auto w = write_local_derived(path_join(cfg_.state_dir, "acting_version"), st_.acting + "\n", 0644); !w)
        log(LogLevel::Error, w.error().msg);
    st_.agent_pid = 0;
    st_.agent_start = 0;
    st_.crashes.clear();
    st_.lease_changed_ms = 0;
    st_.held_since_ms = 0;
    st_.last_status_ms = 0;
    st_.last_pointer_ms = 0;
    st_.lc = {};  // (its deadline was on the old boot's clock, and its process is gone)
    st_.restart_at = 0;
    st_.boot_id = boot;
  }
  return ok_status();
}

void Watchdog::save_state() {
  if (opt_.daemon) {
    // A daemon keeps its heartbeat bookkeeping in memory: rewriting the local state at every
    // heartbeat only to record the counter and the times doubled the files it replaces while
    // idle (each replacement is a new inode; on ext4 without a journal every new inode is
    // checked against the ones deleted in the last minutes, so churn slows every create on
    // the disk). A restarted daemon reads the pointer and writes its status at once anyway,
    // and the master only looks for the counter to change.
    LocalState cmp = st_;
    cmp.heartbeat = saved_st_.heartbeat;
    cmp.last_status_ms = saved_st_.last_status_ms;
    cmp.last_pointer_ms = saved_st_.last_pointer_ms;
    if (pack_local(cmp) == saved_) return;
  }
  std::string p = pack_local(st_);
  if (p == saved_) return;
  if (auto s = write_local_exchange(state_file(), p, 0644); !s) log(LogLevel::Error, s.error().msg);
  else {
    saved_ = p;
    saved_st_ = st_;
  }
}

// A host with run_from: local (every signed host) runs every release from its verified local
// copy (see verified_copy()), so that what runs is exactly what was hashed; one with
// run_from: share runs it from the share.
std::string Watchdog::release_dir_for(const std::string& version) const {
  if (runs_local()) return cache_dir(version);
  return share_.run_dir(version, version == pending_ ? pending_cls_ : st_.cls);
}

SpawnSpec Watchdog::agent_spec(const std::string& version) {
  SpawnSpec s;
  std::string rdir = release_dir_for(version);
  for (size_t i = 0; i < cfg_.agent.command.size(); ++i) {
    std::string a = cfg_.agent.command[i];
    auto sub = [&](const std::string& key, const std::string& val) {
      size_t p;
      while ((p = a.find(key)) != std::string::npos) a.replace(p, key.size(), val);
    };
    sub("{config}", cfg_.agent.config);
    sub("{release}", rdir);
    sub("{version}", version);
    sub("{host}", cfg_.host);
    s.argv.push_back(i == 0 ? path_join(rdir, a) : a);
  }
  s.env = {{"NFSUP_VERSION", version},
           {"NFSUP_HOST", cfg_.host},
           {"NFSUP_RELEASE_DIR", rdir},
           {"NFSUP_SHARE", cfg_.share},
           {"NFSUP_CONFIG", cfg_.agent.config},
           {"NFSUP_ACTING_VERSION", st_.acting.empty() ? version : st_.acting},
           {"NFSUP_ACTING_FILE", path_join(cfg_.state_dir, "acting_version")},
           {"NFSUP_SPOOL", spool_dir()}};
  s.cwd = rdir;
  s.stdout_path = path_join(cfg_.state_dir, "agent.log");
  return s;
}

// The acting version is handed to the agent through a local file and a signal.
void Watchdog::apply_acting(const std::string& acting) {
  if (acting == st_.acting) return;
  std::string old = st_.acting;
  st_.acting = acting;
  // (recomputed from the share at every pointer read: no fsync on the restart path)
  if (auto s = write_local_derived(path_join(cfg_.state_dir, "acting_version"), acting + "\n", 0644); !s)
    log(LogLevel::Error, s.error().msg);
  status_dirty_ = true;
  if (!old.empty()) {
    log(LogLevel::Info, fmt::format("{}: acting version {} -> {}", cfg_.host, old, acting));
    if (cfg_.agent.acting_signal && ctl_->up(st_)) ctl_->signal(st_, cfg_.agent.acting_signal);
  }
}

// Files the agent queued in NFSUP_SPOOL go to SHARE/inbox/<host>/ when no upgrade fences them.
void Watchdog::deliver_spool() {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(spool_dir().c_str())) {
    while (dirent* de = ::readdir(d))
      if (de->d_name[0] != '.' && de->d_type == DT_REG) names.push_back(de->d_name);
    ::closedir(d);
  }
  if (names.empty()) return;
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string local = path_join(spool_dir(), n);
    auto data = read_local(local, 64 << 20);
    if (!data || !*data) continue;
    std::string why, inbox = path_join(path_join(cfg_.share, "inbox"), cfg_.host), root = cfg_.share;
    auto got = share_call<Status>(
        [this, root, inbox, n, body = **data]() -> Status {
          if (auto s = fs_.mkdir(path_join(root, "inbox"), 0755); !s) return s;
          if (auto s2 = fs_.mkdir(inbox, 0755); !s2) return s2;
          return fs_.write_atomic(path_join(inbox, n), body, 0644);
        },
        cfg_.share_timeout_ms, &why);
    if (!got) {
      note_share_error(why);
      return;
    }
    Status res = *got;
    if (!res) {
      log(LogLevel::Error, fmt::format("{}: delivering {}: {}", cfg_.host, local, res.error().msg));
      return;
    }
    ::unlink(local.c_str());
    log(LogLevel::Info, fmt::format("{}: delivered spooled {} to {}", cfg_.host, n, inbox));
  }
}

// ---- status reporting
void Watchdog::set_state(const std::string& state, int64_t gen, const std::string& reason) {
  if (state != st_.state || gen != st_.status_gen || reason != st_.reason) {
    st_.state = state;
    st_.status_gen = gen;
    st_.reason = reason;
    status_dirty_ = true;
  }
}

// The status fields that come from this host's configuration, as one string.
std::string Watchdog::status_conf() const {
  return fmt::format("{}/{}/{}/{}/{}/{}", cfg_.trust.signed_mode() ? "signed" : "unsigned", runs_local() ? "local" : "share",
                     cfg_.group.empty() ? "-" : cfg_.group, cfg_.cls.empty() ? "-" : cfg_.cls, cfg_.poll_interval_ms,
                     cfg_.checks_dir.empty() ? "no" : "yes");
}

void Watchdog::note_metrics(const HostStatus& s, bool share_up, int64_t latency_ms) {
  if (cfg_.metrics_file.empty()) return;
  HostSample m{s.host, s.state, s.running, s.watchdog_version, s.agent_pid, share_up, latency_ms, ::time(nullptr)};
  auto w = write_host_metrics(cfg_.metrics_file, m);
  if (!w && std::exchange(metrics_ok_, false)) log(LogLevel::Warn, fmt::format("{}: metrics_file: {}", cfg_.host, w.error().msg));
  if (w) metrics_ok_ = true;
}

// Callers publish first and save the local state after: a write bumps the heartbeat and
// its time, kept in the local state, so one local write covers both.
void Watchdog::publish_status(bool force) {
  int64_t now = boot_ms();
  if (!force && !status_dirty_ && st_.last_status_ms && now - st_.last_status_ms < cfg_.heartbeat_interval_ms)
    return;
  HostStatus s;
  s.host = cfg_.host;
  s.state = st_.state;
  s.running = st_.running;
  s.generation = st_.status_gen;
  s.pid = getpid();
  s.agent_pid = st_.agent_pid;
  s.mode = opt_.daemon ? "daemon" : "check";
  s.reason = st_.reason;
  s.updated = utc_now_iso();
  s.trust = cfg_.trust.signed_mode() ? "signed" : "unsigned";
  if (cfg_.trust.signed_mode()) s.keys = trusted_key_ids(cfg_.trust);
  s.group = cfg_.group;
  s.acting = st_.acting;
  s.cls = st_.cls.empty() ? cfg_.cls : st_.cls;
  s.runs_from = st_.runs_from;
  s.run_from = runs_local() ? "local" : "share";
  s.modules = st_.modules;
  s.poll_ms = cfg_.poll_interval_ms;
  s.checks = cfg_.checks_dir.empty() ? "no" : "yes";
  s.watchdog_version = NFSUP_VERSION;
  if (!force && heartbeat_by_touch(s)) return;
  s.heartbeat = ++st_.heartbeat;
  std::string why;
  int64_t t0 = boot_ms();
  auto got = share_call<Status>([this, s] { return share_.write_status(s); }, cfg_.share_timeout_ms, &why);
  note_metrics(s, got && *got, boot_ms() - t0);
  if (!got) {
    note_share_error(why);
    return;
  }
  Status res = *got;
  if (!res) {
    note_share_error(res.error().msg);
    return;
  }
  status_dirty_ = false;
  st_.last_status_ms = now;
  st_.published_conf = status_conf();
  published_body_ = pack_status(s);
  published_updated_ = s.updated;
  touches_ = 0;
}

// The budget of an idle heartbeat (issue 17): when nothing but the heartbeat is new, a daemon
// touches its status file (one call; the server stamps the mtime, which the master reads as
// the heartbeat) instead of rewriting it (create, write, fsync, close, rename). The content
// is compared without the heartbeat counter; a full rewrite still comes every
// kTouchesPerWrite heartbeats. Returns false when the caller must write the status in full.
bool Watchdog::heartbeat_by_touch(const HostStatus& s) {
  constexpr int kTouchesPerWrite = 60;
  if (!opt_.daemon || published_body_.empty() || touches_ >= kTouchesPerWrite) return false;
  HostStatus cmp = s;
  cmp.heartbeat = st_.heartbeat;
  cmp.updated = published_updated_;
  if (pack_status(cmp) != published_body_) return false;
  std::string why;
  int64_t t0 = boot_ms(), now = t0;
  auto got = share_call<Result<bool>>([this] { return share_.touch_status(cfg_.host); }, cfg_.share_timeout_ms, &why);
  note_metrics(s, got && *got && **got, boot_ms() - t0);
  if (!got) {
    note_share_error(why);
    return true;
  }
  if (!*got || !**got) return false;  // gone, or no touch here: write it
  status_dirty_ = false;
  st_.last_status_ms = now;
  ++touches_;
  return true;
}

// Cron tick, on the guard thread: a share operation outlived its deadline while the tick's
// thread is stuck in it. Finish the tick without the share, as a failed share call would.
void Watchdog::give_up_on_share(const std::string& why) {
  note_share_error(why);
  start_from_local_copy();
  save_state();
  log(LogLevel::Error, fmt::format("{}: {}", cfg_.share, why));
  std::fflush(nullptr);
  ::_exit(static_cast<int>(Exit::Share));
}

// Poll interval while a marker is up: a quarter of poll_interval, at least 50ms. Only
// during an upgrade; it lets a stopped host notice the marker's removal sooner.
int64_t Watchdog::held_poll_ms() const {
  return std::min(cfg_.poll_interval_ms, std::max<int64_t>(50, cfg_.poll_interval_ms / 4));
}

// When the next tick must read the pointer and rewrite the status even if nothing changed.
int64_t Watchdog::next_heartbeat_ms() const {
  return std::min(st_.last_pointer_ms, st_.last_status_ms) + cfg_.heartbeat_interval_ms;
}

void Watchdog::note_share_error(const std::string& why) {
  // (said again when it turns out not to be a share at all: an empty mountpoint)
  auto no_share = [](const std::string& w) { return w.find(": not an nfsup share") != std::string::npos; };
  if (!share_down_ || no_share(why) != no_share(share_error_)) log(LogLevel::Error, fmt::format("{}: share unreachable: {}; the agent is left as it is", cfg_.host, why));
  share_down_ = true;
  share_error_ = why;
}

void Watchdog::note_share_ok() {
  if (share_down_) {
    log(LogLevel::Info, fmt::format("{}: share reachable again", cfg_.host));
    force_pointer_ = true;
    status_dirty_ = true;
    published_body_.clear();  // a full rewrite, not a touch, of what the share may have lost
  }
  share_down_ = false;
}

}  // namespace wd
}  // namespace nfsup
