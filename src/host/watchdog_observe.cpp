// nfsup host: the watchdog: reading the marker and the pointer (observation).
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

// ---- observation
Observation Watchdog::observe(bool want_pointer, bool pointer_if_changed) {
  Observation obs;
  std::string why;
  // A file replaced by rename can read back cut short through a client whose attribute
  // cache still has the old size; the record format notices (no final newline), so read
  // once more before calling it malformed.
  using Probed = std::pair<Result<std::optional<Marker>>, int64_t>;
  auto got = share_call<Probed>(
      [this] {
        int64_t mt = 0;
        auto r = share_.probe_marker(&mt);
        if (!r && r.error().code == Exit::Integrity) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          r = share_.probe_marker(&mt);
        }
        return Probed{std::move(r), mt};
      },
      cfg_.share_timeout_ms, &why);
  if (!got) {
    obs.share_ok = false;
    obs.share_error = why;
    return obs;
  }
  obs.root_mtime_ns = got->second;
  Result<std::optional<Marker>>& mk = got->first;  // (a reference: a moved-into copy made GCC warn maybe-uninitialized)
  if (!mk) {
    if (mk.error().code == Exit::Integrity) {
      // A garbled marker: never act on it; keep the agent as it is and say why.
      obs.share_ok = false;
      obs.garbled = true;
      obs.share_error = mk.error().msg;
      return obs;
    }
    obs.share_ok = false;
    obs.share_error = mk.error().msg;
    return obs;
  }
  obs.marker = *mk;
  if (obs.marker && !marker_is_trusted(*obs.marker)) obs.marker.reset();
  if (obs.marker && obs.marker->targets_host(cfg_.host) && marker_is_stale(*obs.marker)) obs.marker.reset();
  if (obs.marker) {
    LeaseTracker lt{st_.lease_nonce, st_.lease_renewal, st_.lease_changed_ms};
    obs.marker_lapsed = lt.update(*obs.marker, boot_ms());
    st_.lease_nonce = lt.nonce;
    st_.lease_renewal = lt.renewal;
    st_.lease_changed_ms = lt.changed_at_ms;
    if (obs.marker_lapsed && !lapse_logged_) {
      log(LogLevel::Warn, fmt::format("{}: the marker's lease lapsed (master {} pid {} stopped renewing it); "
                                      "resuming the current release",
                                      cfg_.host, obs.marker->master_host, obs.marker->master_pid));
      lapse_logged_ = true;
    }
    if (!obs.marker_lapsed) lapse_logged_ = false;
  }
  bool held = obs.marker && !obs.marker_lapsed && obs.marker->targets_host(cfg_.host);
  // A rolling marker that does not name this host: follow the pointer on every poll; and
  // read it once more at the poll that finds the marker gone (the master writes the pointer
  // under the marker: a new acting version is reported and handed on now, not at the next
  // heartbeat).
  if (!held && (want_pointer || obs.marker || fast_poll_)) read_pointer(obs);
  else if (!held && pointer_if_changed) {
    // A heartbeat: the pointer is replaced by a rename in the share's root, which changes the
    // root's mtime, which the probe's open has just revalidated. Unchanged: the pointer is
    // known as of now without reading it (the idle RPC budget, issue 17).
    if (root_unchanged_since_pointer(obs)) st_.last_pointer_ms = boot_ms();
    else read_pointer(obs);
  }
  return obs;
}

// Whether the pointer read last is still the share's: the root's mtime is known and the same as
// at that read, which is less than kPointerRecheckMs old (a bound for file systems whose
// directory times are coarse or cached: sshfs keeps attributes for 20 s).
bool Watchdog::root_unchanged_since_pointer(const Observation& obs) const {
  constexpr int64_t kPointerRecheckMs = 5 * 60 * 1000;
  return obs.root_mtime_ns != 0 && obs.root_mtime_ns == pointer_root_mtime_ && pointer_read_ms_ &&
         boot_ms() - pointer_read_ms_ < kPointerRecheckMs;
}

// On a signed host, a marker counts only if a trusted key signed it: whoever can write to the
// share could otherwise stop the fleet for a lease. Said once per marker (nonce, generation).
bool Watchdog::marker_is_trusted(const Marker& m) {
  if (!cfg_.trust.signed_mode()) return true;
  std::string problem = marker_trust_problem(m, cfg_.trust);
  if (problem.empty()) return true;
  std::string key = fmt::format("{}/{}", m.nonce, m.generation);
  if (untrusted_marker_ != key)
    log(LogLevel::Warn, fmt::format("{}: ignoring {} (generation {}, master {}): not signed by a trusted key ({}); "
                                    "it stops nothing",
                                    cfg_.host, share_.marker_path(), m.generation, m.master_host, problem));
  untrusted_marker_ = key;
  return false;
}

// A marker whose generation is not newer than the pointer's is over (the master switched, or
// it is a replayed copy of an old one): it stops nothing. Compared with the pointer on the
// share now and, on a signed host, with the newest generation of a trusted pointer seen here
// (an unsigned pointer counts for neither). Judged once per marker (nonce, generation).
bool Watchdog::marker_is_stale(const Marker& m) {
  std::string key = fmt::format("{}/{}", m.nonce, m.generation);
  if (stale_marker_.first == key) return stale_marker_.second;
  bool signed_mode = cfg_.trust.signed_mode();
  int64_t ref = signed_mode ? st_.seen_gen : 0;
  std::string why;
  auto got = share_call<Result<std::optional<Pointer>>>([this] { return share_.read_pointer(); },
                                                        cfg_.share_timeout_ms, &why);
  if (!got || !*got) return false;  // cannot tell now: honour it, and look again at the next poll
  if (const auto& p = **got; p && (!signed_mode || pointer_signed_by_trusted(*p, cfg_.trust)))
    ref = std::max(ref, p->generation);
  bool stale = m.generation <= ref;
  if (stale)
    log(LogLevel::Warn, fmt::format("{}: ignoring {}: its generation {} is not newer than the pointer's ({}); "
                                    "a finished or replayed marker stops nothing",
                                    cfg_.host, share_.marker_path(), m.generation, ref));
  stale_marker_ = {key, stale};
  return stale;
}

void Watchdog::read_pointer(Observation& obs) {
  std::string why;
  auto got = share_call<Result<std::optional<Pointer>>>(
      [this]() -> Result<std::optional<Pointer>> {
        auto r = share_.read_pointer();
        if (!r && r.error().code == Exit::Integrity) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          r = share_.read_pointer();
        }
        if (r && !*r) {
          // No pointer: a share nothing was pushed to yet, or no share at all (a mount that
          // vanished leaves an empty mountpoint). Only the first is a reachable share.
          auto f = fs_.read_file(share_.format_file(), 1 << 16);
          if (!f) return f.error();
          if (!*f)
            return err(Exit::Share, fmt::format("{}: not an nfsup share (no {}): is it mounted?", share_.root(),
                                                basename_of(share_.format_file())));
        }
        return r;
      },
      cfg_.share_timeout_ms, &why);
  if (!got) {
    obs.share_ok = false;
    obs.share_error = why;
    return;
  }
  Result<std::optional<Pointer>> p = std::move(*got);
  if (!p) {
    obs.share_ok = false;
    obs.garbled = p.error().code == Exit::Integrity;
    obs.share_error = p.error().msg;
    return;
  }
  if (*p && cfg_.trust.signed_mode() && (*p)->generation < st_.seen_gen) {
    obs.share_ok = false;
    obs.share_error = fmt::format("{}: generation {} is older than generation {} already seen here; refusing a "
                                  "replayed pointer",
                                  share_.pointer_path(), (*p)->generation, st_.seen_gen);
    return;
  }
  obs.pointer_read = true;
  obs.pointer = *p;
  if (*p) {
    last_pointer_ = **p;
    // A signed host remembers only what a trusted key signed: an unsigned pointer is followed
    // (the release it names must still be signed) but never raises the replay floor.
    if (!cfg_.trust.signed_mode() || pointer_signed_by_trusted(**p, cfg_.trust))
      st_.seen_gen = std::max(st_.seen_gen, (*p)->generation);
    apply_acting((*p)->acting.empty() ? (*p)->release_for(cfg_.host) : (*p)->acting);
  }
  st_.last_pointer_ms = boot_ms();
  pointer_read_ms_ = st_.last_pointer_ms;
  pointer_root_mtime_ = obs.root_mtime_ns;
}

LocalView Watchdog::view(std::optional<bool> agent_up) {
  LocalView v;
  v.host = cfg_.host;
  v.running = st_.running;
  v.agent_up = agent_up ? *agent_up : ctl_->up(st_);
  v.held_gen = st_.held_gen;
  v.held_wait_ms = st_.held_since_ms ? boot_ms() - st_.held_since_ms : 0;
  v.failed_gen = st_.failed_gen;
  v.gave_up = st_.gave_up;
  v.lease_ms = 30000;
  if (!st_.lease_nonce.empty()) v.lease_ms = lease_ms_;
  return v;
}

// ---- actions
host::Timeouts Watchdog::timeouts() const {
  const AgentConfig& a = cfg_.agent;
  host::Timeouts t;
  t.drain = a.drain_signal || !a.drain_command.empty();
  t.drain_ms = a.drain_timeout_ms;
  t.stop_ms = a.stop_timeout_ms;
  t.grace_ms = a.start_grace_ms;
  return t;
}

bool Watchdog::agent_up_now() {
  (void)ctl_->reap(st_);  // a daemon's child that exited is reaped here, as part of the stop
  return ctl_->up(st_);
}

}  // namespace wd
}  // namespace nfsup
