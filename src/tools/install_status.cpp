// nfsup-install status: the fleet as text, JSON (nfsup-status/1), Prometheus, or refreshed (--watch).
#include "install_status.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common.h"
#include "metrics.h"

namespace nfsup::tools {

// For monitoring (documented in nfsup-install(1)): 0 when every host runs the release meant
// for it and no switch is under way, 1 when any host failed, is stale or unreadable, or has
// not converged yet. (3, share unreachable, comes from share_status' own error.)
int status_exit_code(const StatusReport& r) {
  if (r.marker) return static_cast<int>(Exit::Failed);
  for (const auto& h : r.hosts) {
    if (!h.status || h.stale) return static_cast<int>(Exit::Failed);
    const auto& s = *h.status;
    if (!r.pointer) {
      if (s.state == "failed") return static_cast<int>(Exit::Failed);
      continue;
    }
    auto ov = r.pointer->overrides.find(h.host);
    const std::string& want = ov != r.pointer->overrides.end() ? ov->second : r.pointer->release;
    if ((s.state != "running" && s.state != "unchanged") || s.running != want) return static_cast<int>(Exit::Failed);
  }
  return 0;
}

namespace {

std::string age_str(int64_t ms) {
  if (ms < 0) return "?";
  if (ms < 60000) return fmt::format("{}s ago", ms / 1000);
  if (ms < 3600000) return fmt::format("{}m ago", ms / 60000);
  return fmt::format("{}h ago", ms / 3600000);
}

// Colour only on a terminal, and never with NO_COLOR set or TERM=dumb (no-color.org).
bool color_out() {
  const char* term = getenv("TERM");
  return is_terminal(1) && !getenv("NO_COLOR") && !(term && std::string(term) == "dumb");
}

std::string json_list(const std::vector<std::string>& v) {
  std::string o;
  for (size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + json_str(v[i]);
  return o;
}

std::string json_current(const StatusReport& r) {
  if (!r.pointer) return ",\"current\":null";
  std::string ov;
  for (const auto& [h, v] : r.pointer->overrides) ov += (ov.empty() ? "" : ",") + json_str(h) + ":" + json_str(v);
  return fmt::format(",\"current\":{{\"release\":{},\"generation\":{},\"previous\":{},\"action\":{},"
                     "\"acting\":{},\"min_supported\":{},\"overrides\":{{{}}}}}",
                     json_str(r.pointer->release), r.pointer->generation, json_str(r.pointer->previous),
                     json_str(r.pointer->action),
                     json_str(r.pointer->acting.empty() ? r.pointer->release : r.pointer->acting),
                     json_str(r.pointer->min_supported), ov);
}

// The live hosts (a status that is not stale) that do not run what the pointer assigns them
// (its release, or their host line) in a settled state, each with that state.
std::vector<std::pair<std::string, std::string>> hosts_off_the_pointer(const StatusReport& r) {
  std::vector<std::pair<std::string, std::string>> off;
  if (!r.pointer) return off;
  for (const auto& h : r.hosts) {
    if (!h.status || h.stale) continue;
    auto o = r.pointer->overrides.find(h.host);
    const std::string& want = o != r.pointer->overrides.end() ? o->second : r.pointer->release;
    const auto& s = *h.status;
    bool settled = s.state == "running" || s.state == "unchanged";
    if (!settled || s.running != want)
      off.emplace_back(h.host, s.running != want ? fmt::format("{}, runs {}", s.state, s.running.empty() ? "-" : s.running)
                                                 : s.state);
  }
  return off;
}

// For a rollout recorded as done: ", but N of M live hosts do not run it: ..." while some live
// host does not run what the pointer gives it ("" otherwise, and for any other phase).
std::string not_done_yet(const StatusReport& r) {
  if (!r.rollout || r.rollout->phase != "done" || r.marker) return "";
  auto off = hosts_off_the_pointer(r);
  if (off.empty()) return "";
  size_t live = 0;
  for (const auto& h : r.hosts) live += h.status && !h.stale;
  std::vector<std::string> named;
  for (const auto& [h, why] : off) named.push_back(fmt::format("{} ({})", h, why));
  if (named.size() > 10) named.resize(10), named.push_back(fmt::format("and {} more", off.size() - 10));
  return fmt::format(", but {} of {} live hosts do not run it: {}", off.size(), live, join(named, ", "));
}

std::string json_rollout_marker(const StatusReport& r) {
  std::string o;
  if (r.rollout)
    o += fmt::format(",\"rollout\":{{\"phase\":{},\"target\":{},\"acting\":{},\"note\":{},\"hosts_not_on_it\":[{}]}}",
                     json_str(r.rollout->phase), json_str(r.rollout->target), json_str(r.rollout->acting),
                     json_str(r.rollout->note), [&r] {
                       std::vector<std::string> v;
                       if (r.rollout->phase == "done" && !r.marker)
                         for (const auto& [h, why] : hosts_off_the_pointer(r)) v.push_back(h);
                       return json_list(v);
                     }());
  else
    o += ",\"rollout\":null";
  if (r.marker)
    o += fmt::format(",\"marker\":{{\"action\":{},\"release\":{},\"previous\":{},\"generation\":{},\"master_host\":{},"
                     "\"master_pid\":{},\"started\":{}}}",
                     json_str(r.marker->action), json_str(r.marker->release), json_str(r.marker->previous),
                     r.marker->generation, json_str(r.marker->master_host), r.marker->master_pid,
                     json_str(r.marker->started));
  else
    o += ",\"marker\":null";
  return o;
}

std::string json_host(const HostView& h) {
  if (!h.status) return fmt::format("{{\"host\":{},\"error\":{},\"stale\":true}}", json_str(h.host), json_str(h.error));
  const auto& s = *h.status;
  std::string mj;
  for (const auto& [mn, mv] : s.modules) mj += (mj.empty() ? "" : ",") + json_str(mn) + ":" + json_str(mv);
  return fmt::format("{{\"host\":{},\"state\":{},\"running\":{},\"generation\":{},\"heartbeat\":{},\"mode\":{},"
                     "\"reason\":{},\"age_ms\":{},\"stale\":{},\"updated\":{},\"trust\":{},\"group\":{},\"acting\":{},\"class\":{},\"runs_from\":{},\"run_from\":{},\"watchdog_version\":{},\"modules\":{{{}}}}}",
                     json_str(h.host), json_str(s.state), s.running.empty() ? "null" : json_str(s.running),
                     s.generation, s.heartbeat, json_str(s.mode), json_str(s.reason), h.age_ms,
                     h.stale ? "true" : "false", json_str(s.updated), json_str(s.trust.empty() ? "unsigned" : s.trust),
                     json_str(s.group), json_str(s.acting), json_str(s.cls), json_str(s.runs_from), s.run_from.empty() ? "null" : json_str(s.run_from),
                     s.watchdog_version.empty() ? "null" : json_str(s.watchdog_version), mj);
}

int print_status_json(const StatusReport& r, const std::string& share) {
  std::string o = "{\"schema\":\"nfsup-status/1\",\"share\":" + json_str(share);
  o += json_current(r);
  o += json_rollout_marker(r);
  o += ",\"releases\":[" + json_list(r.releases);
  o += "],\"hosts\":[";
  for (size_t i = 0; i < r.hosts.size(); ++i) o += (i ? "," : "") + json_host(r.hosts[i]);
  o += "],\"dependency_problems\":[" + json_list(r.dependency_problems);
  o += "],\"warnings\":[" + json_list(r.warnings);
  o += "]}";
  fmt::print("{}\n", o);
  return status_exit_code(r);
}

// The pointer, the marker, the acting version, the rollout and the kept releases.
void print_summary(const StatusReport& r, const std::string& share) {
  print_line(fmt::format("share:    {}", share));
  if (r.pointer)
    print_line(fmt::format("current:  {} (generation {}, previous {}, by {})", r.pointer->release,
                           r.pointer->generation, r.pointer->previous.empty() ? "-" : r.pointer->previous,
                           r.pointer->action));
  else
    fmt::print("current:  none (nothing pushed yet)\n");
  if (r.marker)
    print_line(fmt::format("marker:   {} {} -> {} (generation {}) by {} pid {} since {}", r.marker->action,
                           r.marker->previous.empty() ? "-" : r.marker->previous, r.marker->release,
                           r.marker->generation, r.marker->master_host, r.marker->master_pid, r.marker->started));
  if (r.pointer) {
    std::string acting = r.pointer->acting.empty() ? r.pointer->release : r.pointer->acting;
    print_line(fmt::format("acting:   {}{}", acting,
                           acting != r.pointer->release
                               ? fmt::format(" (held below {}; 'finalize' releases it)", r.pointer->release)
                               : ""));
    if (!r.pointer->overrides.empty()) {
      std::vector<std::string> o;
      for (const auto& [h, v] : r.pointer->overrides) o.push_back(h + "=" + v);
      print_line(fmt::format("rolling:  {}", join(o, " ")));
    }
  }
  if (r.rollout && !r.rollout->phase.empty())
    print_line(fmt::format("rollout:  {} to {}{}{}", r.rollout->phase, r.rollout->target, not_done_yet(r),
                           r.rollout->note.empty() ? "" : " (" + r.rollout->note + ")"));
  print_line(fmt::format("releases: {}", r.releases.empty() ? "none" : join(r.releases, " ")));
}

void print_unsigned_warning(const StatusReport& r) {
  std::vector<std::string> unsigned_hosts;
  for (const auto& h : r.hosts)
    if (h.status && h.status->trust != "signed") unsigned_hosts.push_back(h.host);
  if (!unsigned_hosts.empty())
    fmt::print("{}WARNING: UNSIGNED MODE on {} host(s) ({}): anyone who can write to the share can run code on "
               "them; set trusted_keys{}\n",
               color_out() ? "\033[1;31m" : "", unsigned_hosts.size(), unsigned_hosts.size() <= 10
                   ? join(unsigned_hosts, " ")
                   : join(std::vector<std::string>(unsigned_hosts.begin(), unsigned_hosts.begin() + 10), " ") +
                         fmt::format(" and {} more", unsigned_hosts.size() - 10),
               color_out() ? "\033[0m" : "");
}

void print_host_row(const StatusReport& r, const HostView& h, bool color) {
  if (!h.status) {
    print_line(fmt::format("{:<20} {:<10} {:<9} {:<12} {:>4} {:<10} {:<9} {}", h.host, "-", "?", "-", "-", "-", "-",
                           h.error));
    return;
  }
  const auto& s = *h.status;
  std::string state = printable(h.stale ? "stale" : s.state);
  std::string shown = fmt::format("{:<9}", state);
  if (color) {
    const char* c = state == "running" ? "\033[32m" : (state == "failed" || state == "stale") ? "\033[31m" : "\033[33m";
    shown = std::string(c) + shown + "\033[0m";
  }
  std::string reason = s.reason;
  if (r.pointer && !r.pointer->min_supported.empty() && !s.running.empty() &&
      compare_versions(s.running, r.pointer->min_supported) < 0)
    reason = fmt::format("BELOW LOWEST SUPPORTED {}{}{}", r.pointer->min_supported, reason.empty() ? "" : "; ", reason);
  fmt::print("{:<20} {:<10} {} {:<12} {:>4} {:<10} {:<9} {}\n", printable(h.host),
             printable(s.group.empty() ? "-" : s.group), shown, printable(s.running.empty() ? "-" : s.running),
             s.generation, age_str(h.age_ms), printable(s.watchdog_version.empty() ? "-" : s.watchdog_version),
             printable(reason));
}

int print_status(const StatusReport& r, bool json, const std::string& share) {
  if (json) return print_status_json(r, share);
  // Everything below but the colours comes from the share: each line goes through printable().
  print_summary(r, share);
  print_unsigned_warning(r);
  for (const auto& w : r.warnings) print_line("warning:  " + w);
  for (const auto& d : r.dependency_problems) print_line("DEPENDENCY: " + d);
  fmt::print("\n{:<20} {:<10} {:<9} {:<12} {:>4} {:<10} {:<9} {}\n", "HOST", "GROUP", "STATE", "RUNNING", "GEN", "SEEN",
             "WATCHDOG", "REASON");
  bool color = color_out();
  for (const auto& h : r.hosts) print_host_row(r, h, color);
  return status_exit_code(r);
}

}  // namespace

// status [--watch]: one report, or one every interval until interrupted. With --json and
// --watch, one document per line (NDJSON) on stdout; the time line goes to stderr.
int cmd_status(Share& share, const StatusFlags& o, int64_t stale_after_ms) {
  if (!o.watch) {
    auto r = share_status(share, stale_after_ms);
    if (!r) return fail(r.error());
    if (o.prometheus) fmt::print("{}", render_fleet_metrics(*r, status_exit_code(*r) == 0));
    if (o.prometheus) return status_exit_code(*r);
    return print_status(*r, o.json, o.share);
  }
  auto iv = duration_flag("--interval", o.interval);
  if (!iv) return fail(iv.error());
  if (*iv < 100) return fail(err(Exit::Usage, fmt::format("--interval '{}': at least 100ms (each pass reads the share)", o.interval)));
  bool tty = is_terminal(1) && !o.json;
  while (true) {
    auto r = share_status(share, stale_after_ms);
    if (tty) fmt::print("\033[H\033[2J");
    fmt::print(o.json ? stderr : stdout, "{}  (every {}; Ctrl-C to stop)\n", utc_now_iso(), format_duration_ms(*iv));
    if (!r) fmt::print(stderr, "{}: error: {}\n", program(), r.error().msg);
    else print_status(*r, o.json, o.share);
    if (!tty && !o.json) fmt::print("\n");
    std::fflush(stdout);
    std::fflush(stderr);
    sleep_ms(*iv);
  }
}

}  // namespace nfsup::tools
