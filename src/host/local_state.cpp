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

namespace {

// One line of the local state file: its arguments, "" past the last one.
struct LocalLine {
  const std::vector<std::string>& a;
  std::string at(size_t i) const { return i < a.size() ? a[i] : std::string(); }
  std::string opt(size_t i) const { return at(i) == "-" ? "" : at(i); }  // "-": none
  int64_t num(size_t i) const { return parse_i64(at(i)).value_or(0); }
};

using LocalField = void (*)(LocalState&, const LocalLine&);

// What each line sets. Unknown lines are ignored (a newer watchdog's state read by an older one).
const std::map<std::string, LocalField, std::less<>>& local_fields() {
  static const std::map<std::string, LocalField, std::less<>> t = {
      {"boot_id", [](LocalState& s, const LocalLine& l) { s.boot_id = l.at(0); }},
      {"running", [](LocalState& s, const LocalLine& l) { s.running = l.opt(0); }},
      {"agent",
       [](LocalState& s, const LocalLine& l) {
         s.agent_pid = l.num(0);
         s.agent_start = static_cast<uint64_t>(l.num(1));
         s.agent_wanted = l.at(2) == "1";
       }},
      {"held",
       [](LocalState& s, const LocalLine& l) {
         s.held_gen = l.num(0);
         s.held_since_ms = l.num(1);
       }},
      {"failed_gen", [](LocalState& s, const LocalLine& l) { s.failed_gen = l.num(0); }},
      {"state", [](LocalState& s, const LocalLine& l) { s.state = l.at(0); }},
      {"reason", [](LocalState& s, const LocalLine& l) { s.reason = l.opt(0); }},
      {"status",
       [](LocalState& s, const LocalLine& l) {
         s.status_gen = l.num(0);
         s.heartbeat = l.num(1);
         s.last_status_ms = l.num(2);
         s.last_pointer_ms = l.num(3);
       }},
      {"lease",
       [](LocalState& s, const LocalLine& l) {
         s.lease_nonce = l.opt(0);
         s.lease_renewal = l.num(1);
         s.lease_changed_ms = l.num(2);
       }},
      {"crashes",
       [](LocalState& s, const LocalLine& l) {
         for (const auto& t : l.a)
           if (t != "-") s.crashes.push_back(parse_i64(t).value_or(0));
       }},
      {"gave_up", [](LocalState& s, const LocalLine& l) { s.gave_up = l.at(0) == "1"; }},
      {"cached",
       [](LocalState& s, const LocalLine& l) {
         s.cached = l.opt(0).empty() || check_version_name(l.at(0)) ? "" : l.at(0);
         s.runs_from = l.opt(1).empty() || check_version_name(l.at(1)) ? "" : l.at(1);
       }},
      {"class",
       [](LocalState& s, const LocalLine& l) {
         s.cls = l.opt(0).empty() || check_host_name(l.at(0)) ? "" : l.at(0);
         s.voted_gen = l.num(1);
         s.voted_nonce = l.opt(2);
       }},
      {"acting",
       [](LocalState& s, const LocalLine& l) {
         s.acting = l.opt(0);
         s.previous = l.opt(1);
       }},
      {"newest",
       [](LocalState& s, const LocalLine& l) {
         s.newest = l.opt(0);
         s.seen_gen = l.num(1);
       }},
      {"lifecycle",
       [](LocalState& s, const LocalLine& l) {
         s.lc = {host::parse_phase(l.at(0)).value_or(host::Phase::Steady), l.num(1)};
         if (s.lc.phase == host::Phase::Steady) s.lc.deadline_ms = 0;
         s.trial = l.at(2) == "1";
         s.restart_at = l.num(3);
       }},
      {"conf", [](LocalState& s, const LocalLine& l) { s.published_conf = l.at(0); }},
      {"modules",
       [](LocalState& s, const LocalLine& l) {
         for (size_t i = 0; i + 1 < l.a.size(); i += 2)
           if (!check_host_name(l.a[i]) && !check_version_name(l.a[i + 1])) s.modules[l.a[i]] = l.a[i + 1];
       }},
  };
  return t;
}

}  // namespace

LocalState unpack_local(const std::string& text, const std::string& path, Logger& log) {
  LocalState s;
  auto rec = unpack_record(text, "hoststate", kFormatVersion, path);
  if (!rec) {
    if (log) log(LogLevel::Warn, rec.error().msg + " (starting from a clean local state)");
    return s;
  }
  for (const auto& l : rec->lines)
    if (auto it = local_fields().find(l.key); it != local_fields().end()) it->second(s, LocalLine{l.args});
  if (!s.running.empty() && check_version_name(s.running)) s.running.clear();
  if (!s.newest.empty() && check_version_name(s.newest)) s.newest.clear();
  if (!s.previous.empty() && check_version_name(s.previous)) s.previous.clear();
  return s;
}

}  // namespace wd
}  // namespace nfsup
