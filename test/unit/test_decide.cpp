// watchdog.h: the pure decision function and lease tracking.
#include <doctest/doctest.h>

#include <vector>

#include "watchdog.h"

using namespace nfsup;

namespace {

constexpr int64_t kLease = 30000;
constexpr int64_t kGen = 5;  // the pointer's generation in every scenario

Marker marker(int64_t gen, const std::string& release) {
  Marker m;
  m.generation = gen;
  m.release = release;
  m.master_host = "build-7";
  m.nonce = "n1";
  m.lease_ms = kLease;
  return m;
}

Pointer pointer(int64_t gen, const std::string& release) {
  Pointer p;
  p.generation = gen;
  p.release = release;
  return p;
}

Observation seen_pointer(std::optional<Pointer> p) {
  Observation o;
  o.pointer_read = true;
  o.pointer = std::move(p);
  return o;
}

LocalView local(const std::string& running, bool up) {
  LocalView v;
  v.running = running;
  v.agent_up = up;
  v.lease_ms = kLease;
  return v;
}

}  // namespace

TEST_CASE("decide: share unreadable keeps everything as it is") {
  Observation o;
  o.share_ok = false;
  o.share_error = "probe(/share): Stale file handle";
  o.marker = marker(9, "2.0");  // whatever else was gathered is ignored
  o.pointer_read = true;
  o.pointer = pointer(kGen, "2.0");
  for (bool up : {false, true}) {
    Decision d = decide(o, local("1.0", up));
    CHECK(d.kind == Decision::Keep);
    CHECK(d.why == "share unreachable: probe(/share): Stale file handle");
  }
}

TEST_CASE("decide: a live marker holds (stop and ack its generation)") {
  Observation o;
  o.marker = marker(6, "2.0");
  o.pointer_read = true;
  o.pointer = pointer(kGen, "1.0");
  Decision d = decide(o, local("1.0", true));
  CHECK(d.kind == Decision::Hold);
  CHECK(d.generation == 6);
  CHECK(d.to == "2.0");
  CHECK(d.why == "push to 2.0 in progress (generation 6)");
  o.pointer_read = false;
  o.pointer.reset();
  CHECK(decide(o, local("", false)).kind == Decision::Hold);
}

TEST_CASE("decide: marker gone or lapsed without a pointer read asks for the pointer") {
  Observation o;  // no marker, pointer not read
  CHECK(decide(o, local("1.0", true)).kind == Decision::NeedPointer);
  o.marker = marker(6, "2.0");
  o.marker_lapsed = true;
  CHECK(decide(o, local("1.0", false)).kind == Decision::NeedPointer);
}

TEST_CASE("decide: no pointer on the share") {
  Observation o = seen_pointer(std::nullopt);
  CHECK(decide(o, local("", false)).kind == Decision::Idle);
  CHECK(decide(o, local("", true)).kind == Decision::Idle);
  Decision d = decide(o, local("1.0", false));
  CHECK(d.kind == Decision::Start);
  CHECK(d.to == "1.0");
  CHECK(decide(o, local("1.0", true)).kind == Decision::Keep);
  LocalView gave_up = local("1.0", false);
  gave_up.gave_up = true;
  CHECK(decide(o, gave_up).kind == Decision::Keep);
}

TEST_CASE("decide: stopped for generation G, cached pointer older than G waits (never restarts the old release)") {
  // The host stopped 1.0 for generation 6 (push to 2.0); MARKER is gone; `current` still reads
  // generation 5 -> 1.0 from the attribute cache.
  Observation o = seen_pointer(pointer(kGen, "1.0"));
  LocalView v = local("1.0", false);
  v.held_gen = 6;
  Decision d = decide(o, v);
  CHECK(d.kind == Decision::WaitPointer);
  CHECK(d.generation == kGen);
  CHECK(d.why == "stopped for generation 6 but current still shows 5 (cached); waiting");

  // Same with any other local situation: never Switch or Start on a pointer older than held_gen.
  for (const char* running : {"", "1.0", "0.9", "2.0"})
    for (bool up : {false, true})
      for (int64_t failed : {int64_t{0}, kGen, int64_t{6}})
        for (bool gave_up : {false, true})
          for (int64_t wait : {int64_t{0}, kLease / 2, kLease - 1}) {
            LocalView w = local(running, up);
            w.held_gen = 6;
            w.failed_gen = failed;
            w.gave_up = gave_up;
            w.held_wait_ms = wait;
            CAPTURE(running);
            CAPTURE(up);
            CAPTURE(failed);
            CAPTURE(gave_up);
            CAPTURE(wait);
            CHECK(decide(o, w).kind == Decision::WaitPointer);
          }

  // A much older cached pointer waits too.
  v.held_gen = 100;
  CHECK(decide(o, v).kind == Decision::WaitPointer);
}

TEST_CASE("decide: the wait for a lagging pointer ends when the lease lapses or after lease_ms") {
  Observation o = seen_pointer(pointer(kGen, "1.0"));
  LocalView v = local("1.0", false);
  v.held_gen = 6;

  v.held_wait_ms = kLease;  // waited a whole lease: the master is gone, resume what current names
  Decision d = decide(o, v);
  CHECK(d.kind == Decision::Start);
  CHECK(d.to == "1.0");
  v.held_wait_ms = kLease + 1;
  CHECK(decide(o, v).kind == Decision::Start);

  v.held_wait_ms = 0;  // marker still there but its lease lapsed
  o.marker = marker(6, "2.0");
  o.marker_lapsed = true;
  d = decide(o, v);
  CHECK(d.kind == Decision::Start);
  CHECK(d.to == "1.0");

  // lease_ms comes from the marker: a short lease ends the wait sooner.
  o.marker.reset();
  o.marker_lapsed = false;
  v.lease_ms = 1000;
  v.held_wait_ms = 999;
  CHECK(decide(o, v).kind == Decision::WaitPointer);
  v.held_wait_ms = 1000;
  CHECK(decide(o, v).kind == Decision::Start);
}

TEST_CASE("decide: pointer at or past the held generation acts on it") {
  LocalView v = local("1.0", false);
  v.held_gen = 6;
  Decision d = decide(seen_pointer(pointer(6, "2.0")), v);
  CHECK(d.kind == Decision::Switch);
  CHECK(d.from == "1.0");
  CHECK(d.to == "2.0");
  CHECK(d.generation == 6);
  CHECK(d.why == "current release is 2.0 (generation 6)");

  d = decide(seen_pointer(pointer(7, "3.0")), v);
  CHECK(d.kind == Decision::Switch);
  CHECK(d.to == "3.0");

  // The push was aborted and re-pointed at the same release with a newer generation: restart it.
  d = decide(seen_pointer(pointer(6, "1.0")), v);
  CHECK(d.kind == Decision::Start);
  CHECK(d.to == "1.0");
  CHECK(d.generation == 6);
}

TEST_CASE("decide: running vs pointer release, agent up/down, failed generation, gave up") {
  struct Row {
    const char* name;
    const char* running;
    bool up;
    int64_t failed_gen;
    bool gave_up;
    Decision::Kind want;
    const char* to;
    const char* from;
  };
  // Pointer: generation 5, release 2.0.
  const Row rows[] = {
      {"same release, up", "2.0", true, 0, false, Decision::Keep, "", ""},
      {"same release, down", "2.0", false, 0, false, Decision::Start, "2.0", ""},
      {"same release, down, gave up", "2.0", false, 0, true, Decision::Keep, "", ""},
      {"same release, up, gave up", "2.0", true, 0, true, Decision::Keep, "", ""},
      {"same release, down, old failure", "2.0", false, 4, false, Decision::Start, "2.0", ""},
      {"other release, up", "1.0", true, 0, false, Decision::Switch, "2.0", "1.0"},
      {"other release, down", "1.0", false, 0, false, Decision::Switch, "2.0", "1.0"},
      {"other release, gave up (a new push clears it)", "1.0", false, 0, true, Decision::Switch, "2.0", "1.0"},
      {"nothing yet", "", false, 0, false, Decision::Switch, "2.0", ""},
      {"other release, failed this gen, up", "1.0", true, kGen, false, Decision::Keep, "1.0", ""},
      {"other release, failed this gen, down", "1.0", false, kGen, false, Decision::Start, "1.0", ""},
      {"other release, failed this gen, down, gave up", "1.0", false, kGen, true, Decision::Keep, "1.0", ""},
      {"nothing yet, failed this gen", "", false, kGen, false, Decision::Keep, "", ""},
      {"other release, failed an older gen", "1.0", true, 4, false, Decision::Switch, "2.0", "1.0"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    LocalView v = local(r.running, r.up);
    v.failed_gen = r.failed_gen;
    v.gave_up = r.gave_up;
    Decision d = decide(seen_pointer(pointer(kGen, "2.0")), v);
    CHECK(decision_name(d.kind) == std::string(decision_name(r.want)));
    if (r.want == Decision::Switch || r.want == Decision::Start) {
      CHECK(d.to == r.to);
      CHECK(d.from == r.from);
      CHECK(d.generation == kGen);
    }
    if (r.failed_gen == kGen && r.want != Decision::Switch) {
      CHECK(d.to == r.to);
      CHECK(d.why == std::string("switch to 2.0 failed earlier; staying on ") + (*r.running ? r.running : "nothing"));
    }
  }
}

TEST_CASE("decide: invariants over the whole observation x local-state grid") {
  enum MarkerCase { NoMarker, LiveMarker, LapsedMarker };
  int cases = 0;
  for (bool share_ok : {true, false})
    for (MarkerCase mc : {NoMarker, LiveMarker, LapsedMarker})
      for (bool pointer_read : {true, false})
        for (bool pointer_present : {true, false})
          for (int64_t held : {int64_t{0}, kGen - 1, kGen, kGen + 1})
            for (const char* running : {"", "2.0", "1.0"})
              for (bool up : {true, false})
                for (int64_t failed : {int64_t{0}, kGen, kGen + 1})
                  for (bool gave_up : {true, false})
                    for (int64_t wait : {int64_t{0}, kLease - 1, kLease}) {
                      ++cases;
                      Observation o;
                      o.share_ok = share_ok;
                      if (!share_ok) o.share_error = "EIO";
                      if (mc != NoMarker) o.marker = marker(kGen + 1, "3.0");
                      o.marker_lapsed = mc == LapsedMarker;
                      o.pointer_read = pointer_read;
                      if (pointer_read && pointer_present) o.pointer = pointer(kGen, "2.0");
                      LocalView v = local(running, up);
                      v.held_gen = held;
                      v.failed_gen = failed;
                      v.gave_up = gave_up;
                      v.held_wait_ms = wait;
                      Decision d = decide(o, v);
                      CAPTURE(share_ok);
                      CAPTURE(static_cast<int>(mc));
                      CAPTURE(pointer_read);
                      CAPTURE(pointer_present);
                      CAPTURE(held);
                      CAPTURE(running);
                      CAPTURE(up);
                      CAPTURE(failed);
                      CAPTURE(gave_up);
                      CAPTURE(wait);
                      CAPTURE(decision_name(d.kind));

                      if (!share_ok) {
                        CHECK(d.kind == Decision::Keep);
                        continue;
                      }
                      if (mc == LiveMarker) {
                        CHECK(d.kind == Decision::Hold);
                        CHECK(d.generation == kGen + 1);
                        continue;
                      }
                      if (!pointer_read) {
                        CHECK(d.kind == Decision::NeedPointer);
                        continue;
                      }
                      // Never start an agent that is already up, or one we gave up on, on the same generation.
                      if (d.kind == Decision::Start) {
                        CHECK_FALSE(up);
                        CHECK_FALSE(gave_up);
                        CHECK_FALSE(d.to.empty());
                      }
                      if (!pointer_present) {
                        CHECK(d.kind == (std::string(running).empty() ? Decision::Idle
                                         : (up || gave_up)            ? Decision::Keep
                                                                      : Decision::Start));
                        continue;
                      }
                      bool lagging = held > kGen && mc != LapsedMarker && wait < kLease;
                      if (lagging) {
                        CHECK(d.kind == Decision::WaitPointer);
                        continue;
                      }
                      CHECK(d.kind != Decision::WaitPointer);
                      CHECK(d.kind != Decision::Hold);
                      CHECK(d.kind != Decision::Idle);
                      if (d.kind == Decision::Switch) {
                        CHECK(std::string(running) != "2.0");
                        CHECK(failed != kGen);  // a failed generation is not retried
                        CHECK(d.from == running);
                        CHECK(d.to == "2.0");
                        CHECK(d.generation == kGen);
                      }
                      if (d.kind == Decision::Start) {
                        // Either the pointer's release, or (after a failed switch) the one we ran.
                        CHECK(d.to == (failed == kGen && std::string(running) != "2.0" ? running : "2.0"));
                      }
                      if (std::string(running) != "2.0" && failed != kGen) CHECK(d.kind == Decision::Switch);
                      if (std::string(running) == "2.0") CHECK(d.kind == (!up && !gave_up ? Decision::Start : Decision::Keep));
                    }
  CHECK(cases == 2 * 3 * 2 * 2 * 4 * 3 * 2 * 3 * 2 * 3);
}

TEST_CASE("decide: decision_name covers every kind") {
  CHECK(std::string(decision_name(Decision::Keep)) == "keep");
  CHECK(std::string(decision_name(Decision::Hold)) == "hold");
  CHECK(std::string(decision_name(Decision::WaitPointer)) == "wait-pointer");
  CHECK(std::string(decision_name(Decision::NeedPointer)) == "need-pointer");
  CHECK(std::string(decision_name(Decision::Switch)) == "switch");
  CHECK(std::string(decision_name(Decision::Start)) == "start");
  CHECK(std::string(decision_name(Decision::Idle)) == "idle");
}

TEST_CASE("LeaseTracker: lapses only after lease_ms without a renewal change") {
  LeaseTracker lt;
  Marker m = marker(6, "2.0");
  m.lease_ms = 1000;
  m.renewal = 0;
  CHECK_FALSE(lt.update(m, 10000));  // first sight starts the clock
  CHECK(lt.changed_at_ms == 10000);
  CHECK_FALSE(lt.update(m, 10500));
  CHECK_FALSE(lt.update(m, 11000));  // exactly lease_ms: not yet
  CHECK(lt.update(m, 11001));
  CHECK(lt.update(m, 50000));

  // A renewal resets the clock.
  m.renewal = 1;
  CHECK_FALSE(lt.update(m, 50001));
  CHECK(lt.changed_at_ms == 50001);
  CHECK_FALSE(lt.update(m, 51001));
  CHECK(lt.update(m, 51002));

  // Renewals that keep coming never lapse, even long after the first sight.
  for (int i = 2; i < 20; ++i) {
    m.renewal = i;
    CHECK_FALSE(lt.update(m, 51002 + i * 900));
  }
}

TEST_CASE("LeaseTracker: a new nonce (another master) resets the clock") {
  LeaseTracker lt;
  Marker m = marker(6, "2.0");
  m.lease_ms = 1000;
  m.renewal = 3;
  CHECK_FALSE(lt.update(m, 0));
  CHECK(lt.update(m, 5000));
  m.nonce = "n2";  // same renewal count, different master
  CHECK_FALSE(lt.update(m, 5000));
  CHECK(lt.nonce == "n2");
  CHECK(lt.changed_at_ms == 5000);
  CHECK_FALSE(lt.update(m, 6000));
  CHECK(lt.update(m, 6001));
  // A renewal counter going backwards (new master reusing a nonce is not expected) still counts as a change.
  m.renewal = 0;
  CHECK_FALSE(lt.update(m, 6002));
}
