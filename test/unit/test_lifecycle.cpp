// host/lifecycle.h: every (phase, event, agent up/down, before/after the deadline) pair.
#include <doctest/doctest.h>

#include "lifecycle.h"

using namespace nfsup::host;

namespace {

constexpr int64_t kNow = 100000;
constexpr Timeouts kDrain{true, 60000, 30000, 5000, 1000};
constexpr Timeouts kNoDrain{false, 60000, 30000, 5000, 1000};

Model at(Phase p, int64_t deadline) { return Model{p, deadline}; }

}  // namespace

TEST_CASE("lifecycle: a wanted stop drains first when the agent has a drain step, else stops") {
  CHECK(step({}, Event::StopWanted, true, kNow, kDrain) == Step{at(Phase::Draining, kNow + 60000), Effect::Drain});
  CHECK(step({}, Event::StopWanted, true, kNow, kNoDrain) == Step{at(Phase::Stopping, kNow + 30000), Effect::Stop});
  // An agent already down needs no stop.
  CHECK(step({}, Event::StopWanted, false, kNow, kDrain) == Step{{}, Effect::Stopped});
}

TEST_CASE("lifecycle: draining waits for its deadline, keeps waiting while the agent is up, then stops") {
  Model d = at(Phase::Draining, kNow + 10);
  for (Event ev : {Event::Poll, Event::StopWanted}) {
    CHECK(step(d, ev, true, kNow, kDrain) == Step{d, Effect::None});
    CHECK(step(d, ev, true, kNow + 10, kDrain) == Step{at(Phase::Stopping, kNow + 10 + 30000), Effect::Stop});
    CHECK(step(d, ev, false, kNow, kDrain) == Step{{}, Effect::Stopped});  // drained and exited
  }
}

TEST_CASE("lifecycle: stopping escalates to SIGKILL at its deadline, and again while the process stays") {
  for (Phase p : {Phase::Stopping, Phase::Killing}) {
    Model s = at(p, kNow + 10);
    for (Event ev : {Event::Poll, Event::StopWanted}) {
      CHECK(step(s, ev, true, kNow + 9, kNoDrain) == Step{s, Effect::None});
      CHECK(step(s, ev, true, kNow + 10, kNoDrain) == Step{at(Phase::Killing, kNow + 10 + 5000), Effect::Kill});
      CHECK(step(s, ev, false, kNow + 9, kNoDrain) == Step{{}, Effect::Stopped});
    }
  }
}

TEST_CASE("lifecycle: a cron tick killed mid-drain resumes from the persisted model") {
  // Tick 1 starts the drain and dies; tick 2 (before the deadline) must not drain again;
  // tick 3 (after it) sends the stop signal: the drain never restarts.
  Step t1 = step({}, Event::StopWanted, true, kNow, kDrain);
  REQUIRE(t1.effect == Effect::Drain);
  Step t2 = step(t1.next, Event::StopWanted, true, kNow + 50000, kDrain);
  CHECK(t2.effect == Effect::None);
  Step t3 = step(t2.next, Event::StopWanted, true, kNow + 60000, kDrain);
  CHECK(t3.effect == Effect::Stop);
  CHECK(t3.next.phase == Phase::Stopping);
}

TEST_CASE("lifecycle: start grace") {
  Step s = step({}, Event::Started, true, kNow, kNoDrain);
  CHECK(s == Step{at(Phase::Starting, kNow + 1000), Effect::None});
  CHECK(step(s.next, Event::Poll, true, kNow + 999, kNoDrain) == Step{s.next, Effect::None});
  CHECK(step(s.next, Event::Poll, true, kNow + 1000, kNoDrain) == Step{{}, Effect::Settled});
  CHECK(step(s.next, Event::Poll, false, kNow + 10, kNoDrain) == Step{{}, Effect::DiedStarting});
  // A tick killed during the grace: the next one, long after, settles it (not `starting` for ever).
  CHECK(step(s.next, Event::Poll, true, kNow + 3600000, kNoDrain) == Step{{}, Effect::Settled});
  // A stop wanted during the grace abandons the start.
  CHECK(step(s.next, Event::StopWanted, true, kNow + 10, kDrain).effect == Effect::Drain);
  // Started again from any phase: a new grace.
  CHECK(step(at(Phase::Stopping, 5), Event::Started, true, kNow, kNoDrain).next == at(Phase::Starting, kNow + 1000));
}

TEST_CASE("lifecycle: a steady host has nothing to do on a poll, agent up or down") {
  CHECK(step({}, Event::Poll, true, kNow, kDrain) == Step{{}, Effect::None});
  CHECK(step({}, Event::Poll, false, kNow, kDrain) == Step{{}, Effect::None});
}

TEST_CASE("lifecycle: phase names round-trip; unknown names are refused") {
  for (Phase p : {Phase::Steady, Phase::Draining, Phase::Stopping, Phase::Killing, Phase::Starting})
    CHECK(parse_phase(phase_name(p)) == p);
  CHECK_FALSE(parse_phase("drainin").has_value());
  CHECK(stopping(Phase::Draining));
  CHECK(stopping(Phase::Killing));
  CHECK_FALSE(stopping(Phase::Starting));
  CHECK_FALSE(stopping(Phase::Steady));
}
