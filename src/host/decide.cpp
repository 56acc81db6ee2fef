// nfsup host: the pure decision (decide) and the lease tracker.
#include "watchdog_impl.h"

namespace nfsup {

// ================================================================ pure decision

const char* decision_name(Decision::Kind k) {
  switch (k) {
    case Decision::Keep: return "keep";
    case Decision::Hold: return "hold";
    case Decision::WaitPointer: return "wait-pointer";
    case Decision::NeedPointer: return "need-pointer";
    case Decision::Switch: return "switch";
    case Decision::Start: return "start";
    case Decision::Idle: return "idle";
    case Decision::Vote: return "vote";
  }
  return "?";
}

namespace {

// A live marker that names this host: vote in its vote phase, else hold (stop) for it.
Decision decide_marker(const Marker& m, const LocalView& local) {
  Decision d;
  d.generation = m.generation;
  d.to = m.release;
  if (m.phase == "vote") {
    d.kind = Decision::Vote;
    d.nonce = m.nonce;
    d.from = local.running;
    d.why = fmt::format("vote on {} -> {} (generation {})", local.running.empty() ? "-" : local.running, m.release,
                        m.generation);
    return d;
  }
  d.kind = Decision::Hold;
  d.why = fmt::format("{} to {} in progress (generation {})", m.action, m.release, m.generation);
  return d;
}

// The share has no pointer: nothing pushed yet, or keep what runs here.
Decision decide_no_pointer(const LocalView& local) {
  Decision d;
  if (local.running.empty()) {
    d.kind = Decision::Idle;
    d.why = "no release has been pushed yet";
    return d;
  }
  d.kind = local.agent_up || local.gave_up ? Decision::Keep : Decision::Start;
  d.to = local.running;
  d.why = "the share has no current pointer; keeping what runs here";
  return d;
}

}  // namespace

NFSUP_HOT Decision decide(const Observation& obs, const LocalView& local) {
  Decision d;
  if (!obs.share_ok) {
    d.kind = Decision::Keep;
    d.why = "share unreachable: " + obs.share_error;
    return d;
  }
  if (obs.marker && !obs.marker_lapsed && obs.marker->targets_host(local.host)) return decide_marker(*obs.marker, local);
  if (!obs.pointer_read) {
    d.kind = Decision::NeedPointer;
    return d;
  }
  if (!obs.pointer) return decide_no_pointer(local);
  const Pointer& p = *obs.pointer;
  const std::string& want = p.release_for(local.host);
  d.generation = p.generation;
  if (local.held_gen > p.generation && !obs.marker_lapsed && local.held_wait_ms < local.lease_ms) {
    d.kind = Decision::WaitPointer;
    d.why = fmt::format("stopped for generation {} but current still shows {} (cached); waiting", local.held_gen,
                        p.generation);
    return d;
  }
  if (want != local.running) {
    if (local.failed_gen == p.generation) {
      // This switch already failed here: stay on the old release until a new generation.
      d.kind = (!local.agent_up && !local.running.empty() && !local.gave_up) ? Decision::Start : Decision::Keep;
      d.to = local.running;
      d.why = fmt::format("switch to {} failed earlier; staying on {}", want,
                          local.running.empty() ? "nothing" : local.running);
      return d;
    }
    d.kind = Decision::Switch;
    d.from = local.running;
    d.to = want;
    d.why = fmt::format("current release is {} (generation {})", want, p.generation);
    return d;
  }
  if (!local.agent_up && !local.gave_up) {
    d.kind = Decision::Start;
    d.to = want;
    d.why = "agent is not running";
    return d;
  }
  d.kind = Decision::Keep;
  return d;
}

bool LeaseTracker::update(const Marker& m, int64_t now_ms) {
  if (m.nonce != nonce || m.renewal != renewal) {
    nonce = m.nonce;
    renewal = m.renewal;
    changed_at_ms = now_ms;
    return false;
  }
  return now_ms - changed_at_ms > m.lease_ms;
}

}  // namespace nfsup
