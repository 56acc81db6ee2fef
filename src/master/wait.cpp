// nfsup master: the master's waits: surveying the fleet, pacing, lease renewal, waiting on hosts, the acting fence.
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

// --hosts and --class, checked against the share before anything is staged or audited (only
// a clock probe is written, and removed at once). The same check runs again under the
// marker: a host may go silent meanwhile.
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

// A host's heartbeat as the master sees it: the counter in its status (a rewrite) or the
// status file's mtime (a touch, stamped by the file server: issue 17's idle budget). Either
// moving is a heartbeat; the times are compared only with each other, never with a clock.
struct Watch {
  int64_t heartbeat = -1;
  int64_t mtime_ms = -1;
  int64_t changed_at = 0;
  void see(const HostStatus& s, int64_t now) {
    if (s.heartbeat == heartbeat && s.mtime_ms == mtime_ms) return;
    heartbeat = s.heartbeat;
    mtime_ms = s.mtime_ms;
    changed_at = now;
  }
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
  if (auto s = rewrite_marker(share, m); !s) return s;
  last_renew = boot_ms();
  return ok_status();
}

// Before each round of a wait: stop on a signal (the caller backs out), renew the lease if
// this master holds the marker.
Status keep_waiting(Share& share, Marker* marker, int64_t& last_renew, const MasterOptions& opt,
                           const char* phase) {
  if (interrupted(opt)) return interrupted_error(opt, phase);
  if (marker) return renew_lease(share, *marker, last_renew);
  return ok_status();
}

using Done = std::function<std::optional<HostOutcome>(const HostStatus&)>;

// A wait that has not moved for this long names the hosts it still waits for (and again as
// long as it does not move).
constexpr int64_t kNameWaitedForMs = 5000;

// The hosts of `hosts` without an outcome yet, at most 10 named.
static std::string waited_for(const std::vector<std::string>& hosts, const std::map<std::string, HostOutcome>& result) {
  std::vector<std::string> w;
  for (const auto& h : hosts)
    if (!result.count(h)) w.push_back(h);
  if (w.size() <= 10) return join(w, " ");
  return join(std::vector<std::string>(w.begin(), w.begin() + 10), " ") + fmt::format(" and {} more", w.size() - 10);
}

// Waits until `done` gives an outcome for every host in `hosts`, renewing the lease while
// `marker` is held. Hosts whose heartbeat stops for stale_after are declared stale.
Result<std::vector<HostOutcome>> wait_hosts(Share& share, const std::vector<std::string>& hosts, Marker* marker,
                                            const MasterOptions& opt, const Done& done, const char* phase) {
  std::map<std::string, Watch> watch;
  std::map<std::string, HostOutcome> result;
  int64_t start = boot_ms();
  int64_t last_renew = boot_ms();
  for (const auto& h : hosts) watch[h] = Watch{-1, -1, start};
  size_t last_count = static_cast<size_t>(-1);
  int64_t min_poll = 0, last_note = start;
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
      w.see(**s, now);
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
      last_note = now;
      note(opt, fmt::format("{}: {}/{} hosts", phase, result.size(), hosts.size()));
    } else if (now - last_note >= kNameWaitedForMs) {
      // No progress for a while: say whom the wait is for.
      last_note = now;
      note(opt, fmt::format("{}: {}/{} hosts; waiting for {}", phase, result.size(), hosts.size(),
                            waited_for(hosts, result)));
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
    sleep_ms(pause);
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

}  // namespace nfsup
