// nfsup host: the agent's lifecycle on one host as a pure state machine.
//
// Stopping and starting an agent take time (a drain, a stop timeout, a start grace). They are
// states with a deadline, not blocking calls: the watchdog's loop (a daemon's poll or a cron
// tick) calls step() with what it sees now, carries out the one effect it returns, keeps
// polling and heartbeating meanwhile, and persists the model in its local state, so a cron
// tick that is killed leaves the next tick to carry on where it was. step() makes no system
// call and reads no clock; its unit test checks every (phase, event) pair.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace nfsup::host {

enum class Phase : uint8_t {
  Steady,    ///< nothing under way (the agent runs, or is down and nobody is stopping it)
  Draining,  ///< drain signal sent (or drain command started); waiting for the agent to exit
  Stopping,  ///< stop signal sent (or stop command run); waiting for the agent to exit
  Killing,   ///< SIGKILL sent; waiting for the process to go
  Starting,  ///< agent started; it counts as running once it has stayed up for start_grace
};

struct Model {
  Phase phase = Phase::Steady;
  int64_t deadline_ms = 0;  ///< when the phase's wait ends (host boot clock); 0 in Steady
  bool operator==(const Model&) const = default;
};

struct Timeouts {
  bool drain = false;       ///< the agent has a drain step (agent.drain)
  int64_t drain_ms = 0;     ///< agent.drain.timeout
  int64_t stop_ms = 0;      ///< agent.stop_timeout
  int64_t kill_ms = 5000;   ///< how long a SIGKILLed process may take to go before it is sent again
  int64_t grace_ms = 0;     ///< agent.start_grace
};

enum class Event : uint8_t {
  Poll,        ///< time passed; nothing new was asked for
  StopWanted,  ///< the agent must stop (a marker holds this host, or a switch needs it down)
  Started,     ///< the agent was just started
};

enum class Effect : uint8_t {
  None,          ///< nothing to do now; wait (until the deadline, if any)
  Drain,         ///< send the drain signal or start the drain command
  Stop,          ///< send the stop signal or run the stop command
  Kill,          ///< SIGKILL the agent's process group
  Stopped,       ///< the agent is down: the stop is complete
  Settled,       ///< the agent stayed up for start_grace: it is running
  DiedStarting,  ///< the agent exited during its start grace
};

struct Step {
  Model next;
  Effect effect = Effect::None;
  bool operator==(const Step&) const = default;
};

/// The one transition function. agent_up: the agent process (or service) is alive now.
Step step(const Model& m, Event ev, bool agent_up, int64_t now_ms, const Timeouts& t);

/// True in Draining, Stopping and Killing.
bool stopping(Phase p);

const char* phase_name(Phase p);
std::optional<Phase> parse_phase(std::string_view s);
const char* effect_name(Effect e);

}  // namespace nfsup::host
