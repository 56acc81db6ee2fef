// nfsup core: Prometheus text format for a host and for the fleet (see metrics.h).
#include "metrics.h"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <vector>

#include "fs.h"
#include "master.h"
#include "record.h"

namespace nfsup {
namespace {

// The states a status file may hold; each is a series (0 or 1), so a query can count hosts
// in a state without knowing which states exist.
const std::vector<std::string> kStates = {"idle",     "starting", "running", "unchanged", "draining",
                                          "stopping", "stopped",  "failed",  "unreachable"};

// A label value: backslash, double quote and newline escaped (exposition format).
std::string label(std::string_view v) {
  std::string o;
  for (char ch : v) {
    if (ch == '\\') o += "\\\\";
    else if (ch == '"') o += "\\\"";
    else if (ch == '\n') o += "\\n";
    else o += ch;
  }
  return o;
}

std::optional<std::string> unlabel(std::string_view v) {
  std::string o;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      o += v[i];
      continue;
    }
    if (++i == v.size()) return std::nullopt;
    o += v[i] == 'n' ? '\n' : v[i];
  }
  return o;
}

void family(std::string& o, std::string_view name, std::string_view type, std::string_view help) {
  o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// The value of the first sample of `name` in `prom` (the file this module wrote), and the
// value of its label `lab` if asked for.
std::optional<std::string> sample_of(std::string_view prom, std::string_view name, std::string* lab = nullptr,
                                     std::string_view lab_name = {}) {
  size_t pos = 0;
  while (pos < prom.size()) {
    size_t nl = prom.find('\n', pos);
    std::string_view line = prom.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? prom.size() : nl + 1;
    if (!starts_with(line, name) || line.size() <= name.size() || (line[name.size()] != '{' && line[name.size()] != ' '))
      continue;
    size_t sp = line.rfind(' ');
    if (lab) {
      std::string key = std::string(lab_name) + "=\"";
      size_t k = line.find(key);
      if (k == std::string_view::npos) return std::nullopt;
      size_t b = k + key.size(), e = b;
      while (e < line.size() && line[e] != '"') e += line[e] == '\\' ? 2 : 1;
      auto v = unlabel(line.substr(b, e - b));
      if (!v || e >= line.size()) return std::nullopt;
      *lab = *v;
    }
    return std::string(line.substr(sp + 1));
  }
  return std::nullopt;
}

int64_t num_of(std::string_view prom, std::string_view name) {
  auto v = sample_of(prom, name);
  auto n = v ? parse_i64(*v) : std::nullopt;
  return n && *n >= 0 ? *n : 0;
}

}  // namespace

HostCarry parse_host_carry(std::string_view prom) {
  HostCarry c;
  std::string rel;
  if (sample_of(prom, "nfsup_host_release_info", &rel, "release")) c.release = rel;
  c.agent_pid = num_of(prom, "nfsup_agent_last_pid");
  c.restarts = num_of(prom, "nfsup_agent_restarts_total");
  c.last_switch_s = num_of(prom, "nfsup_host_last_switch_timestamp_seconds");
  return c;
}

HostCarry next_carry(const HostCarry& prev, const HostSample& s) {
  HostCarry c = prev;
  if (!s.release.empty() && s.release != prev.release) {
    c.last_switch_s = s.now_s;
    c.release = s.release;
  } else if (s.agent_pid > 0 && prev.agent_pid > 0 && s.agent_pid != prev.agent_pid) {
    ++c.restarts;
  }
  if (s.agent_pid > 0) c.agent_pid = s.agent_pid;
  return c;
}

std::string render_host_metrics(const HostSample& s, const HostCarry& c) {
  std::string o, h = "host=\"" + label(s.host) + "\"";
  family(o, "nfsup_host_state", "gauge", "The watchdog's state of this host's agent (1: the current one).");
  bool known = false;
  for (const auto& st : kStates) {
    known = known || st == s.state;
    o += fmt::format("nfsup_host_state{{{},state=\"{}\"}} {}\n", h, st, st == s.state ? 1 : 0);
  }
  if (!known && !s.state.empty()) o += fmt::format("nfsup_host_state{{{},state=\"{}\"}} 1\n", h, label(s.state));
  family(o, "nfsup_host_release_info", "gauge", "The release this host's agent runs.");
  if (!s.release.empty())
    o += fmt::format("nfsup_host_release_info{{{},release=\"{}\",watchdog_version=\"{}\"}} 1\n", h, label(s.release),
                     label(s.watchdog_version));
  family(o, "nfsup_host_last_switch_timestamp_seconds", "gauge",
         "When this host last moved to another release (0: not since metrics_file was set).");
  o += fmt::format("nfsup_host_last_switch_timestamp_seconds{{{}}} {}\n", h, c.last_switch_s);
  family(o, "nfsup_agent_restarts_total", "counter", "Times the agent got a new process on the same release.");
  o += fmt::format("nfsup_agent_restarts_total{{{}}} {}\n", h, c.restarts);
  family(o, "nfsup_agent_last_pid", "gauge", "The agent's most recent process id (0: none seen yet).");
  o += fmt::format("nfsup_agent_last_pid{{{}}} {}\n", h, c.agent_pid);
  family(o, "nfsup_share_up", "gauge", "1 if the last status write reached the share within share_timeout.");
  o += fmt::format("nfsup_share_up{{{}}} {}\n", h, s.share_up ? 1 : 0);
  family(o, "nfsup_share_latency_seconds", "gauge", "How long the last status write on the share took.");
  o += fmt::format("nfsup_share_latency_seconds{{{}}} {:.3f}\n", h, static_cast<double>(s.share_latency_ms) / 1000.0);
  family(o, "nfsup_host_metrics_timestamp_seconds", "gauge", "When the watchdog wrote this file.");
  o += fmt::format("nfsup_host_metrics_timestamp_seconds{{{}}} {}\n", h, s.now_s);
  return o;
}

Status write_host_metrics(const std::string& path, const HostSample& s) {
  RealFs fs("metrics");
  fs.set_durable(false);  // rewritten at every heartbeat; a crash loses at most one sample
  HostCarry prev;
  if (auto old = fs.read_file(path, 1 << 20); old && *old) prev = parse_host_carry(**old);
  return fs.write_atomic(path, render_host_metrics(s, next_carry(prev, s)), 0644);
}

std::string render_fleet_metrics(const StatusReport& r, bool converged) {
  std::string o;
  family(o, "nfsup_fleet_release_info", "gauge", "The release the share's pointer names.");
  if (r.pointer)
    o += fmt::format("nfsup_fleet_release_info{{release=\"{}\",generation=\"{}\"}} 1\n", label(r.pointer->release),
                     r.pointer->generation);
  family(o, "nfsup_fleet_switch_in_progress", "gauge", "1 while a push or rollback holds the marker.");
  o += fmt::format("nfsup_fleet_switch_in_progress {}\n", r.marker ? 1 : 0);
  family(o, "nfsup_fleet_converged", "gauge", "1 when every host runs its release (status exit code 0).");
  o += fmt::format("nfsup_fleet_converged {}\n", converged ? 1 : 0);
  std::vector<std::string> states = kStates;
  states.push_back("stale");
  std::map<std::string, int> count;
  for (const auto& st : states) count[st] = 0;
  std::string hs, rel, age;
  for (const auto& v : r.hosts) {
    std::string h = "host=\"" + label(v.host) + "\"";
    std::string state = !v.status || v.stale ? "stale" : v.status->state;
    for (const auto& st : states) hs += fmt::format("nfsup_host_state{{{},state=\"{}\"}} {}\n", h, st, st == state ? 1 : 0);
    if (!count.count(state)) hs += fmt::format("nfsup_host_state{{{},state=\"{}\"}} 1\n", h, label(state));
    ++count[state];
    if (v.status && !v.status->running.empty())
      rel += fmt::format("nfsup_host_release_info{{{},release=\"{}\",watchdog_version=\"{}\"}} 1\n", h,
                         label(v.status->running), label(v.status->watchdog_version));
    if (v.age_ms >= 0) age += fmt::format("nfsup_host_heartbeat_age_seconds{{{}}} {:.1f}\n", h, v.age_ms / 1000.0);
  }
  family(o, "nfsup_fleet_hosts", "gauge", "Hosts by state (stale: silent longer than --stale-after).");
  for (const auto& [st, n] : count) o += fmt::format("nfsup_fleet_hosts{{state=\"{}\"}} {}\n", label(st), n);
  family(o, "nfsup_host_state", "gauge", "Each host's state as its status file says (1: the current one).");
  o += hs;
  family(o, "nfsup_host_release_info", "gauge", "The release each host's agent runs.");
  o += rel;
  family(o, "nfsup_host_heartbeat_age_seconds", "gauge", "Time since each host last wrote its status (server clock).");
  o += age;
  return o;
}

}  // namespace nfsup
