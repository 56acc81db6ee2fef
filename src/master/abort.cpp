// nfsup master: abort: backs out of a push whose master is gone.
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

namespace {

// Whether the marker's master is gone (or --force). Err(Busy) while it lives; false if the
// marker went away by itself meanwhile (nothing left to abort).
Result<bool> master_gone(Share& share, const Marker& mk, const MasterOptions& opt, AbortReport& rep) {
  if (mk.master_host == short_hostname()) {
    bool alive = pid_exists(static_cast<pid_t>(mk.master_pid));
    if (alive && !opt.force)
      return err(Exit::Busy, fmt::format("the {} by pid {} on this host is still running; stop it first, or "
                                         "use --force",
                                         mk.action, mk.master_pid));
    return true;
  }
  if (opt.force) return true;
  // Another host's master: it is alive if it renews the lease.
  note(opt, fmt::format("watching the lease of {} (pid {}) for up to {}", mk.master_host, mk.master_pid,
                        format_duration_ms(mk.lease_ms)));
  int64_t until = boot_ms() + mk.lease_ms + opt.poll_ms;
  while (boot_ms() < until) {
    sleep_ms(opt.poll_ms);
    auto again = share.read_marker();
    if (!again) return again.error();
    if (!*again || (*again)->nonce != mk.nonce) {
      rep.notes.push_back("the marker went away by itself");
      return false;
    }
    if ((*again)->renewal != mk.renewal)
      return err(Exit::Busy, fmt::format("the {} by {} (pid {}) is alive (it renewed its lease); use --force "
                                         "to abort it anyway",
                                         mk.action, mk.master_host, mk.master_pid));
  }
  return true;
}

}  // namespace

namespace {

// SHARE/state after abort: the rollout of marker `mk` is over, not in progress. `current` is
// the release the pointer kept when the dead master had moved it ("" when backed out).
void record_aborted(Share& share, const Marker& mk, const std::string& current, const MasterOptions& opt) {
  RolloutState rs;
  if (auto last = read_rollout(share); last && *last) rs = **last;
  auto ptr = share.read_pointer();
  if (ptr && *ptr) rs.acting = (*ptr)->acting.empty() ? (*ptr)->release : (*ptr)->acting;
  rs.target = mk.release;
  rs.phase = "aborted";
  rs.master_host.clear();
  rs.master_pid = 0;
  rs.note = current.empty() ? "backed out before the switch"
                            : fmt::format("its master died after the switch; current stays {}", current);
  record_rollout(share, rs, opt);
}

}  // namespace

// The dead master's switch is backed out (the old pointer under its generation, so hosts that
// stopped for it resume at once) unless it had already moved the pointer; then the marker goes.
Status remove_dead_marker(Share& share, const Marker& mk, const MasterOptions& opt, AbortReport& rep) {
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  const bool back = *ptr && (*ptr)->generation < mk.generation;
  if (back) {
    Pointer back = **ptr;
    back.generation = mk.generation;
    back.action = "abort";
    back.updated = utc_now_iso();
    back.updated_by = fmt::format("{}:{}", short_hostname(), self_pid());
    if (auto s = write_pointer(share, back, opt); !s) return s;
    rep.resumed = back.release;
  } else if (*ptr) {
    rep.resumed = (*ptr)->release;  // the dead push had already switched the pointer
  }
  crash_point("abort-after-pointer");
  if (auto u = share.fs().unlink(share.marker_path()); !u) return u.error();
  rep.notes.push_back(fmt::format("removed the marker of the {} of {} by {} (pid {})", mk.action, mk.release,
                                  mk.master_host, mk.master_pid));
  end_progress(share, mk.nonce, back || !*ptr ? "backed-out" : "aborted", opt);
  record_aborted(share, mk, back ? "" : rep.resumed, opt);
  audit_or_say(share, opt, "abort", fmt::format("{} of {} by {}:{}", mk.action, mk.release, mk.master_host, mk.master_pid),
               "ok");
  return ok_status();
}

namespace {

// Leftover staging directories of dead pushes from this host (any host's with --force).
Status sweep_staging(Share& share, const MasterOptions& opt, AbortReport& rep) {
  auto l = share.fs().list_dir(share.releases_dir());
  if (!l) return l.error();
  std::string mine = fmt::format(".{}.", short_hostname());
  for (const auto& e : *l) {
    if (!starts_with(e.name, ".staging-")) continue;
    auto dot = e.name.rfind('.');
    auto pid = parse_i64(e.name.substr(dot + 1));
    bool same_host = e.name.find(mine) != std::string::npos;
    bool dead = pid && !pid_exists(static_cast<pid_t>(*pid));
    if (!(same_host && dead) && !opt.force) {
      rep.notes.push_back(fmt::format("left {} (another host's push; use --force to remove it)", e.name));
      continue;
    }
    if (auto s = remove_tree(share.fs(), path_join(share.releases_dir(), e.name)); s) ++rep.removed_staging;
    else rep.notes.push_back(fmt::format("could not remove {}: {}", e.name, s.error().msg));
  }
  return ok_status();
}

}  // namespace

Result<AbortReport> abort_push(Share& share, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  AbortReport rep;
  auto m = share.read_marker();
  if (!m) return m.error();
  if (*m) {
    rep.had_marker = true;
    auto gone = master_gone(share, **m, opt, rep);
    if (!gone) return gone.error();
    if (!*gone) return rep;
    if (auto s = remove_dead_marker(share, **m, opt, rep); !s) return s.error();
  }
  if (auto s = sweep_staging(share, opt, rep); !s) return s.error();
  return rep;
}

}  // namespace nfsup
