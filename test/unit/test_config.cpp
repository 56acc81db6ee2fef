// config.h: strict parsing of the watchdog YAML configuration.
#include <doctest/doctest.h>
#include <signal.h>

#include <unistd.h>

#include <cstdlib>

#include "config.h"
#include "crypto.h"
#include "helpers.h"

using namespace nfsup;

namespace {

const std::string kPath = "/etc/nfsup/watchdog.yaml";

const char* kFull = R"(share: /mnt/nfsup/
host: web-01
poll_interval: 500ms
heartbeat_interval: 5s
share_timeout: 3s
state_dir: /var/lib/nfsup-test
verify_before_start: false
agent:
  command: [bin/agent, --config, "{config}"]
  config: /etc/agent/agent.conf
  stop_signal: SIGINT
  stop_timeout: 10s
  start_command: [systemctl, start, agent]
  stop_command: [systemctl, stop, agent]
  status_command: [systemctl, is-active, agent]
  restart_limit: 3
  restart_window: 2m
  reconfig_timeout: 45s
  start_grace: 250ms
)";

// The error message of a config that must be refused (and the code must be Usage).
std::string error_of(const std::string& yaml) {
  auto r = parse_watchdog_config(yaml, kPath);
  if (r) return "<accepted>";
  CHECK(r.error().code == Exit::Usage);
  CHECK(starts_with(r.error().msg, kPath + ":"));
  return r.error().msg;
}

std::string minimal(const std::string& extra_top = "", const std::string& extra_agent = "") {
  return "share: /mnt/nfsup\nhost: web-01\n" + extra_top + "agent:\n  command: [bin/agent]\n" + extra_agent;
}

}  // namespace

TEST_CASE("config: a full valid config parses into every field") {
  auto r = parse_watchdog_config(kFull, kPath);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  const WatchdogConfig& c = *r;
  CHECK(c.path == kPath);
  CHECK(c.share == "/mnt/nfsup");  // trailing slash dropped
  CHECK(c.host == "web-01");
  CHECK(c.poll_interval_ms == 500);
  CHECK(c.heartbeat_interval_ms == 5000);
  CHECK(c.share_timeout_ms == 3000);
  CHECK(c.state_dir == "/var/lib/nfsup-test");
  CHECK(c.verify_before_start == false);
  CHECK(c.agent.command == std::vector<std::string>{"bin/agent", "--config", "{config}"});
  CHECK(c.agent.config == "/etc/agent/agent.conf");
  CHECK(c.agent.stop_signal == SIGINT);
  CHECK(c.agent.stop_timeout_ms == 10000);
  CHECK(c.agent.start_command == std::vector<std::string>{"systemctl", "start", "agent"});
  CHECK(c.agent.stop_command == std::vector<std::string>{"systemctl", "stop", "agent"});
  CHECK(c.agent.status_command == std::vector<std::string>{"systemctl", "is-active", "agent"});
  CHECK(c.agent.restart_limit == 3);
  CHECK(c.agent.restart_window_ms == 120000);
  CHECK(c.agent.reconfig_timeout_ms == 45000);
  CHECK(c.agent.start_grace_ms == 250);
}

TEST_CASE("config: a minimal config gets the documented defaults") {
  auto r = parse_watchdog_config("share: /mnt/nfsup\nagent:\n  command: [bin/agent]\n", kPath);
  if (check_host_name(short_hostname())) {
    // This machine's own name is not a valid nfsup host name: the default must be refused.
    REQUIRE_FALSE(r.ok());
    CHECK(starts_with(r.error().msg, kPath + ": 'host': "));
    return;
  }
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().msg));
  CHECK(r->host == short_hostname());
  CHECK(r->poll_interval_ms == 2000);
  CHECK(r->heartbeat_interval_ms == 10000);
  CHECK(r->share_timeout_ms == 10000);
  CHECK(r->state_dir == "/var/lib/nfsup");
  CHECK(r->verify_before_start == true);
  CHECK(r->agent.command == std::vector<std::string>{"bin/agent"});
  CHECK(r->agent.config == "");
  CHECK(r->agent.stop_signal == SIGTERM);
  CHECK(r->agent.stop_timeout_ms == 30000);
  CHECK(r->agent.start_command.empty());
  CHECK(r->agent.restart_limit == 5);
  CHECK(r->agent.restart_window_ms == 300000);
  CHECK(r->agent.reconfig_timeout_ms == 60000);
  CHECK(r->agent.start_grace_ms == 1000);
}

TEST_CASE("config: each missing required key is named") {
  CHECK(error_of("host: web-01\nagent:\n  command: [bin/agent]\n") == kPath + ": missing required key 'share'");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\n") == kPath + ": missing required key 'agent' (or 'services')");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  config: /etc/a.conf\n") ==
        kPath + ":4:3: 'agent' needs a 'command' list");
}

TEST_CASE("config: wrong types are refused with line and column") {
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: bin/agent\n") ==
        kPath + ":4:12: 'agent.command' must be a non-empty list like [bin/agent, --flag]");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: []\n") ==
        kPath + ":4:12: 'agent.command' must be a non-empty list like [bin/agent, --flag]");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: [bin/agent, [x]]\n") ==
        kPath + ":4:24: 'agent.command' elements must be strings");
  CHECK(error_of(minimal("poll_interval: fast\n")) ==
        kPath + ":3:16: 'poll_interval': 'fast' is not a duration (use 250ms, 2s, 5m)");
  CHECK(error_of(minimal("share_timeout: [1s]\n")) ==
        kPath + ":3:16: 'share_timeout' must be a duration like 250ms, 2s, 5m");
  CHECK(error_of(minimal("verify_before_start: maybe\n")) == kPath + ":3:22: 'verify_before_start' must be true or false");
  CHECK(error_of("share: [/mnt/nfsup]\nagent:\n  command: [bin/agent]\n") == kPath + ":1:8: 'share' must be a string");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent: [bin/agent]\n") == kPath + ":3:8: 'agent' must be a mapping");
  CHECK(error_of(minimal("", "  restart_limit: 2.5\n")) == kPath + ":5:18: 'agent.restart_limit' must be a whole number");
  CHECK(error_of(minimal("", "  stop_signal: BOGUS\n")) == kPath + ":5:16: unknown signal 'BOGUS'");
  CHECK(error_of(minimal("", "  stop_signal: 99999999999\n")) == kPath + ":5:16: unknown signal '99999999999'");
  CHECK(error_of(minimal("", "  stop_timeout: 10 s\n")) ==
        kPath + ":5:17: 'agent.stop_timeout': '10 s' is not a duration (use 250ms, 2s, 5m)");
}

TEST_CASE("config: an unknown key (typo) is named with line:column") {
  CHECK(error_of("share: /mnt/nfsup\npol_interval: 2s\nagent:\n  command: [bin/agent]\n") ==
        kPath + ":2:1: unknown key 'pol_interval'");
  CHECK(error_of("share: /mnt/nfsup\nagent:\n  command: [bin/agent]\n  comand: [x]\n") ==
        kPath + ":4:3: unknown key 'comand' in 'agent'");
}

TEST_CASE("config: malformed YAML and non-mapping documents") {
  std::string e = error_of("share: [/mnt/nfsup\nagent:\n  command: [bin/agent]\n");
  CHECK(e.find("YAML syntax error") != std::string::npos);
  e = error_of("share: /mnt/nfsup\n  agent: x\n bad: - [\n");
  CHECK(e.find("YAML syntax error") != std::string::npos);
  CHECK(error_of("- share\n- agent\n") == kPath + ": the top level must be a mapping of keys");
  CHECK(error_of("") == kPath + ": the top level must be a mapping of keys");
}

TEST_CASE("config: state_dir inside the share is refused") {
  CHECK(error_of(minimal("state_dir: /mnt/nfsup/state\n")) ==
        kPath + ":3:12: 'state_dir' must be local, not inside the share");
  CHECK(error_of(minimal("state_dir: /mnt/nfsup\n")) == kPath + ":3:12: 'state_dir' must be local, not inside the share");
  CHECK(error_of(minimal("state_dir: var/lib/nfsup\n")) ==
        kPath + ":3:12: 'state_dir' must be an absolute path on local disk");
  // A sibling that merely shares the prefix is local.
  auto r = parse_watchdog_config(minimal("state_dir: /mnt/nfsup2/state\n"), kPath);
  REQUIRE(r.ok());
  CHECK(r->state_dir == "/mnt/nfsup2/state");
}

TEST_CASE("config: start_command without stop_command is refused") {
  CHECK(error_of(minimal("", "  start_command: [systemctl, start, a]\n")) ==
        kPath + ":4:3: 'agent.start_command' and 'agent.stop_command' go together: give both or neither");
  CHECK(error_of(minimal("", "  stop_command: [systemctl, stop, a]\n")) ==
        kPath + ":4:3: 'agent.start_command' and 'agent.stop_command' go together: give both or neither");
  CHECK(parse_watchdog_config(minimal("", "  start_command: [a]\n  stop_command: [b]\n"), kPath).ok());
}

TEST_CASE("config: value rules (paths, limits, host)") {
  CHECK(error_of("share: mnt/nfsup\nhost: web-01\nagent:\n  command: [bin/agent]\n") ==
        kPath + ":1:8: 'share' must be an absolute path");
  CHECK(error_of("share: /mnt/nfsup\nhost: ../web\nagent:\n  command: [bin/agent]\n") ==
        kPath + ":2:7: 'host': host name '../web' must start with a letter or digit");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: [../bin/agent]\n") ==
        kPath + ":4:12: agent.command[0] must be a path relative to the release directory: path '../bin/agent' contains '..'");
  CHECK(error_of("share: /mnt/nfsup\nhost: web-01\nagent:\n  command: [/usr/bin/agent]\n") ==
        kPath + ":4:12: agent.command[0] must be a path relative to the release directory: absolute path '/usr/bin/agent'");
  CHECK(error_of(minimal("", "  config: etc/agent.conf\n")) == kPath + ":5:11: 'agent.config' must be an absolute path");
  CHECK(error_of(minimal("poll_interval: 10ms\n")) == kPath + ":3:16: 'poll_interval' must be at least 50ms");
  CHECK(error_of(minimal("share_timeout: 50ms\n")) == kPath + ":3:16: 'share_timeout' must be at least 100ms");
  auto r = parse_watchdog_config(minimal("poll_interval: 3s\nheartbeat_interval: 1s\n"), kPath);
  REQUIRE(r.ok());
  CHECK(r->heartbeat_interval_ms == 3000);  // never beats faster than it polls
}

TEST_CASE("config: load_watchdog_config reads a file and names it in errors") {
  test::TempDir dir;
  std::string p = dir / "watchdog.yaml";
  test::spit(p, minimal("poll_interval: 1s\n"));
  auto r = load_watchdog_config(p);
  REQUIRE(r.ok());
  CHECK(r->path == p);
  CHECK(r->poll_interval_ms == 1000);
  auto missing = load_watchdog_config(dir / "nope.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Exit::Usage);
  CHECK(missing.error().msg == dir / "nope.yaml" + ": cannot read config: No such file or directory");
}

TEST_CASE("config: parse_signal and signal_name") {
  CHECK(parse_signal("TERM") == SIGTERM);
  CHECK(parse_signal("SIGTERM") == SIGTERM);
  CHECK(parse_signal("INT") == SIGINT);
  CHECK(parse_signal("SIGKILL") == SIGKILL);
  CHECK(parse_signal("9") == 9);
  CHECK(parse_signal("64") == 64);
  CHECK(parse_signal("0") == 0);
  CHECK(parse_signal("65") == 0);
  CHECK(parse_signal("") == 0);
  CHECK(parse_signal("term") == 0);
  CHECK(parse_signal("BOGUS") == 0);
  CHECK(parse_signal("99999999999") == 0);  // must not throw std::out_of_range
  CHECK(parse_signal("-1") == 0);
  CHECK(signal_name(SIGTERM) == "SIGTERM");
  CHECK(signal_name(SIGKILL) == "SIGKILL");
}

TEST_CASE("config: run_from and keep_releases (issue 17): defaults, values, and refusals with file:line") {
  auto d = parse_watchdog_config(minimal(), kPath);
  REQUIRE(d.ok());
  CHECK(d->run_from_share == false);  // local is the default
  CHECK(d->keep_releases == 2);
  auto s = parse_watchdog_config(minimal("run_from: share\nkeep_releases: 0\n"), kPath);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().msg));
  CHECK(s->run_from_share == true);
  CHECK(s->keep_releases == 0);
  auto l = parse_watchdog_config(minimal("run_from: local\nkeep_releases: 5\n"), kPath);
  REQUIRE(l.ok());
  CHECK(l->run_from_share == false);
  CHECK(l->keep_releases == 5);
  CHECK(error_of(minimal("run_from: disk\n")) == kPath + ":3:11: 'run_from' must be local or share");
  CHECK(error_of(minimal("run_from: [local]\n")) == kPath + ":3:11: 'run_from' must be a string");
  CHECK(error_of(minimal("keep_releases: two\n")) ==
        kPath + ":3:16: 'keep_releases' must be a whole number from 0 to 9999");
  CHECK(error_of(minimal("keep_releases: -1\n")) ==
        kPath + ":3:16: 'keep_releases' must be a whole number from 0 to 9999");
  CHECK(error_of(minimal("keep_releases: {a: 1}\n")) == kPath + ":3:16: 'keep_releases' must be a string");
  CHECK(starts_with(error_of(minimal("run_from: local\nrun_from: share\n")), kPath + ":4:1: "));
  CHECK(error_of(minimal("keep_release: 2\n")) == kPath + ":3:1: unknown key 'keep_release'");
}

TEST_CASE("config: run_from: share is refused in signed mode") {
  char t[] = "/tmp/nfsup-cfgkey.XXXXXX";
  std::string dir = ::mkdtemp(t);
  auto k = generate_keypair(dir, "k");
  REQUIRE(k.ok());
  std::string keys = "trusted_keys: [" + dir + "/k.pub]\n";
  CHECK(parse_watchdog_config(minimal(keys), kPath).ok());
  CHECK(error_of(minimal(keys + "run_from: share\n")) ==
        kPath + ":4:11: 'run_from: share' is refused in signed mode (trusted_keys): a signed host runs only the "
                "local copy it verified; use run_from: local");
  std::system(("rm -rf " + dir).c_str());
}
