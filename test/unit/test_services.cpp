// services.h: which services a release change affects (issue 18), and the services file.
#include <doctest/doctest.h>

#include "services.h"

using namespace nfsup;
using namespace nfsup::wd;

namespace {

AgentConfig svc(const std::string& name, std::vector<std::string> mods) {
  AgentConfig a;
  a.name = name;
  a.modules = std::move(mods);
  return a;
}

ModuleInfo mod(const std::string& name, const std::string& hash, std::map<std::string, std::string> deps = {}) {
  ModuleInfo m;
  m.name = name;
  m.version = "1";
  m.sha256 = hash;
  m.depends = std::move(deps);
  return m;
}

const std::vector<AgentConfig> kABC = {svc("a", {"core"}), svc("b", {"core", "plugin"}), svc("c", {"ui"})};

}  // namespace

TEST_CASE("services: a release changing only ui replaces c alone") {
  std::map<std::string, std::string> old_h{{"core", "h1"}, {"plugin", "p1"}, {"ui", "u1"}};
  std::vector<ModuleInfo> next{mod("core", "h1"), mod("plugin", "p1"), mod("ui", "u2")};
  auto ch = classify_services(kABC, old_h, next);
  CHECK(ch.at("a") == ServiceChange::Unchanged);
  CHECK(ch.at("b") == ServiceChange::Unchanged);
  CHECK(ch.at("c") == ServiceChange::Replaced);
}

TEST_CASE("services: a service whose module depends on a changed module is affected and stays up") {
  std::map<std::string, std::string> old_h{{"core", "h1"}, {"plugin", "p1"}, {"ui", "u1"}};
  // plugin depends on core; b runs plugin only here.
  std::vector<AgentConfig> s = {svc("a", {"core"}), svc("b", {"plugin"}), svc("c", {"ui"})};
  std::vector<ModuleInfo> next{mod("core", "h2"), mod("plugin", "p1", {{"core", "1"}}), mod("ui", "u1")};
  auto ch = classify_services(s, old_h, next);
  CHECK(ch.at("a") == ServiceChange::Replaced);
  CHECK(ch.at("b") == ServiceChange::Affected);
  CHECK(ch.at("c") == ServiceChange::Unchanged);
  // Transitively: ui depends on plugin, which depends on core.
  next[2].depends = {{"plugin", "1"}};
  CHECK(classify_services(s, old_h, next).at("c") == ServiceChange::Affected);
}

TEST_CASE("services: an own module changed wins over a dependency; [] means every module") {
  std::map<std::string, std::string> old_h{{"core", "h1"}, {"plugin", "p1"}};
  std::vector<ModuleInfo> next{mod("core", "h2"), mod("plugin", "p1", {{"core", "1"}})};
  auto ch = classify_services({svc("b", {"core", "plugin"}), svc("all", {})}, old_h, next);
  CHECK(ch.at("b") == ServiceChange::Replaced);
  CHECK(ch.at("all") == ServiceChange::Replaced);
  // Nothing changed: every service unchanged, [] included.
  std::vector<ModuleInfo> same{mod("core", "h1"), mod("plugin", "p1")};
  CHECK(classify_services({svc("all", {})}, old_h, same).at("all") == ServiceChange::Unchanged);
}

TEST_CASE("services: a module added, removed or unknown counts as changed") {
  std::map<std::string, std::string> old_h{{"core", "h1"}};
  std::vector<ModuleInfo> next{mod("core", "h1"), mod("ui", "u1")};
  auto ch = classify_services({svc("a", {"core"}), svc("c", {"ui"}), svc("all", {})}, old_h, next);
  CHECK(ch.at("a") == ServiceChange::Unchanged);
  CHECK(ch.at("c") == ServiceChange::Replaced);    // ui is new
  CHECK(ch.at("all") == ServiceChange::Replaced);  // the set of modules changed
  // A release without modules (old or new): nothing can be told apart; everything is replaced.
  CHECK(classify_services({svc("a", {"core"})}, {}, next).at("a") == ServiceChange::Replaced);
  CHECK(classify_services({svc("a", {"core"})}, old_h, {}).at("a") == ServiceChange::Replaced);
}

TEST_CASE("services: the services file round-trips and survives damage") {
  ServiceRun r;
  r.name = "b";
  r.pid = 42;
  r.start = 7;
  r.version = "1.0";
  r.want = "2.0";
  r.state = "running";
  r.change = ServiceChange::Affected;
  r.started_wall = 1700000000;
  auto back = unpack_services(pack_services({r}));
  REQUIRE(back.size() == 1);
  CHECK(back[0].name == "b");
  CHECK(back[0].pid == 42);
  CHECK(back[0].want == "2.0");
  CHECK(back[0].change == ServiceChange::Affected);
  CHECK(unpack_services("garbage\nservice b 1").empty());
  CHECK(unpack_services("nfsup-services 1\nservice ../x 1 2 1.0 - running unchanged 0\n").empty());
}
