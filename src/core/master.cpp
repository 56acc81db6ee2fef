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
#include "trust.h"

namespace nfsup {

bool SwitchReport::all_ok() const {
  for (const auto& h : hosts)
    if (h.outcome != "ok" && h.outcome != "stale") return false;
  return true;
}

static void note(const MasterOptions& o, const std::string& s) {
  if (o.note) o.note(s);
}

static std::string random_nonce() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
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
};

// Reads every host status once and splits the fleet by server-stamped age.
Result<Fleet> survey(Share& share, int64_t now_ms, int64_t stale_after_ms) {
  Fleet f;
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s) {
      f.skipped.push_back({h, "stale", "unreadable status: " + s.error().msg});
      continue;
    }
    if (!*s) continue;  // a host directory without a status yet
    int64_t age = now_ms - (*s)->mtime_ms;
    if (age > stale_after_ms) {
      f.skipped.push_back({h, "stale", fmt::format("last status {} ago", format_duration_ms(age))});
      continue;
    }
    f.live.push_back(h);
  }
  return f;
}

struct Watch {
  int64_t heartbeat = -1;
  int64_t changed_at = 0;
};

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
  while (true) {
    if (marker)
      if (auto s = renew_lease(share, *marker, last_renew); !s) return s.error();
    int64_t now = boot_ms();
    for (const auto& h : hosts) {
      if (result.count(h)) continue;
      auto s = share.read_status(h);
      if (!s || !*s) continue;
      auto& w = watch[h];
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
    std::this_thread::sleep_for(std::chrono::milliseconds(opt.poll_ms));
  }
  std::vector<HostOutcome> out;
  for (const auto& h : hosts) out.push_back(result[h]);
  return out;
}

Result<SwitchReport> run_switch(Share& share, const std::string& target, const std::string& action,
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

  Marker m;
  m.generation = rep.generation;
  m.action = action;
  m.release = target;
  m.previous = rep.previous;
  m.master_host = short_hostname();
  m.master_pid = getpid();
  m.nonce = random_nonce();
  m.lease_ms = opt.lease_ms;
  m.started = utc_now_iso();
  auto created = share.fs().publish_new(share.marker_path(), pack_marker(m), 0644);
  if (!created) return created.error();
  if (!*created) return err(Exit::Busy, fmt::format("{}: another master created the marker first", share.marker_path()));
  crash_point("switch-after-marker");
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
  for (auto& s : fleet->skipped) {
    note(opt, fmt::format("skipping {}: {}", s.host, s.detail));
    rep.hosts.push_back(s);
  }
  const int64_t gen = m.generation;
  auto stopped = wait_hosts(share, fleet->live, &m, opt,
                            [&](const HostStatus& s) -> std::optional<HostOutcome> {
                              if (s.generation >= gen && s.state == "stopped") return HostOutcome{s.host, "ok", ""};
                              return std::nullopt;
                            },
                            "stopping");
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
    if (*ptr) {
      Pointer back = **ptr;
      back.generation = gen;
      back.action = "abort";
      back.updated = utc_now_iso();
      back.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
      if (auto s = write_pointer(share, back, opt); !s) return s.error();
    }
    (void)share.fs().unlink(share.marker_path());
    (void)share.audit(action, fmt::format("{} -> {} backed out", rep.previous, target), "failed");
    for (auto& o : not_stopped) rep.hosts.push_back(o);
    return rep;
  }
  crash_point("switch-after-stopped");
  Pointer np;
  np.generation = gen;
  np.release = target;
  np.previous = rep.previous;
  np.action = action;
  np.updated = utc_now_iso();
  np.updated_by = fmt::format("{}:{}", short_hostname(), getpid());
  if (auto s = write_pointer(share, np, opt); !s) return s.error();
  crash_point("switch-after-pointer");
  note(opt, fmt::format("current -> {}", target));
  if (auto u = share.fs().unlink(share.marker_path()); !u) return u.error();
  crash_point("switch-after-unmark");
  note(opt, "marker removed; hosts restart on the new release");
  if (!opt.wait) {
    for (const auto& h : go) rep.hosts.push_back({h, "ok", "not waited for (--no-wait)"});
    (void)share.audit(action, fmt::format("{} -> {}", rep.previous, target), "switched");
    return rep;
  }
  auto started = wait_hosts(share, go, nullptr, opt,
                            [&](const HostStatus& s) -> std::optional<HostOutcome> {
                              if (s.generation < gen) return std::nullopt;
                              if (s.state == "running" && s.running == target) return HostOutcome{s.host, "ok", ""};
                              if (s.state == "failed") return HostOutcome{s.host, "failed", s.reason};
                              return std::nullopt;
                            },
                            "starting");
  if (!started) return started.error();
  for (auto& o : *started) rep.hosts.push_back(o);
  std::sort(rep.hosts.begin(), rep.hosts.end(), [](auto& a, auto& b) { return a.host < b.host; });
  (void)share.audit(action, fmt::format("{} -> {}", rep.previous.empty() ? "-" : rep.previous, target),
                    rep.all_ok() ? "ok" : "failed");
  return rep;
}

}  // namespace

Result<SwitchReport> push(Share& share, const PushRequest& req, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto existing = share.read_marker();
  if (!existing) return existing.error();
  if (*existing)
    return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) is in progress; if it died, run "
                                       "'nfsup-install abort {}'",
                                       share.marker_path(), (*existing)->action, (*existing)->release,
                                       (*existing)->master_host, (*existing)->master_pid, share.root()));
  SwitchReport rep;
  StageRequest sr = req.stage;
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
  return run_switch(share, sr.version, "push", opt, rep);
}

Result<SwitchReport> rollback(Share& share, const std::string& to_in, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (!*ptr) return err(Exit::Usage, fmt::format("{}: no release has been pushed yet; nothing to roll back", share.root()));
  auto kept = share.list_releases();
  if (!kept) return kept.error();
  std::string to = to_in;
  if (to.empty()) {
    const std::string& cur = (*ptr)->release;
    if (!(*ptr)->previous.empty() && (*ptr)->previous != cur &&
        std::find(kept->begin(), kept->end(), (*ptr)->previous) != kept->end()) {
      to = (*ptr)->previous;
    } else {
      for (const auto& v : *kept)
        if (compare_versions(v, cur) < 0) to = v;
    }
    if (to.empty())
      return err(Exit::Usage, fmt::format("no kept release to roll back to from {} (kept: {})", cur, join(*kept, ", ")));
  }
  if (auto e = check_version_name(to)) return err(Exit::Usage, fmt::format("--to: {}", *e));
  if (std::find(kept->begin(), kept->end(), to) == kept->end())
    return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", to, join(*kept, ", ")));
  SwitchReport rep;
  return run_switch(share, to, "rollback", opt, rep);
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
      if (auto s = remove_tree(path_join(share.releases_dir(), e.name)); s) ++rep.removed_staging;
    } else {
      rep.notes.push_back(fmt::format("left {} (another host's push; use --force to remove it)", e.name));
    }
  }
  return rep;
}

Result<StatusReport> share_status(Share& share, int64_t stale_after_ms) {
  if (auto s = share.check(); !s) return s.error();
  StatusReport rep;
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
