// Rollout plans: each strategy's step list and failure policy (src/master/plan.h).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>

#include "master/plan.h"

using namespace nfsup;

namespace {

std::vector<std::string> kinds(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.steps) out.push_back(s.batch ? fmt::format("{}{}", step_name(s.kind), s.batch) : step_name(s.kind));
  return out;
}

PlanInput push_input() {
  PlanInput in;
  in.from = "1.0";
  in.acting = "1.0";
  in.to = "2.0";
  in.hosts = {"a", "b", "c", "d"};
  in.fleet = 4;
  return in;
}

}  // namespace

TEST_CASE("plan: an all-at-once push stops everyone, migrates, switches, starts, fences") {
  auto p = build_plan(push_input());
  REQUIRE(p);
  CHECK(kinds(*p) == std::vector<std::string>{"acquire", "stop", "migrate", "switch", "start", "fence", "release"});
  CHECK(p->steps[1].hosts == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(p->steps[3].hosts.empty());  // the pointer names the target for everyone
  CHECK(p->steps[5].release == "2.0");
  CHECK(p->policy == FailurePolicy{OnFailure::BackOut, OnFailure::UndoOrKeep, -1});
  CHECK(p->batches().empty());
}

TEST_CASE("plan: votes come first; the first release and a rollback have no migration") {
  auto in = push_input();
  in.vote = true;
  auto p = build_plan(in);
  REQUIRE(p);
  CHECK(kinds(*p)[1] == "vote");
  CHECK(p->steps[1].hosts == in.hosts);

  in.vote = false;
  in.from = in.acting = "";
  CHECK(kinds(*build_plan(in)) == std::vector<std::string>{"acquire", "stop", "switch", "start", "fence", "release"});

  in = push_input();
  in.action = "rollback";
  in.from = in.acting = "2.0";
  in.to = "1.0";
  CHECK(kinds(*build_plan(in)) == std::vector<std::string>{"acquire", "stop", "switch", "start", "fence", "release"});
}

TEST_CASE("plan: a --hosts/--class subset gets overrides and keeps the acting version and the data") {
  auto in = push_input();
  in.subset = true;
  in.hosts = {"b"};
  auto p = build_plan(in);
  REQUIRE(p);
  CHECK(kinds(*p) == std::vector<std::string>{"acquire", "stop", "switch", "start", "fence", "release"});
  CHECK(p->steps[2].hosts == std::vector<std::string>{"b"});
  CHECK(p->steps[4].release == "1.0");
}

TEST_CASE("plan: rolling batches respect --batch, percentages and --max-unavailable per group") {
  auto in = push_input();
  in.strategy = "rolling";
  in.batch = "2";
  auto p = build_plan(in);
  REQUIRE(p);
  CHECK(kinds(*p) == std::vector<std::string>{"acquire", "stop1", "switch1", "start1", "stop2", "switch2", "start2",
                                              "migrate", "switch", "fence", "release"});
  CHECK(p->batches() == std::vector<std::vector<std::string>>{{"a", "b"}, {"c", "d"}});
  CHECK(p->policy == FailurePolicy{OnFailure::BackOut, OnFailure::RollBackUpgraded, 0});

  in.batch = "50%";
  in.fleet = 8;  // the percentage counts the whole live fleet, as today
  CHECK(build_plan(in)->batch_size == 4);

  in.batch = "2";
  in.groups = {{"a", "g1"}, {"b", "g1"}, {"c", "g2"}};
  CHECK(build_plan(in)->batches() == std::vector<std::vector<std::string>>{{"a", "c"}, {"b", "d"}});

  in.max_failures = 3;
  CHECK(build_plan(in)->policy.max_failures == 3);
}

TEST_CASE("plan: rolling with --hold-acting neither migrates nor moves the fence") {
  auto in = push_input();
  in.strategy = "rolling";
  in.hold_acting = true;
  auto p = build_plan(in);
  REQUIRE(p);
  const auto k = kinds(*p);
  CHECK(std::find(k.begin(), k.end(), "migrate") == k.end());
  CHECK(p->steps[p->steps.size() - 2].release == "1.0");
}

TEST_CASE("plan: refusals") {
  auto in = push_input();
  in.strategy = "rolling";
  in.batch = "0";
  auto p = build_plan(in);
  REQUIRE(!p);
  CHECK(p.error().code == Exit::Usage);
  in.batch = "abc";
  CHECK(!build_plan(in));
  in.batch = "1";
  in.from = "";
  CHECK(!build_plan(in));  // the first release goes all-at-once
  in = push_input();
  in.strategy = "canary";
  CHECK(!build_plan(in));
  in.strategy = "rolling";
  in.action = "rollback";
  CHECK(!build_plan(in));
}

TEST_CASE("plan: finalize migrates and fences without stopping anyone") {
  PlanInput in;
  in.action = "finalize";
  in.from = in.to = "2.0";
  in.acting = "1.0";
  auto p = build_plan(in);
  REQUIRE(p);
  CHECK(kinds(*p) == std::vector<std::string>{"acquire", "migrate", "switch", "fence", "release"});
}

TEST_CASE("plan: describe_plan says every step and the failure policy") {
  auto in = push_input();
  in.strategy = "rolling";
  in.batch = "3";
  auto lines = describe_plan(*build_plan(in));
  REQUIRE(lines.size() == build_plan(in)->steps.size() + 1);
  CHECK(lines[1] == "plan step 2 stop [batch 1]: a b c (3)");
  CHECK(lines.back().find("every upgraded host goes back") != std::string::npos);
}
