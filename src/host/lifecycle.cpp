// nfsup host: the agent's lifecycle state machine (see lifecycle.h).
#include "lifecycle.h"

namespace nfsup::host {

bool stopping(Phase p) { return p == Phase::Draining || p == Phase::Stopping || p == Phase::Killing; }

namespace {

Step stop_step(const Model& m, bool agent_up, int64_t now, const Timeouts& t) {
  if (!agent_up) return {{}, Effect::Stopped};
  switch (m.phase) {
    case Phase::Steady:
    case Phase::Starting:  // a stop asked for during the start grace: the start is abandoned
      if (t.drain) return {{Phase::Draining, now + t.drain_ms}, Effect::Drain};
      return {{Phase::Stopping, now + t.stop_ms}, Effect::Stop};
    case Phase::Draining:
      if (now < m.deadline_ms) return {m, Effect::None};
      return {{Phase::Stopping, now + t.stop_ms}, Effect::Stop};
    case Phase::Stopping:
    case Phase::Killing:
      if (now < m.deadline_ms) return {m, Effect::None};
      return {{Phase::Killing, now + t.kill_ms}, Effect::Kill};
  }
  return {m, Effect::None};
}

}  // namespace

Step step(const Model& m, Event ev, bool agent_up, int64_t now_ms, const Timeouts& t) {
  switch (ev) {
    case Event::Started:
      return {{Phase::Starting, now_ms + t.grace_ms}, Effect::None};
    case Event::StopWanted:
      return stop_step(m, agent_up, now_ms, t);
    case Event::Poll:
      break;
  }
  // Poll: a stop under way goes on (whether or not it is still wanted: the agent has been told
  // to go); a start grace ends; a steady host has nothing to do.
  if (stopping(m.phase)) return stop_step(m, agent_up, now_ms, t);
  if (m.phase == Phase::Starting) {
    if (!agent_up) return {{}, Effect::DiedStarting};
    if (now_ms >= m.deadline_ms) return {{}, Effect::Settled};
    return {m, Effect::None};
  }
  return {m, Effect::None};
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Steady: return "steady";
    case Phase::Draining: return "draining";
    case Phase::Stopping: return "stopping";
    case Phase::Killing: return "killing";
    case Phase::Starting: return "starting";
  }
  return "?";
}

std::optional<Phase> parse_phase(std::string_view s) {
  for (Phase p : {Phase::Steady, Phase::Draining, Phase::Stopping, Phase::Killing, Phase::Starting})
    if (s == phase_name(p)) return p;
  return std::nullopt;
}

const char* effect_name(Effect e) {
  switch (e) {
    case Effect::None: return "none";
    case Effect::Drain: return "drain";
    case Effect::Stop: return "stop";
    case Effect::Kill: return "kill";
    case Effect::Stopped: return "stopped";
    case Effect::Settled: return "settled";
    case Effect::DiedStarting: return "died-starting";
  }
  return "?";
}

}  // namespace nfsup::host
