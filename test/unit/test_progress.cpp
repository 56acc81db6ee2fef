// SHARE/progress: the master's record of how far a rollout got (src/master/progress.h).
#include <doctest/doctest.h>

#include "master/progress.h"

using namespace nfsup;

namespace {

Progress sample() {
  Progress p;
  p.rollout = "0123456789abcdef";
  p.generation = 7;
  p.action = "push";
  p.strategy = "all-at-once";
  p.target = "2.0";
  p.previous = "1.0";
  p.hosts = {"web01", "web02"};
  p.policy = "undo-or-keep";
  p.max_failures = -1;
  p.plan = {"acquire", "stop", "migrate", "switch", "start", "fence", "release"};
  p.step = 4;
  p.step_name = "switch";
  p.master_host = "admin";
  p.master_pid = 4242;
  Pointer old;
  old.generation = 6;
  old.release = "1.0";
  old.acting = "1.0";
  old.overrides["web02"] = "0.9";
  p.old = old;
  return p;
}

}  // namespace

TEST_CASE("progress: a record reads back as written, the old pointer included") {
  Progress p = sample();
  auto back = unpack_progress(pack_progress(p), "progress");
  REQUIRE(back);
  CHECK(back->rollout == p.rollout);
  CHECK(back->generation == 7);
  CHECK(back->hosts == p.hosts);
  CHECK(back->plan == p.plan);
  CHECK(back->step == 4);
  CHECK(back->step_name == "switch");
  CHECK(back->max_failures == -1);
  REQUIRE(back->old);
  CHECK(back->old->release == "1.0");
  CHECK(back->old->overrides.at("web02") == "0.9");
  CHECK(back->master_pid == 4242);
}

TEST_CASE("progress: a record abort ended says so, and a bad 'ended' is refused") {
  Progress p = sample();
  p.ended = "aborted";
  auto back = unpack_progress(pack_progress(p), "progress");
  REQUIRE(back);
  CHECK(back->ended == "aborted");
  CHECK(unpack_progress(pack_progress(sample()), "progress")->ended.empty());
  std::string g = pack_progress(p);
  g.replace(g.find("ended aborted"), 13, "ended maybe");
  CHECK(!unpack_progress(g, "progress"));
}

TEST_CASE("progress: rolling batches and their plan steps") {
  Progress p = sample();
  p.strategy = "rolling";
  p.batches = {{"web01"}, {"web02"}};
  p.vetoed = {"web03"};
  p.plan = {"acquire", "stop:1", "switch:1", "start:1", "stop:2", "switch:2", "start:2", "switch", "fence", "release"};
  p.old.reset();
  auto back = unpack_progress(pack_progress(p), "progress");
  REQUIRE(back);
  CHECK(back->batches == p.batches);
  CHECK(back->vetoed == p.vetoed);
  CHECK(!back->old);
  auto steps = steps_of(back->plan);
  REQUIRE(steps);
  CHECK((*steps)[4].kind == StepKind::Stop);
  CHECK((*steps)[4].batch == 2);
  CHECK(step_done_point((*steps)[4]) == "stop-2-done");
  CHECK(step_done_point((*steps)[8]) == "fence-done");
}

TEST_CASE("progress: garbled records are integrity errors naming the file") {
  const std::string good = pack_progress(sample());
  auto bad = [](std::string text) {
    auto r = unpack_progress(text, "/share/progress");
    REQUIRE(!r);
    CHECK(r.error().code == Exit::Integrity);
    CHECK(r.error().msg.find("/share/progress") != std::string::npos);
  };
  bad(good.substr(0, good.size() / 2));
  std::string g = good;
  bad(g.replace(g.find("generation 7"), 12, "generation 0"));
  g = good;
  bad(g.replace(g.find("acquire"), 7, "explode"));
  g = good;
  bad(g.replace(g.find("hosts web01"), 11, "hosts ../x"));
  g = good;
  bad(g.replace(g.find("strategy all-at-once"), 20, "strategy canary-ish"));
}

// ---- resume's takeover rule for a marker of another host's master (the shell tests can only
// run masters on this host): the server-stamped age of the marker against its lease.
#include "fake_fs.h"

namespace {

using nfsup::test::FakeFs;

struct ResumeFixture {
  FakeFs srv;
  Share share{srv, "/s"};
  ResumeFixture() {
    srv.set_now_ms(1'000'000);
    srv.add_dir("/s");
    REQUIRE(share.init());
    Pointer p;
    p.generation = 4;
    p.release = "1.0";
    p.acting = "1.0";
    srv.add_file(share.pointer_path(), pack_pointer(p));
    Marker m;
    m.generation = 5;
    m.action = "push";
    m.release = "2.0";
    m.previous = "1.0";
    m.master_host = "elsewhere";
    m.master_pid = 1;
    m.nonce = "feedfacefeedface";
    m.lease_ms = 30000;
    srv.add_file(share.marker_path(), pack_marker(m));
  }
};

}  // namespace

TEST_CASE("resume: another host's master whose lease has not lapsed is left alone (exit 4)") {
  ResumeFixture f;
  f.srv.set_now_ms(1'000'000 + 10'000);
  MasterOptions opt;
  auto r = resume_rollout(f.share, opt, true);
  REQUIRE(!r);
  CHECK(r.error().code == Exit::Busy);
  CHECK(r.error().msg.find("renewed its lease") != std::string::npos);
  opt.force = true;  // --force takes it anyway, and says so
  auto forced = resume_rollout(f.share, opt, true);
  REQUIRE(forced);
  CHECK(forced->takeover.find("--force") == 0);
}

TEST_CASE("resume: a lapsed lease is taken over; before the switch the rollout is backed out") {
  ResumeFixture f;
  Progress pg = sample();  // the dead master's record: it had stopped the hosts
  pg.rollout = "feedfacefeedface";
  pg.generation = 5;
  pg.step = 2;
  pg.step_name = "stop";
  f.srv.add_file(progress_path(f.share), pack_progress(pg));
  f.srv.set_now_ms(1'000'000 + 31'000);
  MasterOptions opt;
  auto dry = resume_rollout(f.share, opt, true);
  REQUIRE(dry);
  CHECK(dry->takeover.find("its lease lapsed") == 0);
  CHECK(dry->outcome == "backed-out");
  CHECK(f.srv.content("/s/MARKER"));  // a dry run changes nothing
  auto r = resume_rollout(f.share, opt, false);
  REQUIRE(r);
  CHECK(r->outcome == "backed-out");
  CHECK(!f.srv.content("/s/MARKER"));
  auto p = unpack_pointer(*f.srv.content("/s/current"), "current");
  REQUIRE(p);
  CHECK(p->generation == 5);  // the old release under the marker's generation: stopped hosts resume
  CHECK(p->release == "1.0");
  CHECK(p->action == "abort");
  // The record is ended: a second resume has nothing to do, and says it was backed out.
  auto again = resume_rollout(f.share, opt, false);
  REQUIRE(again);
  CHECK(again->outcome == "nothing");
  REQUIRE(!again->lines.empty());
  CHECK(again->lines.back().find("was backed out") != std::string::npos);
}
