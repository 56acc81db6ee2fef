// nfsup host: the watchdog's local state file.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

std::string read_boot_id() {
  char buf[64];
  int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

std::string pack_local(const LocalState& s) {
  Record r{"hoststate", kFormatVersion, {}};
  r.add("boot_id", {s.boot_id.empty() ? "-" : s.boot_id});
  r.add("running", {s.running.empty() ? "-" : s.running});
  r.add("agent", {std::to_string(s.agent_pid), std::to_string(s.agent_start), s.agent_wanted ? "1" : "0"});
  r.add("held", {std::to_string(s.held_gen), std::to_string(s.held_since_ms)});
  r.add("failed_gen", {std::to_string(s.failed_gen)});
  r.add("state", {s.state});
  r.add("reason", {s.reason.empty() ? "-" : s.reason});
  r.add("status", {std::to_string(s.status_gen), std::to_string(s.heartbeat), std::to_string(s.last_status_ms),
                   std::to_string(s.last_pointer_ms)});
  r.add("lease", {s.lease_nonce.empty() ? "-" : s.lease_nonce, std::to_string(s.lease_renewal),
                  std::to_string(s.lease_changed_ms)});
  std::vector<std::string> c;
  for (auto t : s.crashes) c.push_back(std::to_string(t));
  r.add("crashes", c.empty() ? std::vector<std::string>{"-"} : c);
  r.add("gave_up", {s.gave_up ? "1" : "0"});
  r.add("newest", {s.newest.empty() ? "-" : s.newest, std::to_string(s.seen_gen)});
  r.add("acting", {s.acting.empty() ? "-" : s.acting, s.previous.empty() ? "-" : s.previous});
  r.add("class", {s.cls.empty() ? "-" : s.cls, std::to_string(s.voted_gen), s.voted_nonce.empty() ? "-" : s.voted_nonce});
  r.add("cached", {s.cached.empty() ? "-" : s.cached, s.runs_from.empty() ? "-" : s.runs_from});
  std::vector<std::string> mods;
  for (const auto& [m, v] : s.modules) {
    mods.push_back(m);
    mods.push_back(v);
  }
  if (!mods.empty()) r.add("modules", mods);
  r.add("lifecycle", {host::phase_name(s.lc.phase), std::to_string(s.lc.deadline_ms), s.trial ? "1" : "0",
                      std::to_string(s.restart_at)});
  if (!s.published_conf.empty()) r.add("conf", {s.published_conf});
  return pack_record(r);
}

LocalState unpack_local(const std::string& text, const std::string& path, Logger& log) {
  LocalState s;
  auto rec = unpack_record(text, "hoststate", kFormatVersion, path);
  if (!rec) {
    if (log) log(LogLevel::Warn, rec.error().msg + " (starting from a clean local state)");
    return s;
  }
  auto num = [](const std::string& x) { return parse_i64(x).value_or(0); };
  for (const auto& l : rec->lines) {
    const auto& a = l.args;
    auto at = [&](size_t i) { return i < a.size() ? a[i] : std::string(); };
    if (l.key == "boot_id") s.boot_id = at(0);
    else if (l.key == "running") s.running = at(0) == "-" ? "" : at(0);
    else if (l.key == "agent") {
      s.agent_pid = num(at(0));
      s.agent_start = static_cast<uint64_t>(num(at(1)));
      s.agent_wanted = at(2) == "1";
    } else if (l.key == "held") {
      s.held_gen = num(at(0));
      s.held_since_ms = num(at(1));
    } else if (l.key == "failed_gen") s.failed_gen = num(at(0));
    else if (l.key == "state") s.state = at(0);
    else if (l.key == "reason") s.reason = at(0) == "-" ? "" : at(0);
    else if (l.key == "status") {
      s.status_gen = num(at(0));
      s.heartbeat = num(at(1));
      s.last_status_ms = num(at(2));
      s.last_pointer_ms = num(at(3));
    } else if (l.key == "lease") {
      s.lease_nonce = at(0) == "-" ? "" : at(0);
      s.lease_renewal = num(at(1));
      s.lease_changed_ms = num(at(2));
    } else if (l.key == "crashes") {
      for (const auto& t : a)
        if (t != "-") s.crashes.push_back(num(t));
    } else if (l.key == "gave_up") s.gave_up = at(0) == "1";
    else if (l.key == "cached") {
      s.cached = at(0) == "-" || check_version_name(at(0)) ? "" : at(0);
      s.runs_from = at(1) == "-" || at(1).empty() || check_version_name(at(1)) ? "" : at(1);
    }
    else if (l.key == "class") {
      s.cls = at(0) == "-" || check_host_name(at(0)) ? "" : at(0);
      s.voted_gen = num(at(1));
      s.voted_nonce = at(2) == "-" ? "" : at(2);
    } else if (l.key == "acting") {
      s.acting = at(0) == "-" ? "" : at(0);
      s.previous = at(1) == "-" ? "" : at(1);
    } else if (l.key == "newest") {
      s.newest = at(0) == "-" ? "" : at(0);
      s.seen_gen = num(at(1));
    } else if (l.key == "lifecycle") {
      s.lc = {host::parse_phase(at(0)).value_or(host::Phase::Steady), num(at(1))};
      if (s.lc.phase == host::Phase::Steady) s.lc.deadline_ms = 0;
      s.trial = at(2) == "1";
      s.restart_at = num(at(3));
    } else if (l.key == "conf") {
      s.published_conf = at(0);
    } else if (l.key == "modules") {
      for (size_t i = 0; i + 1 < a.size(); i += 2)
        if (!check_host_name(a[i]) && !check_version_name(a[i + 1])) s.modules[a[i]] = a[i + 1];
    }
  }
  if (!s.running.empty() && check_version_name(s.running)) s.running.clear();
  if (!s.newest.empty() && check_version_name(s.newest)) s.newest.clear();
  if (!s.previous.empty() && check_version_name(s.previous)) s.previous.clear();
  return s;
}

}  // namespace wd
}  // namespace nfsup
