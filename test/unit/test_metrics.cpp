// Prometheus text format: the host file's carried counters, label escaping, the fleet's series.
#include <doctest/doctest.h>

#include "master.h"
#include "metrics.h"

using namespace nfsup;

TEST_CASE("metrics: a host file carries its counters to the next write") {
  HostSample s{"web01", "running", "1.0", "0.1.0", 100, true, 12, 1000};
  HostCarry c = next_carry({}, s);
  CHECK(c.last_switch_s == 1000);
  CHECK(c.restarts == 0);
  std::string text = render_host_metrics(s, c);
  HostCarry back = parse_host_carry(text);
  CHECK(back.release == "1.0");
  CHECK(back.agent_pid == 100);
  CHECK(back.last_switch_s == 1000);
  // The agent is gone for a write (pid 0), then back with a new pid: one restart.
  s.agent_pid = 0;
  s.now_s = 1010;
  back = parse_host_carry(render_host_metrics(s, next_carry(back, s)));
  s.agent_pid = 101;
  s.now_s = 1020;
  back = parse_host_carry(render_host_metrics(s, next_carry(back, s)));
  CHECK(back.restarts == 1);
  CHECK(back.last_switch_s == 1000);
  // A new release is a switch, not a restart.
  s.release = "2.0";
  s.agent_pid = 102;
  s.now_s = 1030;
  back = parse_host_carry(render_host_metrics(s, next_carry(back, s)));
  CHECK(back.restarts == 1);
  CHECK(back.last_switch_s == 1030);
  CHECK(back.release == "2.0");
}

TEST_CASE("metrics: label values are escaped and read back") {
  HostSample s{"h", "running", "1.0 \"q\" \\x\nz", "v", 5, true, 0, 1};
  std::string text = render_host_metrics(s, next_carry({}, s));
  CHECK(text.find(R"(release="1.0 \"q\" \\x\nz")") != std::string::npos);
  CHECK(parse_host_carry(text).release == s.release);
}

TEST_CASE("metrics: a garbled previous file starts the counters again") {
  for (std::string_view bad : {"", "garbage", "nfsup_agent_restarts_total{host=\"h\"} -3\n",
                               "nfsup_host_release_info{host=\"h\",release=\"unterminated} 1\n",
                               "nfsup_agent_restarts_total{host=\"h\"} 1e99x\n"}) {
    HostCarry c = parse_host_carry(bad);
    CHECK(c.restarts == 0);
    CHECK(c.last_switch_s == 0);
  }
}

TEST_CASE("metrics: the fleet counts hosts by state, stale included") {
  StatusReport r;
  Pointer p;
  p.release = "1.0";
  p.generation = 3;
  r.pointer = p;
  HostStatus a;
  a.host = "a";
  a.state = "running";
  a.running = "1.0";
  r.hosts.push_back(HostView{"a", a, "", 1500, false});
  r.hosts.push_back(HostView{"b", a, "", 90000, true});
  r.hosts.push_back(HostView{"c", std::nullopt, "unreadable", -1, true});
  std::string o = render_fleet_metrics(r, false);
  CHECK(o.find("nfsup_fleet_release_info{release=\"1.0\",generation=\"3\"} 1\n") != std::string::npos);
  CHECK(o.find("nfsup_fleet_hosts{state=\"running\"} 1\n") != std::string::npos);
  CHECK(o.find("nfsup_fleet_hosts{state=\"stale\"} 2\n") != std::string::npos);
  CHECK(o.find("nfsup_fleet_converged 0\n") != std::string::npos);
  CHECK(o.find("nfsup_host_state{host=\"b\",state=\"stale\"} 1\n") != std::string::npos);
  CHECK(o.find("nfsup_host_heartbeat_age_seconds{host=\"a\"} 1.5\n") != std::string::npos);
}
