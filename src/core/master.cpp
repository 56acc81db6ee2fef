// nfsup core: the master side.
#include "master.h"

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

bool SwitchReport::all_ok() const {
  if (!dependency_problems.empty()) return false;
  for (const auto& h : hosts)
    if (h.outcome != "ok" && h.outcome != "stale" && h.outcome != "vetoed") return false;
  return true;
}

static void note(const MasterOptions& o, const std::string& s) {
  if (o.note) o.note(s);
}

// The signal the caller's handler recorded (0: none). Every wait of the master checks it.
static int interrupted(const MasterOptions& o) { return o.interrupt ? o.interrupt->load() : 0; }

static Error interrupted_error(const MasterOptions& o, const std::string& what) {
  int sig = interrupted(o);
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
  return err(Exit::Interrupted, fmt::format("interrupted ({}): {}", name, what));
}

// Removes this master's marker on the way out. A failure is said: hosts then resume only
// when its lease lapses, or at `abort`.
static void release_marker(Share& share, const MasterOptions& opt) {
  if (auto u = share.fs().unlink(share.marker_path()); !u)
    note(opt, fmt::format("could not remove the marker: {}; hosts resume when its lease lapses", u.error().msg));
}

static std::string random_nonce() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

// A marker held by this process: the master's identity, a fresh nonce, the lease.
static Marker make_marker(int64_t generation, const std::string& action, const std::string& release,
                          const std::string& previous, const MasterOptions& opt) {
  Marker m;
  m.generation = generation;
  m.action = action;
  m.release = release;
  m.previous = previous;
  m.master_host = short_hostname();
  m.master_pid = getpid();
  m.nonce = random_nonce();
  m.lease_ms = opt.lease_ms;
  m.started = utc_now_iso();
  m.signer = opt.sign_key;  // every write of this marker is signed when the master has a key
  return m;
}

int64_t server_now_ms(Share& share) {
  std::string probe = path_join(share.root(), fmt::format(".clock.{}.{}", short_hostname(), getpid()));
  auto w = share.fs().write_atomic(probe, "clock\n", 0644);
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (w) {
    auto st = share.fs().stat(probe);
    if (st && *st) now = (*st)->mtime_ms;
    (void)share.fs().unlink(probe);
  }
  return now;
}

Status init_share(Share& share) { return share.init(); }

Result<std::vector<std::string>> check_dependencies(Share& share, int64_t stale_after_ms) {
  std::vector<std::string> out;
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  int64_t now = server_now_ms(share);
  std::map<std::string, std::optional<Manifest>> cache;
  struct Running {
    std::string host;
    std::vector<ModuleInfo> mods;
  };
  std::vector<Running> fleet;
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s || !*s || (*s)->running.empty() || now - (*s)->mtime_ms > stale_after_ms) continue;
    const std::string& v = (*s)->running;
    if (!cache.count(v)) {
      auto m = share.read_manifest(v);
      cache[v] = m ? *m : std::nullopt;
    }
    if (!cache[v] || cache[v]->modules.empty()) continue;
    const Manifest& man = *cache[v];
    const ClassInfo* c = nullptr;
    for (const auto& ci : man.classes)
      if (ci.name == (*s)->cls) c = &ci;
    Running r{h, {}};
    for (const auto* mod : man.modules_for(c)) r.mods.push_back(*mod);
    fleet.push_back(std::move(r));
  }
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> providers;  // api -> (version, host)
  for (const auto& r : fleet)
    for (const auto& m : r.mods)
      for (const auto& [api, v] : m.provides) providers[api].push_back({v, r.host});
  for (const auto& r : fleet) {
    for (const auto& m : r.mods) {
      for (const auto& dm : m.depends) {
        const std::string &dep = dm.first, &minv = dm.second;
        auto it = std::find_if(r.mods.begin(), r.mods.end(), [&](auto& x) { return x.name == dep; });
        if (it == r.mods.end())
          out.push_back(fmt::format("{}: module {} needs module {} >= {}, which this host does not run", r.host, m.name,
                                    dep, minv));
        else if (compare_versions(it->version, minv) < 0)
          out.push_back(fmt::format("{}: module {} needs module {} >= {}, this host runs {}", r.host, m.name, dep, minv,
                                    it->version));
      }
      for (const auto& [api, minv] : m.consumes) {
        bool ok = false;
        std::string best;
        for (const auto& [v, h] : providers[api]) {
          if (compare_versions(v, minv) >= 0) ok = true;
          if (best.empty() || compare_versions(v, best) > 0) best = v;
        }
        if (!ok)
          out.push_back(fmt::format("{}: module {} consumes API {} >= {}, but {}", r.host, m.name, api, minv,
                                    best.empty() ? "no live host provides it"
                                                 : fmt::format("live hosts provide only {}", best)));
      }
    }
  }
  return out;
}

// Signs the pointer when the master has a key (hosts need a signed pointer to go back).
static Status write_pointer(Share& share, Pointer p, const MasterOptions& opt) {
  p.sigs.clear();
  if (opt.sign_key) {
    auto sig = sign_data(*opt.sign_key, pointer_signing_text(p));
    if (!sig) return sig.error();
    p.sigs.emplace_back(opt.sign_key->id, *sig);
  }
  return share.fs().write_atomic(share.pointer_path(), pack_pointer(p), 0644);
}

namespace {

struct Fleet {
  std::vector<std::string> live;
  std::vector<HostOutcome> skipped;
  // What the hosts told about themselves in their status files:
  bool votes = false;          ///< some live host votes with local checks (or cannot tell)
  int64_t min_poll_ms = 0;     ///< fastest poll_interval among live hosts (0: none reported)
};

// Reads every host status once and splits the fleet by server-stamped age.
Status write_rollout(Share& share, const RolloutState& s);
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
Status run_migration(Share& share, const std::string& from, const std::string& target, RolloutState& st,
                     Marker& marker, const MasterOptions& opt);

Result<Fleet> survey(Share& share, int64_t now_ms, int64_t stale_after_ms) {
  Fleet f;
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s) {
      f.skipped.push_back({h, "stale", "unreadable status: " + s.error().msg});
      f.votes = true;  // cannot tell: ask for votes
      continue;
    }
    if (!*s) continue;  // a host directory without a status yet
    int64_t age = now_ms - (*s)->mtime_ms;
    if (age > stale_after_ms) {
      f.skipped.push_back({h, "stale", fmt::format("last status {} ago", format_duration_ms(age))});
      continue;
    }
    f.live.push_back(h);
    if ((*s)->checks != "no") f.votes = true;
    if ((*s)->poll_ms > 0) f.min_poll_ms = f.min_poll_ms ? std::min(f.min_poll_ms, (*s)->poll_ms) : (*s)->poll_ms;
  }
  return f;
}

// The live hosts that a switch limited by --hosts or --class takes part in.
std::vector<std::string> targeted(Share& share, const std::vector<std::string>& live, const MasterOptions& opt) {
  std::vector<std::string> keep;
  for (const auto& h : live) {
    bool in = opt.hosts.empty() || std::find(opt.hosts.begin(), opt.hosts.end(), h) != opt.hosts.end();
    if (in && !opt.cls.empty()) {
      auto s = share.read_status(h);
      in = s && *s && (*s)->cls == opt.cls;
    }
    if (in) keep.push_back(h);
  }
  return keep;
}

// A live host in signed mode ignores a marker its keys did not sign: refuse before anything
// is written rather than wait out the timeout on hosts that never stop.
Status check_signer(Share& share, const MasterOptions& opt) {
  auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  std::vector<HostStatus> live;
  for (const auto& h : fleet->live)
    if (auto s = share.read_status(h); s && *s) live.push_back(**s);
  if (auto why = signer_refusal(live, opt.sign_key); !why.empty()) return err(Exit::Usage, why);
  return ok_status();
}

// --hosts and --class, checked against the share before anything is staged or audited (only
// a clock probe is written, and removed at once). The same check runs again under the
// marker: a host may go silent meanwhile.
Status check_targets(Share& share, const MasterOptions& opt) {
  if (opt.hosts.empty() && opt.cls.empty()) return ok_status();
  auto known = share.list_hosts();
  if (!known) return known.error();
  for (const auto& h : opt.hosts)
    if (std::find(known->begin(), known->end(), h) == known->end())
      return err(Exit::Usage, fmt::format("--hosts {}: no such host on the share (hosts: {})", h,
                                          known->empty() ? "none" : join(*known, ", ")));
  auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  if (targeted(share, fleet->live, opt).empty())
    return err(Exit::Usage, opt.cls.empty() ? "none of the --hosts is live"
                                            : fmt::format("no live host of class '{}'", opt.cls));
  return ok_status();
}

struct Watch {
  int64_t heartbeat = -1;
  int64_t changed_at = 0;
};

// How long the master sleeps between two rounds of reading host files: a quarter of the
// fastest host's poll_interval (hosts cannot answer faster than they poll), at least 20ms and
// at most opt.poll_ms; and never less than the last round took, so that a large fleet does
// not keep the file server busy with status reads.
//
// While waiting on a set of hosts, a round reads only the hosts still pending, so it shrinks
// as they answer; the pause shrinks with it (pending/total of the pace, at least 10ms): the
// master keeps reading at most as many status files per second as in its first round, and
// the last hosts of a large fleet are seen sooner (at 100 hosts: the last one to stop within
// ~10ms instead of up to a quarter poll).
int64_t master_pace_ms(int64_t min_host_poll_ms, int64_t last_round_ms, const MasterOptions& opt, size_t pending,
                       size_t total) {
  int64_t pace = min_host_poll_ms > 0 ? min_host_poll_ms / 4 : opt.poll_ms;
  pace = std::clamp<int64_t>(pace, std::min<int64_t>(20, opt.poll_ms), opt.poll_ms);
  if (total > 0 && pending < total)
    pace = std::max<int64_t>(std::min<int64_t>(10, pace),
                             pace * static_cast<int64_t>(pending) / static_cast<int64_t>(total));
  return std::max(pace, last_round_ms);
}

// Rewrites the marker with renewal+1 when due. Fails if the marker is no longer ours.
Status renew_lease(Share& share, Marker& m, int64_t& last_renew) {
  if (boot_ms() - last_renew < m.lease_ms / 3) return ok_status();
  auto cur = share.read_marker();
  if (!cur) return cur.error();
  if (!*cur || (*cur)->nonce != m.nonce)
    return err(Exit::Busy, fmt::format("{}: the marker was removed or replaced by someone else (abort?)",
                                       share.marker_path()));
  m.renewal += 1;
  if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s;
  last_renew = boot_ms();
  return ok_status();
}

// One vote round: the marker (phase vote, naming `hosts`) is up; every named host runs its
// checks and answers for the marker's generation. Ends when all have answered or at
// --vote-timeout; applies the operator's policy to vetoes and silence. Returns the hosts that
// go on (vetoed ones are added to rep with outcome "vetoed" under --skip-vetoed); on a veto
// that stands, removes the marker and fails with Exit::Vetoed: nobody has stopped yet.
static Result<std::vector<std::string>> vote_round(Share& share, Marker& m, const std::vector<std::string>& hosts,
                                                   int64_t min_poll_ms, const MasterOptions& opt, SwitchReport& rep,
                                                   const std::string& what) {
  std::map<std::string, Vote> got;
  std::set<std::string> old_format;  // hosts whose vote for this generation does not name the switch
  int64_t until = boot_ms() + opt.vote_timeout_ms, last_renew = boot_ms();
  while (got.size() < hosts.size() && boot_ms() < until) {
    if (interrupted(opt)) {
      release_marker(share, opt);
      (void)share.audit(m.action, fmt::format("{} interrupted during the vote", what), "interrupted");
      return interrupted_error(opt, fmt::format("the {} of {} backed out during the vote, before any host stopped; "
                                                "the marker is removed",
                                                m.action, m.release));
    }
    for (const auto& h : hosts) {
      if (got.count(h)) continue;
      auto v = share.read_vote(h);
      if (!v || !*v) continue;
      if ((*v)->answers(m)) got[h] = **v;
      else if ((*v)->version < 2 && (*v)->generation == m.generation) old_format.insert(h);
    }
    if (got.size() == hosts.size()) break;
    if (auto s = renew_lease(share, m, last_renew); !s) return s.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(master_pace_ms(min_poll_ms, 0, opt, 0, 0)));
  }
  std::vector<std::string> accepted, vetoes;
  for (const auto& h : hosts) {
    auto it = got.find(h);
    if (it == got.end()) {
      if (opt.assume_accept) accepted.push_back(h);
      else if (old_format.count(h))
        vetoes.push_back(fmt::format("{}: answered with a vote of format 1 (an nfsup-watchdog older than this master), "
                                     "which does not name the switch it answers and is not counted; upgrade it "
                                     "(nfsup-share(5)) or pass --assume-accept",
                                     h));
      else vetoes.push_back(fmt::format("{}: did not vote within {}", h, format_duration_ms(opt.vote_timeout_ms)));
    } else if (it->second.accept) {
      accepted.push_back(h);
    } else {
      vetoes.push_back(fmt::format("{}: {}", h, printable(it->second.reason)));
    }
  }
  if (vetoes.empty()) return accepted;
  if (opt.force) {
    note(opt, fmt::format("--force: overriding vetoes: {}", join(vetoes, "; ")));
    (void)share.audit(m.action, fmt::format("forced over vetoes: {}", join(vetoes, "; ")), "forced");
    return hosts;
  }
  if (!opt.skip_vetoed || accepted.empty()) {
    release_marker(share, opt);
    (void)share.audit(m.action, fmt::format("{} vetoed: {}", what, join(vetoes, "; ")), "vetoed");
    return err(Exit::Vetoed, fmt::format("{} of {} vetoed before any host stopped:\n  {}", m.action, m.release,
                                         join(vetoes, "\n  ")));
  }
  note(opt, fmt::format("skipping vetoed hosts: {}", join(vetoes, "; ")));
  for (const auto& v : vetoes) rep.hosts.push_back({v.substr(0, v.find(':')), "vetoed", v.substr(v.find(':') + 2)});
  return accepted;
}

// Before each round of a wait: stop on a signal (the caller backs out), renew the lease if
// this master holds the marker.
static Status keep_waiting(Share& share, Marker* marker, int64_t& last_renew, const MasterOptions& opt,
                           const char* phase) {
  if (interrupted(opt)) return interrupted_error(opt, phase);
  if (marker) return renew_lease(share, *marker, last_renew);
  return ok_status();
}

using Done = std::function<std::optional<HostOutcome>(const HostStatus&)>;

// Waits until `done` gives an outcome for every host in `hosts`, renewing the lease while
// `marker` is held. Hosts whose heartbeat stops for stale_after are declared stale.
Result<std::vector<HostOutcome>> wait_hosts(Share& share, const std::vector<std::string>& hosts, Marker* marker,
                                            const MasterOptions& opt, const Done& done, const char* phase) {
  std::map<std::string, Watch> watch;
  std::map<std::string, HostOutcome> result;
  int64_t start = boot_ms();
  int64_t last_renew = boot_ms();
  for (const auto& h : hosts) watch[h] = Watch{-1, start};
  size_t last_count = static_cast<size_t>(-1);
  int64_t min_poll = 0;
  while (true) {
    if (auto s = keep_waiting(share, marker, last_renew, opt, phase); !s) return s.error();
    int64_t now = boot_ms();
    for (const auto& h : hosts) {
      if (result.count(h)) continue;
      auto s = share.read_status(h);
      if (!s || !*s) continue;
      if ((*s)->poll_ms > 0) min_poll = min_poll ? std::min(min_poll, (*s)->poll_ms) : (*s)->poll_ms;
      auto& w = watch[h];
      if (g_timeline) g_timeline->see(h, (*s)->state, (*s)->running);
      if ((*s)->heartbeat != w.heartbeat) {
        w.heartbeat = (*s)->heartbeat;
        w.changed_at = now;
      }
      if (auto o = done(**s)) {
        result[h] = *o;
        continue;
      }
      if (now - w.changed_at > opt.stale_after_ms)
        result[h] = HostOutcome{h, "lost",
                                fmt::format("no heartbeat for {} while {} (last state {})",
                                            format_duration_ms(now - w.changed_at), phase, (*s)->state)};
    }
    for (const auto& h : hosts)
      if (!result.count(h) && now - watch[h].changed_at > opt.stale_after_ms && watch[h].heartbeat < 0)
        result[h] = HostOutcome{h, "lost", fmt::format("status unreadable while {}", phase)};
    if (result.size() != last_count) {
      last_count = result.size();
      note(opt, fmt::format("{}: {}/{} hosts", phase, result.size(), hosts.size()));
    }
    if (result.size() == hosts.size()) break;
    if (now - start > opt.timeout_ms) {
      for (const auto& h : hosts)
        if (!result.count(h))
          result[h] = HostOutcome{h, "timeout", fmt::format("did not finish {} within {}", phase,
                                                            format_duration_ms(opt.timeout_ms))};
      break;
    }
    int64_t pause = master_pace_ms(min_poll, boot_ms() - now, opt, hosts.size() - result.size(), hosts.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
  }
  std::vector<HostOutcome> out;
  for (const auto& h : hosts) out.push_back(result[h]);
  return out;
}

// The acting version fence (as a cluster version is fenced before a rollout moves on): waits,
// holding marker `m` (which must hold nobody), until every live host reports `acting` in its
// status, which a host writes once it has read the pointer and handed the acting version to
// its agent. A host that goes silent meanwhile is no longer live: reported stale. One that is
// still behind at --timeout is reported, and the rollout is recorded as partial.
Status fence_acting(Share& share, Marker& m, const std::string& acting, const MasterOptions& opt, SwitchReport& rep,
                    RolloutState& rs) {
  auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  auto got = wait_hosts(share, fleet->live, &m, opt,
                        [&](const HostStatus& s) -> std::optional<HostOutcome> {
                          if (s.acting == acting) return HostOutcome{s.host, "ok", ""};
                          return std::nullopt;
                        },
                        "taking the acting version");
  if (!got) return got.error();
  std::vector<std::string> behind;
  for (const auto& o : *got) {
    if (o.outcome == "ok") continue;
    bool told = std::any_of(rep.hosts.begin(), rep.hosts.end(),
                            [&](const HostOutcome& r) { return r.host == o.host && r.outcome != "ok"; });
    if (o.outcome == "lost") {
      if (!told) rep.hosts.push_back({o.host, "stale", o.detail});
      continue;
    }
    behind.push_back(o.host);
    if (!told) rep.hosts.push_back({o.host, o.outcome, fmt::format("has not taken acting version {}: {}", acting, o.detail)});
  }
  if (!behind.empty()) {
    if (rs.phase == "done") rs.phase = "partial";
    rs.note += fmt::format("{}acting version {} not taken by {}", rs.note.empty() ? "" : "; ", acting, join(behind, " "));
  }
  return ok_status();
}

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
  const bool undo = m.action == "push" && old && (ok.empty() || over);
  rs.note = failure_note(m.release, ok.empty(), failed, opt.max_failures);
  Pointer p = undo ? *old : np;
  p.generation = m.generation + 1;
  p.action = undo ? "rollback" : m.action;
  p.updated = utc_now_iso();
  p.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
  if (!undo) keep_with_host_lines(share, p, failed, rs);
  note(opt, undo ? fmt::format("{}; undoing the {}: current -> {}", rs.note, m.action, p.release)
                 : fmt::format("{}; they keep their release (acting version {})", rs.note, p.acting));
  m.generation = p.generation;
  if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s.error();
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
static Result<std::vector<HostOutcome>> wait_started(Share& share, const std::vector<std::string>& go, Marker& m,
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
static Error after_switch_error(Share& share, Error e, const std::string& action, const SwitchReport& rep,
                                const std::string& target, int64_t gen, const MasterOptions& opt) {
  if (e.code != Exit::Interrupted) return e;
  release_marker(share, opt);
  (void)share.audit(action, fmt::format("{} -> {}", rep.previous.empty() ? "-" : rep.previous, target),
                    "switched; interrupted while hosts started");
  return interrupted_error(opt, fmt::format("while hosts were starting {}: the switch is done (generation {}), "
                                            "nothing to back out; hosts go on starting it ('nfsup-install status')",
                                            target, gen));
}

// The end of an all-at-once switch, once the pointer names the target: the hosts start it while
// the marker, holding nobody, stays up; the failure policy settles the pointer; the acting
// version is fenced; then the marker goes.
Result<SwitchReport> finish_switch(Share& share, Marker& m, const std::optional<Pointer>& old, const Pointer& np,
                                   const std::vector<std::string>& go, const MasterOptions& opt, SwitchReport rep) {
  const std::string action = m.action, target = m.release;
  const int64_t gen = m.generation;
  RolloutState rs;
  if (auto last = read_rollout(share); last && *last) rs.migrated = (*last)->migrated;
  rs.acting = np.acting;
  rs.target = target;
  rs.phase = opt.wait ? "switching" : "switched";  // "done" only once the hosts have shown it
  rs.master_host = short_hostname();
  rs.master_pid = getpid();
  rs.lease_ms = opt.lease_ms;
  for (const auto& h : go) rs.installed[h] = target;
  (void)write_rollout(share, rs);
  crash_point("switch-after-pointer");
  note(opt, fmt::format("current -> {}", target));
  if (!opt.wait) {
    if (auto u = share.fs().unlink(share.marker_path()); !u) return u.error();
    crash_point("switch-after-unmark");
    note(opt, "marker removed; hosts restart on the new release");
    for (const auto& h : go) rep.hosts.push_back({h, "ok", "not waited for (--no-wait)"});
    (void)share.audit(action, fmt::format("{} -> {}", rep.previous, target), "switched");
    return rep;
  }
  // The marker stays up, holding nobody: the hosts start the target, other masters stay out,
  // and every host reads the pointer at each poll until the acting version is fenced.
  m.targets = std::vector<std::string>{};
  if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s.error();
  note(opt, "hosts restart on the new release");
  auto started = wait_started(share, go, m, gen, target, opt);
  if (!started) return after_switch_error(share, started.error(), action, rep, target, gen, opt);
  auto settled = settle_switch(share, m, old, np, *started, opt, rep, rs);
  if (!settled) return after_switch_error(share, settled.error(), action, rep, target, gen, opt);
  if (auto s = fence_acting(share, m, settled->acting.empty() ? settled->release : settled->acting, opt, rep, rs); !s)
    return after_switch_error(share, s.error(), action, rep, target, gen, opt);
  (void)write_rollout(share, rs);
  if (auto u = share.fs().unlink(share.marker_path()); !u) return u.error();
  crash_point("switch-after-unmark");
  note(opt, "marker removed");
  std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& b) { return a.host < b.host; });
  if (auto deps = check_dependencies(share, opt.stale_after_ms); deps) rep.dependency_problems = *deps;
  (void)share.audit(action, fmt::format("{} -> {}{}", rep.previous.empty() ? "-" : rep.previous, target,
                                        rep.undone_to.empty() ? "" : fmt::format(" undone: {}", rs.note)),
                    !rep.undone_to.empty() ? "undone" : rep.all_ok() ? "ok" : "failed");
  return rep;
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
    back.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
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
  auto created = share.fs().publish_new(share.marker_path(), pack_marker(m), 0644);
  if (!created) return created.error();
  if (!*created)
    return err(Exit::Busy, fmt::format("{}: another master created the marker first", share.marker_path()));
  crash_point((step + "-after-marker").c_str());
  return reread_pointer_under_marker(share, ptr, opt);
}

Result<SwitchReport> run_switch_impl(Share& share, const std::string& target, const std::string& action,
                                const MasterOptions& opt, SwitchReport rep) {
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  rep.target = target;
  rep.previous = *ptr ? (*ptr)->release : "";
  rep.generation = (*ptr ? (*ptr)->generation : 0) + 1;
  auto existing = share.read_marker();
  if (!existing) return existing.error();
  if (*existing)
    return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) holds the marker since {}; if it died, run "
                                       "'nfsup-install abort {}'",
                                       share.marker_path(), (*existing)->action, (*existing)->release,
                                       (*existing)->master_host, (*existing)->master_pid, (*existing)->started,
                                       share.root()));
  if (*ptr && (*ptr)->release == target) {
    // Already the pointer's release: done if every live host runs it; otherwise switch again
    // under a new generation so hosts that refused or failed it try once more.
    auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!fleet) return fleet.error();
    bool all = true;
    for (const auto& h : fleet->live) {
      auto s = share.read_status(h);
      if (!s || !*s || (*s)->state != "running" || (*s)->running != target) all = false;
    }
    if (all) {
      rep.nothing_to_do = true;
      note(opt, fmt::format("{} is already the current release on every live host; nothing to switch", target));
      return rep;
    }
    note(opt, fmt::format("{} is the current release but not every live host runs it; switching again", target));
  }
  note(opt, fmt::format("verifying release {}", target));
  auto problems = share.verify_release(target);
  if (!problems) return problems.error();
  if (!problems->empty())
    return err(Exit::Integrity, fmt::format("release {} fails verification: {}", target, (*problems)[0]));

  // Hosts say in their status whether they vote with local checks. When no live host does,
  // a vote could only accept: the marker starts in its stop phase and saves hosts one poll
  // (a cron-mode host: one tick). A host that does not say (older status) gets a vote phase.
  auto hints = survey(share, server_now_ms(share), opt.stale_after_ms);
  if (!hints) return hints.error();
  Marker m = make_marker(rep.generation, action, target, rep.previous, opt);
  const bool partial = !opt.hosts.empty() || !opt.cls.empty();
  if (!opt.hosts.empty()) m.targets = opt.hosts;
  // (--class names its hosts only after the survey below: until then, a vote phase holds nobody.)
  m.phase = hints->votes || !opt.cls.empty() ? "vote" : "stop";
  auto moved = acquire_marker(share, m, ptr, opt, "switch");
  if (!moved) return moved.error();
  if (*moved) {
    rep.previous = *ptr ? (*ptr)->release : "";
    rep.generation = (*ptr ? (*ptr)->generation : 0) + 1;
    m.generation = rep.generation;
    m.previous = rep.previous;
    if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) {
      release_marker(share, opt);
      return s.error();
    }
  }
  (void)share.audit(action, fmt::format("start {} -> {} generation {}", rep.previous.empty() ? "-" : rep.previous,
                                        target, m.generation),
                    "started");
  note(opt, fmt::format("marker written: {} {} -> {} (generation {})", action,
                        rep.previous.empty() ? "-" : rep.previous, target, m.generation));

  // Which hosts are live, judged by server-stamped times only.
  int64_t now = 0;
  {
    auto st = share.fs().stat(share.marker_path());
    now = (st && *st) ? (*st)->mtime_ms : server_now_ms(share);
  }
  auto fleet = survey(share, now, opt.stale_after_ms);
  if (!fleet) return fleet.error();
  auto drop_marker = [&]() { release_marker(share, opt); };
  if (partial) {
    // Only the named hosts, or the hosts of one class, take part.
    std::vector<std::string> keep = targeted(share, fleet->live, opt);
    std::vector<HostOutcome> skipped;
    for (auto& s : fleet->skipped)
      if (opt.hosts.empty() || std::find(opt.hosts.begin(), opt.hosts.end(), s.host) != opt.hosts.end())
        skipped.push_back(s);
    fleet->skipped = skipped;
    fleet->live = keep;
    if (keep.empty()) {
      drop_marker();
      return err(Exit::Usage, opt.cls.empty() ? "none of the --hosts is live"
                                              : fmt::format("no live host of class '{}'", opt.cls));
    }
    m.targets = keep;
    if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s.error();
  }
  for (auto& s : fleet->skipped) {
    note(opt, fmt::format("skipping {}: {}", s.host, s.detail));
    rep.hosts.push_back(s);
  }
  const int64_t gen = m.generation;

  // Votes: every targeted live host runs its checks and answers before anybody stops.
  if (m.phase == "vote") {
    auto go = vote_round(share, m, fleet->live, hints->min_poll_ms, opt, rep,
                         fmt::format("{} -> {}", rep.previous.empty() ? "-" : rep.previous, target));
    if (!go) return go.error();
    if (go->size() != fleet->live.size()) {
      fleet->live = *go;
      m.targets = *go;
    }
    m.phase = "stop";
    if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s.error();
  }
  const bool subset = m.targets.has_value();
  auto stopped = wait_hosts(share, fleet->live, &m, opt,
                            [&](const HostStatus& s) -> std::optional<HostOutcome> {
                              if (s.generation >= gen && (s.state == "stopped" || s.state == "unchanged"))
                                  return HostOutcome{s.host, "ok", ""};
                              return std::nullopt;
                            },
                            "stopping");
  const std::optional<Pointer> old = *ptr;
  if (!stopped && stopped.error().code == Exit::Interrupted) {
    auto b = back_out(share, old, gen, opt);
    (void)share.audit(action, fmt::format("{} -> {} interrupted while hosts stopped; backed out", rep.previous, target),
                      "interrupted");
    if (!b) return b.error();
    return interrupted_error(opt, fmt::format("the {} of {} backed out while hosts were stopping; the marker is "
                                              "removed and hosts resume {}",
                                              action, target, rep.previous.empty() ? "nothing" : rep.previous));
  }
  if (!stopped) return stopped.error();
  std::vector<std::string> go;
  std::vector<HostOutcome> not_stopped;
  for (const auto& o : *stopped) {
    if (o.outcome == "ok") go.push_back(o.host);
    else if (o.outcome == "lost") rep.hosts.push_back(o);
    else not_stopped.push_back(o);
  }
  if (!not_stopped.empty()) {
    // Some live host never stopped: back out. The pointer is re-written with the old release and
    // the same generation so hosts that did stop resume it.
    note(opt, fmt::format("{} host(s) did not stop; backing out", not_stopped.size()));
    if (auto s = back_out(share, old, gen, opt); !s) return s.error();
    (void)share.audit(action, fmt::format("{} -> {} backed out", rep.previous, target), "failed");
    for (auto& o : not_stopped) rep.hosts.push_back(o);
    return rep;
  }
  crash_point("switch-after-stopped");
  if (action == "push" && *ptr && !subset) {
    // Every live host is stopped: the moment to bring shared data to the new format.
    // (A switch of part of the fleet leaves the acting version and the data alone.)
    RolloutState rs;
    if (auto old = read_rollout(share); old && *old) rs = **old;
    std::string from = (*ptr)->acting.empty() ? (*ptr)->release : (*ptr)->acting;
    if (compare_versions(target, from) > 0)
      if (auto s = run_migration(share, from, target, rs, m, opt); !s) {
        Error e = s.error();
        if (auto b = back_out(share, old, gen, opt); !b) e.msg += "; backing out: " + b.error().msg;
        else if (e.code == Exit::Interrupted) e.msg += "; backed out: the marker is removed and hosts resume " + rep.previous;
        (void)share.audit(action, fmt::format("{} -> {}", rep.previous, target), "failed: " + s.error().msg);
        return e;
      }
  }
  Pointer np;
  np.generation = gen;
  np.release = target;
  np.previous = rep.previous;
  np.action = action;
  np.updated = utc_now_iso();
  np.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
  np.acting = target;  // all-at-once: every host runs the target, so it is the acting version
  if (subset && *ptr) {
    // Part of the fleet: the others keep the release they have; the named hosts get overrides.
    np = **ptr;
    np.generation = gen;
    np.action = action;
    np.updated = utc_now_iso();
    np.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
    for (const auto& h : go) np.overrides[h] = target;
    for (auto it = np.overrides.begin(); it != np.overrides.end();)
      it = it->second == np.release ? np.overrides.erase(it) : std::next(it);
    std::string lowest = np.release;
    for (const auto& [h, v] : np.overrides)
      if (compare_versions(v, lowest) < 0) lowest = v;
    np.acting = lowest;
  }
  if (auto s = write_pointer(share, np, opt); !s) return s.error();
  return finish_switch(share, m, *ptr, np, go, opt, std::move(rep));
}

}  // namespace

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

Result<std::optional<Timeline>> read_last_timeline(Share& share) {
  std::string dir = path_join(share.root(), "rollouts");
  auto st = share.fs().stat(dir);
  if (!st) return st.error();
  if (!*st) return std::optional<Timeline>();
  auto l = share.fs().list_dir(dir);
  if (!l) return l.error();
  std::string best;
  for (const auto& e : *l)
    if (e.type == FileInfo::File && !e.name.empty() && e.name[0] != '.' && e.name > best) best = e.name;
  if (best.empty()) return std::optional<Timeline>();
  auto t = share.fs().read_file(path_join(dir, best), kManifestMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Timeline>();
  auto tl = unpack_timeline(**t, path_join(dir, best));
  if (!tl) return tl.error();
  return std::optional<Timeline>(*tl);
}

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

namespace {

Status write_rollout(Share& share, const RolloutState& s) {
  return share.fs().write_atomic(path_join(share.root(), "state"), pack_rollout(s), 0644);
}

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
  char tmpl[] = "/tmp/nfsup-migrate.XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return err(Exit::Failed, "mkstemp: " + errno_str(errno));
  auto h = hash_file(path_join(share.release_dir(target), entry->path), fd, tmpl);
  ::fchmod(fd, 0700);
  ::close(fd);
  if (!h || h->sha256 != entry->sha256) {
    ::unlink(tmpl);
    return err(Exit::Integrity, fmt::format("release {}: migration hook does not match its manifest hash", target));
  }
  note(opt, fmt::format("acting version {} -> {}: running {}'s migration hook", from, target, target));
  SpawnSpec s;
  s.argv = {tmpl};
  s.env = {{"NFSUP_SHARE", share.root()}, {"NFSUP_FROM_VERSION", from}, {"NFSUP_TO_VERSION", target}};
  int64_t last_renew = boot_ms() - marker.lease_ms;  // renew at once: the last wait may have used up most of it
  Status lease = ok_status();
  auto r = run_with_timeout(s, opt.migrate_timeout_ms, [&] {
    if (interrupted(opt)) return false;
    lease = renew_lease(share, marker, last_renew);
    return static_cast<bool>(lease);
  });
  ::unlink(tmpl);
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
  (void)share.audit("migrate", fmt::format("{} -> {}", from, target), "ok");
  return write_rollout(share, st);
}

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
static std::vector<std::string> next_batch(std::vector<std::string>& remaining,
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
  (void)share.audit("push", fmt::format("rolling {} -> {} batch {} max-failures {}", base.release, target, opt.batch,
                                        max_failures),
                    "started");
  auto rewrite_marker = [&]() { return share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); };
  if (votes) {
    auto go = vote_round(share, m, todo, fleet->min_poll_ms, opt, rep,
                         fmt::format("rolling {} -> {}", base.release, target));
    if (!go) return go.error();
    for (const auto& h : todo)
      if (std::find(go->begin(), go->end(), h) == go->end()) vetoed.push_back(h);
    todo = *go;
    m.phase = "stop";
    m.targets = std::vector<std::string>{};
    if (auto s = rewrite_marker(); !s) return s.error();
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
    (void)rewrite_marker();
    if (auto s = write_pointer(share, cur, opt); !s) {
      release_marker(share, opt);
      return s.error();
    }
    if (wait_back)
      (void)wait_hosts(share, upgraded, &m, opt,  // its outcome changes nothing: the marker goes anyway
                       [&](const HostStatus& s) -> std::optional<HostOutcome> {
                         if (s.generation >= gen && s.running == base.release &&
                             (s.state == "running" || s.state == "failed"))
                           return HostOutcome{s.host, "ok", ""};
                         return std::nullopt;
                       },
                       "rolling back");
    release_marker(share, opt);
    rs.phase = "failed";
    rs.note = why;
    (void)write_rollout(share, rs);
    (void)share.audit("push", fmt::format("rolling {} -> {}", base.release, target), "rolled back: " + why);
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
    (void)write_rollout(share, rs);
    if (auto s = rewrite_marker(); !s) return s.error();
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
    if (auto s = rewrite_marker(); !s) return s.error();
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
    (void)write_rollout(share, rs);
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
      (void)write_rollout(share, rs);
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
  (void)write_rollout(share, rs);
  note(opt, fmt::format("rollout of {} {}; acting version {}", target,
                        rs.phase == "done" ? "complete" : rs.phase, cur.acting));
  for (const auto& h : upgraded) rep.hosts.push_back({h, "ok", ""});
  rep.generation = gen;
  std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& c) { return a.host < c.host; });
  if (auto deps = check_dependencies(share, opt.stale_after_ms); deps) rep.dependency_problems = *deps;
  (void)share.audit("push", fmt::format("rolling {} -> {} acting {}", base.release, target, cur.acting),
                    rep.all_ok() ? "ok" : "failed");
  return rep;
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
  g_timeline = &t;
  auto r = run();
  g_timeline = nullptr;
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

}  // namespace

// Why finalize has nothing to do (a message) or cannot (an error); nullopt: it can go on.
static std::optional<Result<std::string>> finalize_refusal(const std::optional<Pointer>& p) {
  if (!p) return Result<std::string>(err(Exit::Usage, "nothing has been pushed yet"));
  std::string acting = p->acting.empty() ? p->release : p->acting;
  if (acting == p->release && p->overrides.empty()) return Result<std::string>("acting version is already " + acting);
  if (!p->overrides.empty())
    return Result<std::string>(err(Exit::Usage, fmt::format("hosts {} do not run {} yet; cannot finalize",
                                                            p->overrides.begin()->first, p->release)));
  return std::nullopt;
}

Result<std::string> finalize(Share& share, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (auto r = finalize_refusal(*ptr)) return *r;
  auto acting_of = [](const Pointer& p) { return p.acting.empty() ? p.release : p.acting; };
  Marker m = make_marker((*ptr)->generation + 1, "push", (*ptr)->release, acting_of(**ptr), opt);
  m.strategy = "rolling";
  m.targets = std::vector<std::string>{};  // holds the lock, stops nobody
  auto moved = acquire_marker(share, m, ptr, opt, "finalize");
  if (!moved) return moved.error();
  if (*moved) {
    if (auto r = finalize_refusal(*ptr)) {
      release_marker(share, opt);
      return *r;
    }
    m.generation = (*ptr)->generation + 1;
    m.release = (*ptr)->release;
    m.previous = acting_of(**ptr);
    if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) {
      release_marker(share, opt);
      return s.error();
    }
  }
  Pointer cur = **ptr;
  const std::string acting = acting_of(cur);
  RolloutState rs;
  if (auto old = read_rollout(share); old && *old) rs = **old;
  auto mig = run_migration(share, acting, cur.release, rs, m, opt);
  if (!mig) {
    release_marker(share, opt);
    Error e = mig.error();
    if (e.code == Exit::Interrupted) {
      e.msg += fmt::format("; backed out: the acting version stays {}; the marker is removed", acting);
      (void)share.audit("finalize", fmt::format("acting {} -> {}", acting, cur.release), "interrupted");
    }
    return e;
  }
  cur.acting = cur.release;
  cur.generation = m.generation;
  if (auto s = write_pointer(share, cur, opt); !s) {
    release_marker(share, opt);
    return s.error();
  }
  rs.acting = cur.release;
  rs.phase = "done";
  rs.note.clear();
  SwitchReport fenced;
  if (auto s = fence_acting(share, m, cur.release, opt, fenced, rs); !s) {
    release_marker(share, opt);
    return s.error();
  }
  release_marker(share, opt);
  (void)write_rollout(share, rs);
  (void)share.audit("finalize", fmt::format("acting {} -> {}", acting, cur.release), rs.phase == "done" ? "ok" : "failed");
  if (rs.phase != "done") {
    std::vector<std::string> lines;
    for (const auto& h : fenced.hosts)
      if (h.outcome != "stale") lines.push_back(fmt::format("{}: {}", h.host, h.detail));
    return err(Exit::Failed, fmt::format("acting version {} -> {}, but not every live host has taken it:\n  {}", acting,
                                         cur.release, join(lines, "\n  ")));
  }
  return fmt::format("acting version {} -> {}", acting, cur.release);
}

Result<DryRunPlan> dry_run_plan(Share& share, const std::string& action, const std::string& target,
                                              const Manifest* staged, const MasterOptions& opt) {
  DryRunPlan out;
  auto say = [&](std::string l) { out.lines.push_back(std::move(l)); };
  // A step the real run would refuse: said, and its exit code kept (the first one wins).
  auto refuse = [&](Exit code, std::string l) {
    if (out.exit_code == 0) out.exit_code = static_cast<int>(code);
    say("refused now: " + std::move(l));
  };
  if (auto s = share.check(); !s) return s.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  const std::string cur = *ptr ? (*ptr)->release : "";
  if (auto mk = share.read_marker(); !mk) {
    return mk.error();
  } else if (*mk) {
    refuse(Exit::Busy, fmt::format("a {} of {} by {} (pid {}) holds the marker ('nfsup-install abort' if it died)",
                    (*mk)->action, (*mk)->release, (*mk)->master_host, (*mk)->master_pid));
  }
  auto kept = share.list_releases();
  if (!kept) return kept.error();
  const bool on_share = std::find(kept->begin(), kept->end(), target) != kept->end();
  if (staged) {
    uint64_t files = 0, bytes = 0, new_files = 0, new_bytes = 0;
    for (const auto& e : staged->entries) {
      if (e.kind != ManifestEntry::File) continue;
      ++files;
      bytes += e.size;
      auto st = share.fs().stat(share.object_path(e.sha256, e.mode));
      if (!st) return st.error();
      if (!*st) {
        ++new_files;
        new_bytes += e.size;
      }
    }
    if (on_share) {
      auto have = share.read_manifest(target);
      if (!have) return have.error();
      const bool same = *have && same_content(**have, *staged);
      if (same) say(fmt::format("release {} is already on the share with the same files: nothing to copy", target));
      else refuse(Exit::Usage, fmt::format("release {} is already on the share with other files (releases are "
                                           "immutable: pick a new --version)",
                                           target));
    } else {
      say(fmt::format("would stage {}: {} file(s), {} bytes; would copy the {} ({} bytes) not on the share yet",
                      target, files, bytes, new_files, new_bytes));
    }
  } else if (!on_share) {
    return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", target, join(*kept, ", ")));
  }
  // The fleet, judged by this machine's clock (a dry run writes nothing, not even the clock probe).
  auto fleet = survey(share, unix_ms(), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  std::map<std::string, HostStatus> st;
  for (const auto& h : fleet->live)
    if (auto s = share.read_status(h); s && *s) st[h] = **s;
  std::vector<std::string> live;
  for (const auto& h : fleet->live) {
    if (!opt.hosts.empty() && std::find(opt.hosts.begin(), opt.hosts.end(), h) == opt.hosts.end()) continue;
    if (!opt.cls.empty() && st[h].cls != opt.cls) continue;
    live.push_back(h);
  }
  for (const auto& h : opt.hosts)
    if (std::find(live.begin(), live.end(), h) == live.end())
      say(fmt::format("--hosts {}: not a live host; it would be left out", h));
  for (const auto& s : fleet->skipped)
    if (opt.hosts.empty() || std::find(opt.hosts.begin(), opt.hosts.end(), s.host) != opt.hosts.end())
      say(fmt::format("would skip {}: {} ({})", s.host, s.outcome, s.detail));
  std::vector<std::string> todo, there, voters;
  for (const auto& h : live) {
    const HostStatus& s = st[h];
    if (s.state == "running" && s.running == target) there.push_back(h);
    else todo.push_back(h);
    if (s.checks != "no") voters.push_back(h);
  }
  if (live.empty()) {
    if (!opt.hosts.empty() || !opt.cls.empty()) refuse(Exit::Usage, "no live host is targeted");
    else say("no live host: the pointer would move, and hosts would start " + target + " when they come up");
    return out;
  }
  if (!there.empty()) say(fmt::format("already running {}: {}", target, join(there, " ")));
  const bool rolling = action == "push" && opt.strategy == "rolling";
  if (!voters.empty())
    say(fmt::format("would ask {} to vote first (their checks_dir; --vote-timeout {}{})", join(voters, " "),
                    format_duration_ms(opt.vote_timeout_ms),
                    opt.force ? ", --force: vetoes overridden" : opt.skip_vetoed ? ", --skip-vetoed: vetoed hosts left out" : ""));
  else
    say("no vote round: no targeted live host has checks");
  if (!rolling) {
    say(fmt::format("would {} {} host(s) all at once: {} -> {}: {}", action == "push" ? "switch" : "roll back",
                    live.size(), cur.empty() ? "-" : cur, target, join(live, " ")));
    return out;
  }
  if (!*ptr) {
    refuse(Exit::Usage, "the first release must be pushed all-at-once");
    return out;
  }
  if (staged && !staged->min_compatible.empty())
    for (const auto& [h, s] : st)
      if (!s.running.empty() && compare_versions(s.running, staged->min_compatible) < 0)
        refuse(Exit::Usage, fmt::format("{} runs {}, below --min-compatible {}: push it all-at-once", h, s.running,
                                        staged->min_compatible));
  int b = batch_size(opt.batch, st.size());
  if (b < 0) return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
  std::vector<std::string> remaining = todo;
  for (int i = 1; !remaining.empty(); ++i)
    say(fmt::format("rolling batch {} ({} at most, {} per group): {}", i, b, opt.max_unavailable,
                    join(next_batch(remaining, st, b, opt.max_unavailable), " ")));
  say(fmt::format("acting version {} until every host runs {}{}", (*ptr)->acting.empty() ? cur : (*ptr)->acting,
                  target, opt.hold_acting ? " and 'finalize' is run (--hold-acting)" : ""));
  return out;
}

// Every flag of a push, checked before the release is staged: a refused push writes nothing.
static Status check_push_flags(Share& share, const PushRequest& req, const MasterOptions& opt) {
  if (!valid_batch(opt.batch))
    return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
  if (opt.strategy == "rolling" && (!opt.hosts.empty() || !opt.cls.empty()))
    return err(Exit::Usage, "--hosts and --class do not combine with --strategy rolling (a rollout covers the fleet)");
  auto p = share.read_pointer();
  if (!p) return p.error();
  if (!*p && (!opt.hosts.empty() || !opt.cls.empty()))
    return err(Exit::Usage, "the first release goes to every host; --hosts and --class need a current release");
  if (!*p && opt.strategy == "rolling")
    return err(Exit::Usage, "the first release must be pushed all-at-once (no release runs yet)");
  if (*p && opt.strategy == "rolling" && !(*p)->overrides.empty())
    return err(Exit::Usage, fmt::format("{}: a rollout is unfinished (hosts {} have their own release); roll back or "
                                        "push all-at-once first",
                                        share.pointer_path(), (*p)->overrides.begin()->first));
  if (auto s = check_targets(share, opt); !s) return s.error();
  if (auto s = check_signer(share, opt); !s) return s.error();
  if (opt.strategy == "rolling" && !req.stage.min_compatible.empty()) {
    // Refuse an incompatible rolling push before anything is written.
    auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!fleet) return fleet.error();
    std::vector<std::string> bad;
    for (const auto& h : fleet->live) {
      auto s = share.read_status(h);
      if (s && *s && !(*s)->running.empty() && compare_versions((*s)->running, req.stage.min_compatible) < 0)
        bad.push_back(h + " runs " + (*s)->running);
    }
    if (!bad.empty())
      return err(Exit::Usage, fmt::format("a rolling upgrade to {} would run it beside releases it cannot run beside "
                                          "(--min-compatible {}; {}); push it with --strategy all-at-once",
                                          req.stage.version, req.stage.min_compatible, join(bad, ", ")));
  }
  return ok_status();
}

Result<SwitchReport> push(Share& share, const PushRequest& req, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto existing = share.read_marker();
  if (!existing) return existing.error();
  if (*existing)
    return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) is in progress; if it died, run "
                                       "'nfsup-install abort {}'",
                                       share.marker_path(), (*existing)->action, (*existing)->release,
                                       (*existing)->master_host, (*existing)->master_pid, share.root()));
  if (auto s = check_push_flags(share, req, opt); !s) return s.error();
  SwitchReport rep;
  StageRequest sr = req.stage;
  sr.interrupt = opt.interrupt;
  sr.progress = opt.progress;
  sr.sign_key = opt.sign_key;
  auto staged = stage_release(share, sr);
  if (!staged) return staged.error();
  rep.stage = *staged;
  note(opt, staged->already_published
                ? fmt::format("release {} is already on the share with the same content; nothing copied", sr.version)
                : fmt::format("staged {}: {} bytes, {} written to the share", sr.version, staged->bytes_total,
                              staged->bytes_written));
  if (!staged->already_published)
    (void)share.audit("stage", fmt::format("{} {} bytes ({} written)", sr.version, staged->bytes_total,
                                           staged->bytes_written),
                      "ok");
  crash_point("push-after-stage");
  if (interrupted(opt)) return interrupted_error(opt, fmt::format("{} is staged; nothing was switched", sr.version));
  if (opt.strategy == "rolling") return run_rolling(share, sr.version, opt, rep);
  return run_switch(share, sr.version, "push", opt, rep);
}

bool valid_batch(const std::string& spec) { return batch_size(spec, 1) > 0; }

Result<std::string> rollback_target(Share& share, const std::string& to) {
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (!*ptr) return err(Exit::Usage, fmt::format("{}: no release has been pushed yet; nothing to roll back", share.root()));
  auto kept = share.list_releases();
  if (!kept) return kept.error();
  auto is_kept = [&](const std::string& v) { return std::find(kept->begin(), kept->end(), v) != kept->end(); };
  if (!to.empty()) {
    if (auto e = check_version_name(to)) return err(Exit::Usage, fmt::format("--to: {}", *e));
    if (!is_kept(to))
      return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", to, join(*kept, ", ")));
    return to;
  }
  // The release the last switch replaced, not the newest one below: a release can sit on the
  // share without ever having run (its push was refused or its master died after staging).
  const Pointer& p = **ptr;
  if (p.previous.empty() || p.previous == p.release)
    return err(Exit::Usage, fmt::format("{} names no previous release to go back to; use --to (kept: {})",
                                        share.pointer_path(), join(*kept, ", ")));
  if (compare_versions(p.previous, p.release) > 0)
    return err(Exit::Usage, fmt::format("the last switch went from {} back to {}; a rollback without --to would "
                                        "return to {}: name the release with --to (kept: {})",
                                        p.previous, p.release, p.previous, join(*kept, ", ")));
  if (!is_kept(p.previous))
    return err(Exit::Usage, fmt::format("the previous release {} is no longer on the share; use --to (kept: {})",
                                        p.previous, join(*kept, ", ")));
  return p.previous;
}

Result<SwitchReport> rollback(Share& share, const std::string& to_in, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto to = rollback_target(share, to_in);
  if (!to) return to.error();
  if (auto s = check_targets(share, opt); !s) return s.error();
  if (auto s = check_signer(share, opt); !s) return s.error();
  SwitchReport rep;
  return run_switch(share, *to, "rollback", opt, rep);
}

Result<AbortReport> abort_push(Share& share, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  AbortReport rep;
  auto m = share.read_marker();
  if (!m) return m.error();
  if (*m) {
    rep.had_marker = true;
    const Marker& mk = **m;
    bool alive = false;
    if (mk.master_host == short_hostname()) {
      alive = ::kill(static_cast<pid_t>(mk.master_pid), 0) == 0 || errno == EPERM;
      if (alive && !opt.force)
        return err(Exit::Busy, fmt::format("the {} by pid {} on this host is still running; stop it first, or "
                                           "use --force",
                                           mk.action, mk.master_pid));
    } else if (!opt.force) {
      // Another host's master: it is alive if it renews the lease.
      note(opt, fmt::format("watching the lease of {} (pid {}) for up to {}", mk.master_host, mk.master_pid,
                            format_duration_ms(mk.lease_ms)));
      int64_t until = boot_ms() + mk.lease_ms + opt.poll_ms;
      while (boot_ms() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(opt.poll_ms));
        auto again = share.read_marker();
        if (!again) return again.error();
        if (!*again || (*again)->nonce != mk.nonce) {
          rep.notes.push_back("the marker went away by itself");
          return rep;
        }
        if ((*again)->renewal != mk.renewal)
          return err(Exit::Busy, fmt::format("the {} by {} (pid {}) is alive (it renewed its lease); use --force "
                                             "to abort it anyway",
                                             mk.action, mk.master_host, mk.master_pid));
      }
    }
    auto ptr = share.read_pointer();
    if (!ptr) return ptr.error();
    if (*ptr && (*ptr)->generation < mk.generation) {
      Pointer back = **ptr;
      back.generation = mk.generation;
      back.action = "abort";
      back.updated = utc_now_iso();
      back.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
      if (auto s = write_pointer(share, back, opt); !s) return s.error();
      rep.resumed = back.release;
    } else if (*ptr) {
      rep.resumed = (*ptr)->release;  // the dead push had already switched the pointer
    }
    crash_point("abort-after-pointer");
    if (auto u = share.fs().unlink(share.marker_path()); !u) return u.error();
    rep.notes.push_back(fmt::format("removed the marker of the {} of {} by {} (pid {})", mk.action, mk.release,
                                    mk.master_host, mk.master_pid));
    (void)share.audit("abort", fmt::format("{} of {} by {}:{}", mk.action, mk.release, mk.master_host, mk.master_pid),
                      "ok");
  }
  // Leftover staging directories of dead pushes from this host.
  auto l = share.fs().list_dir(share.releases_dir());
  if (!l) return l.error();
  std::string mine = fmt::format(".{}.", short_hostname());
  for (const auto& e : *l) {
    if (!starts_with(e.name, ".staging-")) continue;
    auto dot = e.name.rfind('.');
    auto pid = parse_i64(e.name.substr(dot + 1));
    bool same_host = e.name.find(mine) != std::string::npos;
    bool dead = pid && ::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH;
    if ((same_host && dead) || opt.force) {
      if (auto s = remove_tree(share.fs(), path_join(share.releases_dir(), e.name)); s) ++rep.removed_staging;
    } else {
      rep.notes.push_back(fmt::format("left {} (another host's push; use --force to remove it)", e.name));
    }
  }
  return rep;
}

Result<StatusReport> share_status(Share& share, int64_t stale_after_ms) {
  if (auto s = share.check(); !s) return s.error();
  StatusReport rep;
  auto ro = read_rollout(share);
  if (!ro) rep.warnings.push_back(ro.error().msg);
  else rep.rollout = *ro;
  auto p = share.read_pointer();
  if (!p) rep.warnings.push_back(p.error().msg);
  else rep.pointer = *p;
  auto m = share.read_marker();
  if (!m) rep.warnings.push_back(m.error().msg);
  else rep.marker = *m;
  auto r = share.list_releases();
  if (!r) return r.error();
  rep.releases = *r;
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  int64_t now = server_now_ms(share);
  if (auto deps = check_dependencies(share, stale_after_ms); deps) rep.dependency_problems = *deps;
  for (const auto& h : *hosts) {
    HostView v;
    v.host = h;
    auto s = share.read_status(h);
    if (!s) {
      v.error = s.error().msg;
      v.stale = true;
    } else if (*s) {
      v.status = **s;
      v.age_ms = std::max<int64_t>(0, now - (*s)->mtime_ms);
      v.stale = v.age_ms > stale_after_ms;
    } else {
      continue;
    }
    rep.hosts.push_back(std::move(v));
  }
  return rep;
}

// A release tree that prune renamed out of sight may not be removable at once: on NFS, deleting a
// file that a process on the pruning client still has open silly-renames it to .nfsXXXX until
// its last close, so the directory stays non-empty. Every later prune finishes such trees.
static void sweep_deleting(Share& share, PruneReport& rep) {
  auto l = share.fs().list_dir(share.releases_dir());
  if (!l) return;
  for (const auto& e : *l) {
    if (e.type != FileInfo::Dir || !starts_with(e.name, ".deleting-")) continue;
    if (remove_tree(path_join(share.releases_dir(), e.name))) rep.leftovers_removed.push_back(e.name);
    else rep.leftovers_kept.push_back(e.name);
  }
}

Result<PruneReport> prune(Share& share, int keep, bool dry_run, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  if (keep < 1) return err(Exit::Usage, "--keep must be at least 1");
  PruneReport rep;
  auto m = share.read_marker();
  if (!m) return m.error();
  if (*m) return err(Exit::Busy, "a push is in progress; prune later");
  auto rels = share.list_releases();
  if (!rels) return rels.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  std::map<std::string, std::string> why;
  for (size_t i = 0; i < rels->size(); ++i)
    if (static_cast<int>(rels->size() - i) <= keep) why[(*rels)[i]] = "newest";
  if (*ptr) {
    why[(*ptr)->release] = "current";
    if (!(*ptr)->previous.empty()) why[(*ptr)->previous] = "previous";
    for (const auto& [h, v] : (*ptr)->overrides) why[v] = "assigned to " + h;
    std::string below;
    for (const auto& v : *rels)
      if (compare_versions(v, (*ptr)->release) < 0) below = v;
    if (!below.empty()) why[below] = "rollback target";
  }
  // Any host that reports a release, live or not: a silent host may still be running it.
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s) return err(Exit::Integrity, s.error().msg + " (prune needs every host's status)");
    if (*s && !(*s)->running.empty()) why[(*s)->running] = "runs on " + h;
    if (*s && !(*s)->runs_from.empty()) why[(*s)->runs_from] = "agent on " + h + " runs from it";
  }
  for (const auto& v : *rels) {
    if (why.count(v)) {
      rep.kept.push_back(fmt::format("{} ({})", v, why[v]));
      continue;
    }
    rep.deleted.push_back(v);
    if (dry_run) continue;
    // Out of sight first (one rename), then the tree.
    std::string gone = path_join(share.releases_dir(), fmt::format(".deleting-{}.{}.{}", v, short_hostname(), getpid()));
    if (auto s = share.fs().rename(share.release_dir(v), gone); !s) return s.error();
    (void)share.audit("prune", v, "ok");
    if (auto s = remove_tree(share.fs(), gone); !s) note(opt, s.error().msg);
  }
  if (dry_run) return rep;
  sweep_deleting(share, rep);
  // Objects whose only link is the store itself.
  auto dirs = share.fs().list_dir(share.objects_dir());
  if (!dirs) return dirs.error();
  for (const auto& d : *dirs) {
    if (d.type != FileInfo::Dir) continue;
    std::string sub = path_join(share.objects_dir(), d.name);
    auto files = share.fs().list_dir(sub);
    if (!files) continue;
    for (const auto& f : *files) {
      if (f.type != FileInfo::File || f.name[0] == '.') continue;
      auto st = share.fs().stat(path_join(sub, f.name));
      if (st && *st && (*st)->nlink == 1) {
        if (auto u = share.fs().unlink(path_join(sub, f.name)); u && *u) {
          ++rep.objects_removed;
          rep.bytes_freed += (*st)->size;
        }
      }
    }
  }
  return rep;
}

Result<VerifyReport> verify_share(Share& share) {
  if (auto s = share.check(); !s) return s.error();
  VerifyReport rep;
  auto r = share.list_releases();
  if (!r) return r.error();
  for (const auto& v : *r) {
    rep.checked.push_back(v);
    auto p = share.verify_release(v);
    if (!p) {
      rep.problems[v].push_back(p.error().msg);
      continue;
    }
    if (!p->empty()) rep.problems[v] = *p;
  }
  auto ptr = share.read_pointer();
  if (!ptr) {
    rep.problems["current"].push_back(ptr.error().msg);
  } else if (*ptr && std::find(r->begin(), r->end(), (*ptr)->release) == r->end()) {
    rep.problems["current"].push_back(fmt::format("{}: names release {} which is not on the share",
                                                  share.pointer_path(), (*ptr)->release));
  }
  auto l = share.fs().list_dir(share.releases_dir());
  if (l)
    for (const auto& e : *l)
      if (starts_with(e.name, ".staging-"))
        rep.warnings.push_back(fmt::format("{}: unfinished staging (not a release); 'abort' removes it",
                                           path_join(share.releases_dir(), e.name)));
  return rep;
}

}  // namespace nfsup
