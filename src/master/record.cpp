// nfsup master: what the master records on the share: timelines (rollouts/), SHARE/state, the migration hook.
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

thread_local Timeline* g_timeline = nullptr;  // the switch being recorded (one per process)
int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
Status save_timeline(Share& share, Timeline& t) {
  t.end_ms = unix_ms();
  if (auto s = share.fs().mkdir(path_join(share.root(), "rollouts"), 0755); !s) return s;
  return share.fs().write_atomic(path_join(path_join(share.root(), "rollouts"), fmt::format("{:012d}", t.generation)),
                                 pack_timeline(t), 0644);
}
void Timeline::see(const std::string& host, const std::string& state, const std::string& running) {
  std::string key = state + " " + running;
  auto it = last.find(host);
  if (it != last.end() && it->second == key) return;
  last[host] = key;
  events.push_back({host, state, running, unix_ms()});
}

std::string pack_timeline(const Timeline& t) {
  Record r{"timeline", kFormatVersion, {}};
  r.add("generation", {std::to_string(t.generation)});
  r.add("action", {t.action});
  r.add("from", {t.from.empty() ? "-" : t.from});
  r.add("to", {t.to});
  r.add("strategy", {t.strategy});
  r.add("span", {std::to_string(t.start_ms), std::to_string(t.end_ms)});
  for (const auto& e : t.events)
    r.add("event", {e.host, std::to_string(e.unix_ms), e.state, e.running.empty() ? "-" : e.running});
  return pack_record(r);
}

Result<Timeline> unpack_timeline(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "timeline", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Timeline t;
  t.generation = rd.num_or("generation", 0);
  t.action = rd.str_or("action", "push");
  t.from = rd.str_or("from", "-");
  if (t.from == "-") t.from.clear();
  t.to = rd.str_or("to", "-");
  t.strategy = rd.str_or("strategy", "all-at-once");
  for (const auto& l : rec->lines) {
    if (l.key == "span" && l.args.size() == 2) {
      t.start_ms = parse_i64(l.args[0]).value_or(0);
      t.end_ms = parse_i64(l.args[1]).value_or(0);
    } else if (l.key == "event") {
      if (l.args.size() != 4 || check_host_name(l.args[0])) return rd.bad(l, "event needs: host unix_ms state running");
      t.events.push_back({l.args[0], l.args[2], l.args[3] == "-" ? "" : l.args[3], parse_i64(l.args[1]).value_or(0)});
    }
  }
  return t;
}

Result<std::vector<int64_t>> list_timelines(Share& share) {
  std::vector<int64_t> out;
  std::string dir = path_join(share.root(), "rollouts");
  auto st = share.fs().stat(dir);
  if (!st) return st.error();
  if (!*st) return out;
  auto l = share.fs().list_dir(dir);
  if (!l) return l.error();
  for (const auto& e : *l) {
    if (e.type != FileInfo::File || e.name.size() != 12 || e.name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (auto g = parse_i64(e.name); g) out.push_back(*g);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::optional<Timeline>> read_timeline(Share& share, int64_t generation) {
  auto gens = list_timelines(share);
  if (!gens) return gens.error();
  if (gens->empty()) return std::optional<Timeline>();
  int64_t g = generation > 0 ? generation : gens->back();
  if (std::find(gens->begin(), gens->end(), g) == gens->end()) return std::optional<Timeline>();
  std::string path = path_join(path_join(share.root(), "rollouts"), fmt::format("{:012d}", g));
  auto t = share.fs().read_file(path, kManifestMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Timeline>();
  auto tl = unpack_timeline(**t, path);
  if (!tl) return tl.error();
  return std::optional<Timeline>(*tl);
}

Result<std::optional<Timeline>> read_last_timeline(Share& share) { return read_timeline(share, 0); }

std::string pack_rollout(const RolloutState& s) {
  Record r{"rollout", kFormatVersion, {}};
  auto d = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
  r.add("acting", {d(s.acting)});
  r.add("min_supported", {d(s.min_supported)});
  r.add("target", {d(s.target)});
  r.add("phase", {d(s.phase)});
  r.add("master", {d(s.master_host), std::to_string(s.master_pid), std::to_string(s.lease_ms)});
  for (const auto& [h, v] : s.installed) r.add("host", {h, v});
  if (!s.migrated.empty()) r.add("migrated", s.migrated);
  r.add("note", {d(s.note)});
  return pack_record(r);
}

Result<RolloutState> unpack_rollout(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "rollout", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  RolloutState s;
  auto u = [](const std::string& v) { return v == "-" ? std::string() : v; };
  s.acting = u(rd.str_or("acting", "-"));
  s.min_supported = u(rd.str_or("min_supported", "-"));
  s.target = u(rd.str_or("target", "-"));
  s.phase = u(rd.str_or("phase", "-"));
  s.note = u(rd.str_or("note", "-"));
  for (const auto& v : {s.acting, s.min_supported, s.target})
    if (!v.empty())
      if (auto e = check_version_name(v)) return err(Exit::Integrity, fmt::format("{}: {}", what, *e));
  for (const auto& l : rec->lines) {
    if (l.key == "master" && l.args.size() == 3) {
      s.master_host = u(l.args[0]);
      s.master_pid = parse_i64(l.args[1]).value_or(0);
      s.lease_ms = parse_i64(l.args[2]).value_or(0);
    } else if (l.key == "host") {
      if (l.args.size() != 2 || check_host_name(l.args[0]) || check_version_name(l.args[1]))
        return rd.bad(l, "host needs: name release");
      s.installed[l.args[0]] = l.args[1];
    } else if (l.key == "migrated") {
      for (const auto& v : l.args)
        if (auto e = check_version_name(v)) return rd.bad(l, *e);
      s.migrated = l.args;
    }
  }
  return s;
}

Result<std::optional<RolloutState>> read_rollout(Share& share) {
  std::string path = path_join(share.root(), "state");
  auto t = share.fs().read_file(path, kSmallFileMax * 16);
  if (!t) return t.error();
  if (!*t) return std::optional<RolloutState>();
  auto s = unpack_rollout(**t, path);
  if (!s) return s.error();
  return std::optional<RolloutState>(*s);
}
Status write_rollout(Share& share, const RolloutState& s) {
  return share.fs().write_atomic(path_join(share.root(), "state"), pack_rollout(s), 0644);
}

namespace {

// Runs the hook `entry` of release `target` (a verified local copy, or through opt.hook_runner),
// renewing the lease of `marker` about every 100 ms while it runs. Cancelled: a signal, or the
// lease could not be renewed (`lease` then holds why).
Result<RunResult> run_hook(Share& share, const std::string& from, const std::string& target, const ManifestEntry& e,
                           Marker& marker, const MasterOptions& opt, Status& lease) {
  std::string tmpl = "/tmp/nfsup-migrate.XXXXXX";
  SpawnSpec s;
  s.env = {{"NFSUP_SHARE", share.root()}, {"NFSUP_FROM_VERSION", from}, {"NFSUP_TO_VERSION", target}};
  int64_t last_renew = boot_ms() - marker.lease_ms;  // renew at once: the last wait may have used up most of it
  auto keep_going = [&] {
    if (interrupted(opt)) return false;
    lease = renew_lease(share, marker, last_renew);
    return static_cast<bool>(lease);
  };
  note(opt, fmt::format("acting version {} -> {}: running {}'s migration hook", from, target, target));
  if (opt.hook_runner) {
    s.argv = {path_join(share.release_dir(target), e.path)};
    return opt.hook_runner->run(s, opt.migrate_timeout_ms, keep_going);
  }
  int fd = -1;
  if (int te = make_temp_file(&tmpl, &fd); te != 0) return err(Exit::Failed, "mkstemp: " + errno_str(te));
  auto h = hash_file(path_join(share.release_dir(target), e.path), fd, tmpl);
  if (int ce = h ? chmod_fd(fd, 0700) : 0; ce != 0) h = err(Exit::Failed, fmt::format("chmod({}): {}", tmpl, errno_str(ce)));
  (void)close_fd(fd);  // (a local temp file, checked by its hash)
  if (!h || h->sha256 != e.sha256) {
    (void)unlink_path(tmpl);
    return err(Exit::Integrity, fmt::format("release {}: migration hook does not match its manifest hash", target));
  }
  s.argv = {tmpl};
  auto r = run_with_timeout(s, opt.migrate_timeout_ms, keep_going);
  (void)unlink_path(tmpl);  // (a local temp file)
  return r;
}

}  // namespace

// Runs release `target`'s migration hook once (recorded in SHARE/state), on the master, under
// marker `m`: its lease is renewed while the hook runs (a hook longer than the lease must not let
// stopped hosts resume the old release under it), and the hook is killed if the marker is lost.
Status run_migration(Share& share, const std::string& from, const std::string& target, RolloutState& st,
                     Marker& marker, const MasterOptions& opt) {
  if (std::find(st.migrated.begin(), st.migrated.end(), target) != st.migrated.end()) return ok_status();
  auto m = share.read_manifest(target);
  if (!m) return m.error();
  if (!*m || (*m)->migrate.empty()) return ok_status();
  const ManifestEntry* entry = nullptr;
  for (const auto& e : (*m)->entries)
    if (e.path == (*m)->migrate) entry = &e;
  if (!entry) return err(Exit::Integrity, "migration hook not in the manifest");
  Status lease = ok_status();
  auto r = run_hook(share, from, target, *entry, marker, opt, lease);
  if (!r) return r.error();
  if (r->cancelled && interrupted(opt))
    return interrupted_error(opt, fmt::format("the migration hook of {} was killed", target));
  if (r->cancelled)
    return err(lease.error().code, fmt::format("migration hook of {} killed: {}; the rollout stops here", target,
                                               lease.error().msg));
  if (r->timed_out || r->exit_code != 0) {
    std::string last;
    for (const auto& l : split(r->output, '\n'))
      if (!l.empty()) last = l;
    return err(Exit::Failed, fmt::format("migration hook of {} failed ({}){}{}; the rollout stops here", target,
                                         r->timed_out ? "timed out" : fmt::format("exit code {}", r->exit_code),
                                         last.empty() ? "" : ": ", last));
  }
  st.migrated.push_back(target);
  audit_or_say(share, opt, "migrate", fmt::format("{} -> {}", from, target), "ok");
  return write_rollout(share, st);
}

// Records what the master saw while switching, into SHARE/rollouts/<generation>.
template <typename F>
Result<SwitchReport> recorded(Share& share, const std::string& target, const std::string& action,
                              const std::string& strategy, F&& run) {
  Timeline t;
  t.action = action;
  t.to = target;
  t.strategy = strategy;
  t.start_ms = unix_ms();
  if (auto p = share.read_pointer(); p && *p) t.from = (*p)->release;
  // Cleared on every way out, an exception included (the simulator's dying master throws).
  struct Clear {
    ~Clear() { g_timeline = nullptr; }
  } clear;
  g_timeline = &t;
  auto r = run();
  if (r && !r->nothing_to_do && r->generation > 0) {
    t.generation = r->generation;
    if (auto s = save_timeline(share, t); !s)  // the switch is done; only its record is missing
      r->warnings.push_back(fmt::format("the rollout's timeline was not recorded: {}", s.error().msg));
  }
  return r;
}

Result<SwitchReport> run_switch(Share& share, const std::string& target, const std::string& action,
                                const MasterOptions& opt, SwitchReport rep) {
  return recorded(share, target, action, "all-at-once", [&] { return run_switch_impl(share, target, action, opt, rep); });
}

Result<SwitchReport> run_rolling(Share& share, const std::string& target, const MasterOptions& opt, SwitchReport rep) {
  return recorded(share, target, "push", "rolling", [&] { return run_rolling_impl(share, target, opt, rep); });
}

}  // namespace nfsup
