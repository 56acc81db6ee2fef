// nfsup host: the services of a host besides its first (see services.h).
#include "services.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <optional>
#include <set>
#include <sstream>

#include "os/clock.h"
#include "os/files.h"

namespace nfsup {
namespace wd {

const char* service_change_name(ServiceChange c) {
  switch (c) {
    case ServiceChange::Unchanged: return "unchanged";
    case ServiceChange::Affected: return "affected";
    case ServiceChange::Replaced: return "replaced";
  }
  return "unchanged";
}

namespace {

std::optional<ServiceChange> parse_change(const std::string& s) {
  for (auto c : {ServiceChange::Unchanged, ServiceChange::Affected, ServiceChange::Replaced})
    if (s == service_change_name(c)) return c;
  return std::nullopt;
}

// The modules that changed, and then every module that depends on one of them, to a fixpoint.
std::pair<std::set<std::string>, std::set<std::string>> changed_and_dependents(
    const std::map<std::string, std::string>& old_hashes, const std::vector<ModuleInfo>& next) {
  std::set<std::string> changed, reached;
  for (const auto& m : next) {
    auto it = old_hashes.find(m.name);
    if (it == old_hashes.end() || it->second != m.sha256) changed.insert(m.name);
  }
  for (const auto& kv : old_hashes) {
    const std::string& name = kv.first;  // (not a structured binding: clang 14 cannot capture one)
    if (std::none_of(next.begin(), next.end(), [&](const ModuleInfo& m) { return m.name == name; })) changed.insert(name);
  }
  reached = changed;
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& m : next)
      if (!reached.count(m.name))
        for (const auto& [dep, v] : m.depends)
          if (reached.count(dep)) {
            reached.insert(m.name);
            grew = true;
            break;
          }
  }
  return {changed, reached};
}

}  // namespace

std::map<std::string, ServiceChange> classify_services(const std::vector<AgentConfig>& services,
                                                       const std::map<std::string, std::string>& old_hashes,
                                                       const std::vector<ModuleInfo>& next) {
  std::map<std::string, ServiceChange> out;
  auto [changed, reached] = changed_and_dependents(old_hashes, next);
  const bool blind = old_hashes.empty() || next.empty();
  for (const auto& s : services) {
    ServiceChange c = ServiceChange::Unchanged;
    if (blind || (s.modules.empty() && !changed.empty())) {
      c = ServiceChange::Replaced;
    } else {
      for (const auto& m : s.modules) {
        if (changed.count(m)) c = ServiceChange::Replaced;
        else if (reached.count(m) && c == ServiceChange::Unchanged) c = ServiceChange::Affected;
      }
    }
    out[s.name] = c;
  }
  return out;
}

std::string pack_services(const std::vector<ServiceRun>& runs) {
  std::string out = "nfsup-services 1\n";
  auto v = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  for (const auto& r : runs)
    out += fmt::format("service {} {} {} {} {} {} {} {}\n", r.name, r.pid, r.start, v(r.version), v(r.want), r.state,
                       service_change_name(r.change), r.started_wall);
  return out;
}

// A damaged file loses only what it cannot say: a line that does not parse is skipped (its
// service is then taken as stopped, and started again).
std::vector<ServiceRun> unpack_services(const std::string& text) {
  std::vector<ServiceRun> out;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != "nfsup-services 1") return out;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string tag, change;
    ServiceRun r;
    if (!(l >> tag >> r.name >> r.pid >> r.start >> r.version >> r.want >> r.state >> change >> r.started_wall) ||
        tag != "service")
      continue;
    auto c = parse_change(change);
    if (check_host_name(r.name) || r.pid < 0 || !c) continue;
    r.change = *c;
    if (r.version == "-") r.version.clear();
    if (r.want == "-") r.want.clear();
    out.push_back(std::move(r));
  }
  return out;
}

void Services::configure(const std::vector<AgentConfig>& all) {
  std::vector<AgentConfig> cfgs(all.size() > 1 ? all.begin() + 1 : all.end(), all.end());
  std::vector<ServiceRun> runs;
  for (const auto& a : cfgs) {
    auto it = std::find_if(runs_.begin(), runs_.end(), [&](const ServiceRun& r) { return r.name == a.name; });
    ServiceRun r;
    if (it != runs_.end()) r = *it;
    r.name = a.name;
    runs.push_back(r);
  }
  // A service taken out of the configuration (SIGHUP) is stopped.
  for (auto& r : runs_)
    if (std::none_of(cfgs.begin(), cfgs.end(), [&](const AgentConfig& a) { return a.name == r.name; }) && r.pid > 0) {
      AgentConfig gone;
      stop(r, gone, "no longer configured");
    }
  cfgs_ = std::move(cfgs);
  runs_ = std::move(runs);
}

void Services::load() {
  std::string text;
  if (read_all(path_join(dir_, "services"), 1 << 20, &text) != 0) return;
  auto old = unpack_services(text);
  for (auto& r : runs_)
    for (const auto& o : old)
      if (o.name == r.name) {
        r.pid = o.pid;
        r.start = o.start;
        r.version = o.version;
        r.want = o.want;
        r.change = o.change;
        r.state = o.state;
        r.started_wall = o.started_wall;
      }
  saved_ = text;
}

void Services::save() {
  if (cfgs_.empty() && saved_.empty()) return;
  std::string p = pack_services(runs_);
  if (p == saved_) return;
  if (auto s = write_local_atomic(path_join(dir_, "services"), p, 0644); !s)
    say(LogLevel::Error, fmt::format("write {}: {}", path_join(dir_, "services"), s.error().msg));
  else
    saved_ = p;
}

void Services::adopt_orphans() {
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& r = runs_[i];
    if (r.pid > 0 && process_alive(static_cast<pid_t>(r.pid), r.start)) {
      say(LogLevel::Info, fmt::format("service {}: stopping pid {} left by an earlier watchdog", r.name, r.pid));
      stop_process(static_cast<pid_t>(r.pid), cfgs_[i].stop_signal, cfgs_[i].stop_timeout_ms, false);
    }
    r.pid = 0;
    r.start = 0;
    r.state = "stopped";
  }
  save();
}

void Services::reap() {
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& r = runs_[i];
    if (r.pid <= 0) continue;
    int status = 0;
    pid_t w = daemon_ ? ::waitpid(static_cast<pid_t>(r.pid), &status, WNOHANG) : 0;
    bool gone = daemon_ ? (w == r.pid || (w < 0 && errno == ECHILD))
                        : !process_alive(static_cast<pid_t>(r.pid), r.start);
    if (!gone) continue;
    if (daemon_) ::kill(-static_cast<pid_t>(r.pid), SIGKILL);  // the rest of its process group
    std::string how = !daemon_              ? std::string("exited")
                      : WIFEXITED(status)   ? fmt::format("exit code {}", WEXITSTATUS(status))
                                            : fmt::format("signal {}", signal_name(WTERMSIG(status)));
    r.pid = 0;
    r.start = 0;
    died(r, cfgs_[i], how);
  }
  save();
}

// Restart back-off as the agent's: 0.5 s doubling, at most 30 s; restart_limit crashes within
// restart_window and the service stays down until SIGHUP or a new release.
void Services::died(ServiceRun& r, const AgentConfig& a, const std::string& how) {
  int64_t now = boot_ms();
  r.crashes.push_back(now);
  std::erase_if(r.crashes, [&](int64_t t) { return now - t > a.restart_window_ms; });
  if (static_cast<int>(r.crashes.size()) >= a.restart_limit) {
    r.state = "failed";
    r.restart_at = 0;
    r.reason = fmt::format("service {} died ({}) {} times within {}; not restarting until a new release or SIGHUP",
                           r.name, how, r.crashes.size(), format_duration_ms(a.restart_window_ms));
    say(LogLevel::Error, r.reason);
    return;
  }
  size_t n = r.crashes.size();
  r.restart_at = now + std::min<int64_t>(30000, 500LL << std::min<size_t>(n - 1, 6));
  r.state = "starting";
  r.reason = fmt::format("died ({}); restarting", how);
  say(LogLevel::Warn, fmt::format("service {} {} died ({}); restarting in {}", r.name, r.version, how,
                                  format_duration_ms(r.restart_at - now)));
}

void Services::start(ServiceRun& r, const AgentConfig& a, const std::string& version, const SpecFn& spec) {
  SpawnSpec s = spec(a, version);
  s.detach = !daemon_;
  auto pid = spawn(s);
  if (!pid) {
    r.state = "failed";
    r.reason = fmt::format("cannot start service {}: {}", r.name, pid.error().msg);
    say(LogLevel::Error, r.reason);
    r.restart_at = boot_ms() + 5000;
    return;
  }
  r.pid = *pid;
  r.start = 0;
  for (int i = 0; i < 50 && (r.start = process_start_time(*pid)) == 0; ++i) ::usleep(2000);
  r.version = version;
  r.state = "starting";
  r.started_ms = boot_ms();
  r.started_wall = ::time(nullptr);
  r.restart_at = 0;
  say(LogLevel::Info, fmt::format("service {}: started {} (pid {})", r.name, version, r.pid));
}

void Services::stop(ServiceRun& r, const AgentConfig& a, const std::string& why) {
  if (r.pid > 0 && (daemon_ || process_alive(static_cast<pid_t>(r.pid), r.start))) {
    say(LogLevel::Info, fmt::format("service {}: stopping {} (pid {}; {})", r.name, r.version, r.pid, why));
    stop_process(static_cast<pid_t>(r.pid), a.stop_signal, a.stop_timeout_ms, daemon_);
  }
  r.pid = 0;
  r.start = 0;
  r.state = "stopped";
  r.reason = why;
}

// Past its start grace a service counts as running; a health command, if it has one, must pass
// first (a failure counts as a crash: stopped, and restarted after the back-off).
void Services::check_health(ServiceRun& r, const AgentConfig& a, const std::string& version, const SpecFn& spec) {
  if (r.state != "starting" || r.pid <= 0 || boot_ms() - r.started_ms < a.start_grace_ms) return;
  if (!a.health_command.empty()) {
    SpawnSpec s = spec(a, version);
    s.argv = a.health_command;
    s.argv[0] = path_join(s.cwd, a.health_command[0]);
    s.stdout_path.clear();
    s.detach = false;
    auto res = run_with_timeout(s, a.health_timeout_ms);
    if (!res || res->timed_out || res->exit_code != 0) {
      std::string why = !res ? res.error().msg : res->timed_out ? "timed out" : fmt::format("exit code {}", res->exit_code);
      stop(r, a, "health check failed");
      died(r, a, "health check failed: " + why);
      return;
    }
  }
  r.state = "running";
  r.reason.clear();
}

void Services::supervise(const std::string& version, const SpecFn& spec) {
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& r = runs_[i];
    const auto& a = cfgs_[i];
    const std::string& tree = r.want.empty() ? version : r.want;  // (an unchanged service keeps its tree)
    if (tree.empty()) continue;
    if (r.pid > 0 && r.version != tree) stop(r, a, "replaced by " + tree);
    if (r.pid > 0) {
      check_health(r, a, tree, spec);
      continue;
    }
    if (r.state == "failed" && r.version == tree && r.restart_at == 0) continue;  // gave up on this release
    if (r.restart_at && boot_ms() < r.restart_at) continue;
    if (r.version != tree) r.crashes.clear();  // a new release starts afresh
    start(r, a, tree, spec);
  }
  save();
}

void Services::stop_all(const std::string& why) {
  for (size_t i = 0; i < runs_.size(); ++i)
    if (runs_[i].pid > 0) stop(runs_[i], cfgs_[i], why);
  save();
}

void Services::retarget(const std::string& to, const std::map<std::string, ServiceChange>& change) {
  for (auto& r : runs_) {
    auto it = change.find(r.name);
    r.change = it == change.end() ? ServiceChange::Replaced : it->second;
    if (r.change == ServiceChange::Replaced) r.want = to;
    else if (r.want.empty()) r.want = r.version;
  }
  save();
}

void Services::follow_host() {
  for (auto& r : runs_) r.want.clear();
  save();
}

void Services::stop_replaced(const std::string& why) {
  for (size_t i = 0; i < runs_.size(); ++i)
    if (runs_[i].pid > 0 && !runs_[i].want.empty() && runs_[i].want != runs_[i].version) stop(runs_[i], cfgs_[i], why);
  save();
}

std::vector<std::string> Services::trees() const {
  std::vector<std::string> out;
  for (const auto& r : runs_) {
    if (!r.version.empty()) out.push_back(r.version);
    if (!r.want.empty()) out.push_back(r.want);
  }
  return out;
}

void Services::forgive() {
  for (auto& r : runs_) {
    r.crashes.clear();
    if (r.state == "failed") r.restart_at = 1;
  }
}

int64_t Services::next_due_ms() const {
  int64_t due = 0;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const auto& r = runs_[i];
    int64_t t = r.pid <= 0 ? r.restart_at : r.state == "starting" ? r.started_ms + cfgs_[i].start_grace_ms : 0;
    if (t > 0 && (due == 0 || t < due)) due = t;
  }
  return due;
}

}  // namespace wd
}  // namespace nfsup
