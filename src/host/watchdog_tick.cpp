// nfsup host: the watchdog: one tick of the daemon loop or of a cron run.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

// A stop under way that nobody asks for any more (the marker went, the lease lapsed) is
// still finished: the agent has been told to go. The decision is taken again once it is.
Decision Watchdog::finish_unwanted_stop(const Observation& obs) {
  Decision d;
  if (advance_stop(st_.reason, st_.status_gen)) d = decide(obs, view(false));
  if (d.kind == Decision::NeedPointer) d.kind = Decision::Keep;
  return d;
}

// Decision Start: the release that ran here, with its agent down. Not before the back-off
// after a crash or a failed start has passed (d becomes Keep meanwhile).
void Watchdog::start_again(Decision& d) {
  if (st_.restart_at && boot_ms() < st_.restart_at) {
    d.kind = Decision::Keep;
    return;
  }
  st_.restart_at = 0;
  std::string why, failed_why = st_.reason;  // (start_agent clears the reason)
  if (!verify(d.to, &why) || !start_agent(d.to, &why)) {
    set_state("failed", d.generation ? d.generation : st_.status_gen, "starting " + d.to + ": " + why);
    log(LogLevel::Error, fmt::format("{}: starting {} failed: {}", cfg_.host, d.to, why));
    st_.gave_up = count_crash();
    if (!st_.gave_up) st_.restart_at = boot_ms() + backoff_ms();
    return;
  }
  log(LogLevel::Info, fmt::format("{}: started {} ({})", cfg_.host, d.to, d.why));
  st_.held_gen = 0;
  st_.held_since_ms = 0;
  // A switch that failed here stays reported, with its reason, until a switch succeeds (also
  // when the push was undone: the pointer's generation moved on, the host's failure did not).
  if (st_.failed_gen) set_state("failed", st_.failed_gen, failed_why);  // back on the old release
  else set_state("starting", d.generation ? d.generation : st_.status_gen, "");
}

// The share did not answer, or one file on it is malformed: keep the agent as it is.
Decision Watchdog::tick_without_share(const Observation& obs, bool agent_up) {
  if (obs.garbled) {
    // The share answers; one file is malformed (or caught mid-replace). Keep the agent as
    // it is, keep the heartbeat going, try again next poll.
    if (obs.share_error != garbled_logged_) {
      log(LogLevel::Warn, fmt::format("{}: {} (not acting on it; retrying every poll)", cfg_.host, obs.share_error));
      garbled_logged_ = obs.share_error;
    }
    publish_status(false);
    save_state();
    return decide(obs, view(agent_up));
  }
  garbled_logged_.clear();
  note_share_error(obs.share_error);
  start_from_local_copy();
  save_state();
  return decide(obs, view());
}

// Decision Hold: a marker names this host; stop (or say its modules do not change).
void Watchdog::hold(const Decision& d) {
  if (st_.held_gen != d.generation) {
    log(LogLevel::Info, fmt::format("{}: marker seen: {}", cfg_.host, d.why));
    prepared_ = {};  // a new push: prepared anew, from the share as it is now
    prepare_tried_.clear();
    st_.held_gen = d.generation;
    st_.held_since_ms = 0;
    // A later rollout reaches this host (also one to the release it already runs): an earlier
    // failed switch is no longer what it reports.
    if (st_.failed_gen && d.generation > st_.failed_gen) st_.failed_gen = 0;
  }
  if (!host::stopping(st_.lc.phase) && unchanged_for(d.to)) {
    set_state("unchanged", d.generation, fmt::format("modules of {} unchanged for this host; not restarted", d.to));
    return;
  }
  // Fetched and verified before the agent stops (see prepare_local), so that the agent is down
  // for stop + start only. In the stop phase a host cannot refuse (that is the vote's job, and
  // a master waits for every host to stop): one that could not fetch logs why and stops all
  // the same; its switch then fails with the reason and it goes back to the release it ran.
  std::string no;
  if (!host::stopping(st_.lc.phase) && ctl_->up(st_)) (void)prepare_local(d.to, d.generation, &no);
  if (advance_stop(d.why, d.generation)) set_state("stopped", d.generation, d.why);
}

// Decision Keep: nothing to switch; the chores of a steady host.
void Watchdog::keep(const Observation& obs, bool agent_up, bool heartbeat_due) {
  if (obs.pointer && st_.held_gen && obs.pointer->generation >= st_.held_gen) {
    st_.held_gen = 0;
    st_.held_since_ms = 0;
  }
  if (heartbeat_due && !obs.marker) flush_backup();
  // (a cron tick makes it at the tick after the one that started the agent)
  if (copy_due() && boot_ms() >= cache_at_ms_ && !obs.marker && agent_up && st_.state == "running")
    cache_release(st_.running);
  // (A note that the agent runs from its local copy stays until the next switch.)
  if (agent_up && st_.state == "running" && obs.pointer)
    set_state("running", obs.pointer->generation, starts_with(st_.reason, "started ") ? st_.reason : "");
}

// Carries out decision `d`.
void Watchdog::act(Decision& d, const Observation& obs, bool agent_up, bool heartbeat_due) {
  switch (d.kind) {
    case Decision::NeedPointer:
      // Fast idle path: the marker is absent and nothing says the pointer moved (at a
      // heartbeat: the share's root did not change since the pointer was read).
      d.kind = Decision::Keep;
      if (heartbeat_due) keep(obs, agent_up, heartbeat_due);
      break;
    case Decision::Hold:
      hold(d);
      break;
    case Decision::WaitPointer:
      if (!st_.held_since_ms) st_.held_since_ms = boot_ms();
      set_state("stopped", st_.held_gen, d.why);
      break;
    case Decision::Idle:
      set_state("idle", 0, d.why);
      break;
    case Decision::Vote:
      vote(d);
      break;
    case Decision::Switch:
      do_switch(d);
      break;
    case Decision::Start:
      start_again(d);
      break;
    case Decision::Keep:
      keep(obs, agent_up, heartbeat_due);
      break;
  }
}

// After decision `d`: nothing under way here (no marker, no stop, no back-off, a settled state).
bool Watchdog::nothing_under_way(const Decision& d, const Observation& obs) const {
  return d.kind == Decision::Keep && !obs.marker && !share_down_ && !st_.held_gen && !st_.restart_at &&
         st_.lc.phase == host::Phase::Steady && (st_.state == "running" || st_.state == "idle" || st_.state == "failed");
}

// One pass of observe -> decide -> act. Returns the decision taken.
Decision Watchdog::tick(bool first) {
  idle_ = false;
  bool agent_up = ctl_->up(st_);
  if (!opt_.daemon && !agent_up) notice_cron_agent_exit();
  // What the status says about this host's configuration (checks, poll, class...) changed
  // (a reload, an edited file before a cron tick): say so now, not at the next heartbeat.
  if (status_conf() != st_.published_conf) status_dirty_ = true;
  bool heartbeat_due = boot_ms() - st_.last_pointer_ms >= cfg_.heartbeat_interval_ms;
  // One heartbeat = one pointer read and one status write, in the same tick (so that an idle
  // cron tick writes either nothing or both, never one now and the other at the next tick).
  if (heartbeat_due) status_dirty_ = true;
  // While the share is down, only a full look (pointer, and the share's format file when
  // there is no pointer) says it is back: the marker alone would, in an empty mountpoint.
  bool want_pointer = first || force_pointer_ || st_.held_gen > 0 || !agent_up || share_down_;
  Observation obs = observe(want_pointer, heartbeat_due);
  if (!obs.share_ok) return tick_without_share(obs, agent_up);
  garbled_logged_.clear();
  note_share_ok();
  force_pointer_ = false;
  if (obs.marker) lease_ms_ = obs.marker->lease_ms;
  Decision d = decide(obs, view(agent_up));
  if (host::stopping(st_.lc.phase) && d.kind != Decision::Hold && d.kind != Decision::Switch)
    d = finish_unwanted_stop(obs);
  act(d, obs, agent_up, heartbeat_due);
  promote_if_settled();
  if (!obs.marker && heartbeat_due && d.kind == Decision::Keep) deliver_spool();
  publish_status(false);
  save_state();
  // Stopped and reported: get the switch ready while the other hosts stop.
  if (d.kind == Decision::Hold && st_.state == "stopped") prepare_switch(d.to);
  // A marker is up: poll faster until it is gone, so that this host resumes soon after the
  // master has switched the pointer (see held_poll_ms()).
  fast_poll_ = obs.marker && !obs.marker_lapsed;
  // Nothing under way: until the next heartbeat, polls only need to look for the marker.
  idle_ = nothing_under_way(d, obs);
  return d;
}

}  // namespace wd
}  // namespace nfsup
