// config.h: `services:` (issue 18), a host that runs several named services.
#include <doctest/doctest.h>
#include <signal.h>

#include "config.h"
#include "helpers.h"

using namespace nfsup;

namespace {

const std::string kPath = "/etc/nfsup/watchdog.yaml";

std::string refused(const std::string& yaml) {
  auto r = parse_watchdog_config(yaml, kPath);
  if (r) return "<accepted>";
  CHECK(r.error().code == Exit::Usage);
  return r.error().msg;
}

const char* kThree = R"(share: /mnt/nfsup
host: node-01
services:
  - name: collector
    command: [bin/collector]
    modules: [core]
  - name: forwarder
    command: [bin/forwarder, --config, "{config}"]
    config: /etc/forwarder.conf
    modules: [core, plugin]
    stop_signal: INT
    restart_limit: 2
    changeover:
      signal: USR2
      timeout: 5s
      on_timeout: restart
  - name: api
    command: [bin/api]
    modules: [ui]
    changeover:
      command: [bin/api-changeover]
)";

std::string with_services(const std::string& body) { return "share: /mnt/nfsup\nhost: node-01\nservices:\n" + body; }

}  // namespace

TEST_CASE("services: three named services parse, each with its own keys, modules and changeover") {
  auto r = parse_watchdog_config(kThree, kPath);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  REQUIRE(r->services.size() == 3);
  const auto& a = r->services[0];
  const auto& b = r->services[1];
  const auto& c = r->services[2];
  CHECK(a.name == "collector");
  CHECK(a.command == std::vector<std::string>{"bin/collector"});
  CHECK(a.modules == std::vector<std::string>{"core"});
  CHECK_FALSE(a.changeover.configured());
  CHECK(b.name == "forwarder");
  CHECK(b.config == "/etc/forwarder.conf");
  CHECK(b.modules == std::vector<std::string>{"core", "plugin"});
  CHECK(b.stop_signal == SIGINT);
  CHECK(b.restart_limit == 2);
  CHECK(b.changeover.signal == SIGUSR2);
  CHECK(b.changeover.timeout_ms == 5000);
  CHECK(b.changeover.on_timeout == ChangeoverConfig::OnTimeout::Restart);
  CHECK(c.changeover.command == std::vector<std::string>{"bin/api-changeover"});
  CHECK(c.changeover.timeout_ms == 30000);
  CHECK(c.changeover.on_timeout == ChangeoverConfig::OnTimeout::Veto);
  // The first service is the one `agent` names in the rest of the watchdog.
  CHECK(r->agent.name == "collector");
  CHECK(r->agent.command == a.command);
}

TEST_CASE("services: the subset reader and yaml-cpp read a services list alike") {
  auto fast = parse_watchdog_config(kThree, kPath);
  auto slow = parse_watchdog_config_with_yaml_cpp(kThree, kPath);
  REQUIRE(fast.ok());
  REQUIRE(slow.ok());
  REQUIRE(fast->services.size() == slow->services.size());
  for (size_t i = 0; i < fast->services.size(); ++i) {
    CHECK(fast->services[i].name == slow->services[i].name);
    CHECK(fast->services[i].modules == slow->services[i].modules);
    CHECK(fast->services[i].changeover.signal == slow->services[i].changeover.signal);
  }
}

TEST_CASE("services: agent: stays valid and is one service named agent") {
  auto r = parse_watchdog_config("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: [bin/agent]\n", kPath);
  REQUIRE(r.ok());
  REQUIRE(r->services.size() == 1);
  CHECK(r->services[0].name == "agent");
  CHECK(r->services[0].modules.empty());  // every module of the release
  CHECK(r->agent.name == "agent");
}

TEST_CASE("services: agent and services at once are refused in one line naming the file") {
  std::string e = refused("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: [bin/agent]\nservices:\n"
                          "  - name: a\n    command: [bin/a]\n");
  CHECK(e == kPath + ":6:3: 'agent' and 'services' cannot both be given: an 'agent' is the one service named agent");
  CHECK(e.find('\n') == std::string::npos);
  CHECK(refused("share: /mnt/nfsup\nhost: web-01\n") == kPath + ": missing required key 'agent' (or 'services')");
}

TEST_CASE("services: hostile and duplicate service names are refused with file:line:col") {
  CHECK(refused(with_services("  - name: ../etc\n    command: [bin/a]\n")) ==
        kPath + ":4:11: 'services[0].name': host name '../etc' must start with a letter or digit");
  CHECK(refused(with_services("  - name: a/b\n    command: [bin/a]\n")).find(":4:11: 'services[0].name': ") !=
        std::string::npos);
  CHECK(refused(with_services("  - command: [bin/a]\n")) == kPath + ":4:5: 'services[0]' needs a 'name'");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n  - name: a\n    command: [bin/b]\n")) ==
        kPath + ":6:11: duplicate service name 'a' (first at line 4)");
  CHECK(refused(with_services("  - name: a\n")) == kPath + ":4:5: 'services.a' needs a 'command' list");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    comand: [x]\n")) ==
        kPath + ":6:5: unknown key 'comand' in 'services.a'");
  CHECK(refused(with_services("  - name: a\n    command: [../a]\n")).find(":5:14: services.a.command[0] must be") !=
        std::string::npos);
  CHECK(refused("share: /mnt/nfsup\nhost: n\nservices: []\n") ==
        kPath + ":3:11: 'services' must be a non-empty list of services (- name: ..., command: [...])");
  CHECK(refused("share: /mnt/nfsup\nhost: n\nservices: {a: 1}\n") ==
        kPath + ":3:11: 'services' must be a non-empty list of services (- name: ..., command: [...])");
}

TEST_CASE("services: modules and changeover values are checked") {
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    modules: core\n")) ==
        kPath + ":6:14: 'services.a.modules' must be a list of module names like [core, plugin]");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    modules: [core, ../x]\n")) ==
        kPath + ":6:21: 'services.a.modules': host name '../x' must start with a letter or digit");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    modules: [core, core]\n")) ==
        kPath + ":6:21: 'services.a.modules': 'core' is listed twice");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    changeover: {timeout: 5s}\n")) ==
        kPath + ":6:17: 'services.a.changeover' needs exactly one of 'signal' or 'command'");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    changeover: {signal: USR2, command: [x]}\n")) ==
        kPath + ":6:17: 'services.a.changeover' needs exactly one of 'signal' or 'command'");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    changeover: {signal: USR2, on_timeout: maybe}\n")) ==
        kPath + ":6:44: 'services.a.changeover.on_timeout' must be veto or restart");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    changeover: {signal: NOPE}\n")) ==
        kPath + ":6:26: 'services.a.changeover.signal': unknown signal 'NOPE'");
  CHECK(refused(with_services("  - name: a\n    command: [bin/a]\n    changeover: {signal: USR2, wait: 1s}\n")) ==
        kPath + ":6:32: unknown key 'wait' in 'services.a.changeover'");
  // `agent:` takes modules and changeover too (it is a service like any other).
  auto r = parse_watchdog_config(
      "share: /mnt/nfsup\nhost: n\nagent:\n  command: [bin/a]\n  modules: [core]\n  changeover: {signal: USR1}\n", kPath);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  CHECK(r->agent.modules == std::vector<std::string>{"core"});
  CHECK(r->agent.changeover.signal == SIGUSR1);
}

TEST_CASE("services: errors inside a service name the service in the key") {
  CHECK(refused(with_services("  - name: fw\n    command: [bin/a]\n    drain: {timeout: 5s}\n")) ==
        kPath + ":6:12: 'services.fw.drain' needs exactly one of 'signal' or 'command'");
  CHECK(refused(with_services("  - name: fw\n    command: [bin/a]\n    start_command: [x]\n")) ==
        kPath + ":4:5: 'services.fw.start_command' and 'services.fw.stop_command' go together: give both or neither");
  CHECK(refused(with_services("  - name: fw\n    command: [bin/a]\n    restart_limit: x\n")) ==
        kPath + ":6:20: 'services.fw.restart_limit' must be a whole number");
}
