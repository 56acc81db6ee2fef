// nfsup core: audit trail and HTML report.
#include "report.h"

#include <fmt/format.h>

#include <time.h>

#include <algorithm>
#include <set>

namespace nfsup {

Result<std::vector<AuditEvent>> read_audit(Share& share, std::vector<std::string>* warnings) {
  std::vector<AuditEvent> out;
  auto l = share.fs().list_dir(share.audit_dir());
  if (!l) return l.error();
  std::vector<std::string> names;
  for (const auto& e : *l)
    if (e.type == FileInfo::File && !e.name.empty() && e.name[0] != '.') names.push_back(e.name);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = path_join(share.audit_dir(), n);
    auto t = share.fs().read_file(path, kSmallFileMax);
    if (!t || !*t) continue;
    auto rec = unpack_record(**t, "audit", kFormatVersion, path);
    if (!rec) {
      if (warnings) warnings->push_back(rec.error().msg);
      continue;
    }
    RecordReader rd(*rec, path);
    out.push_back({n, rd.str_or("time", "?"), rd.str_or("host", "?"), rd.str_or("pid", "?"), rd.str_or("user", "?"),
                   rd.str_or("action", "?"), rd.str_or("detail", ""), rd.str_or("result", "")});
  }
  return out;
}

// HTML text of a string from the share: control characters escaped (printable()), then markup.
static std::string esc(const std::string& raw) {
  std::string o;
  for (char c : printable(raw)) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

int64_t host_downtime_ms(const Timeline& tl, const std::string& host) {
  int64_t down_since = -1, total = 0;
  for (const auto& e : tl.events) {
    if (e.host != host) continue;
    bool up = e.state == "running";
    if (!up && down_since < 0 && e.state != "failed") down_since = e.unix_ms;
    if (up && down_since >= 0) {
      total += e.unix_ms - down_since;
      down_since = -1;
    }
  }
  if (down_since >= 0) total += std::max<int64_t>(0, tl.end_ms - down_since);
  return total;
}

static const char* color_of(const std::string& state) {
  if (state == "running") return "#2e9d4f";
  if (state == "starting") return "#7cc3f0";
  if (state == "draining") return "#f0b429";
  if (state == "stopping") return "#f08a29";
  if (state == "stopped") return "#c0392b";
  if (state == "failed") return "#222222";  // near black: never read as a darker "stopped" red
  return "#999999";
}

std::string iso_of_ms(int64_t unix_ms) {
  time_t t = static_cast<time_t>(unix_ms / 1000);
  tm tmv{};
  gmtime_r(&t, &tmv);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tmv);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(unix_ms % 1000));
}

static std::string drawn_heading(const Timeline& t, const ReportContext& ctx) {
  if (t.generation == ctx.newest_rollout) return fmt::format("Rollout of generation {} (the newest)", t.generation);
  return fmt::format("Rollout of generation {} (not the newest: {})", t.generation, ctx.newest_rollout);
}

std::string render_html_report(const std::string& share, const std::optional<Timeline>& tl,
                               const StatusReport& status, const std::vector<AuditEvent>& audit,
                               const ReportContext& ctx) {
  std::string h;
  h += "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nfsup report</title><style>"
       "body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
       "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
       "th{background:#f3f3f3}.legend span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}"
       "svg text{font:12px system-ui,sans-serif}</style></head><body>";
  h += fmt::format("<h1>nfsup rollout report</h1><p>Share <code>{}</code>", esc(share));
  if (status.pointer)
    h += fmt::format("; current release <b id=\"current\">{}</b> (generation {}), acting version <b>{}</b>",
                     esc(status.pointer->release), status.pointer->generation,
                     esc(status.pointer->acting.empty() ? status.pointer->release : status.pointer->acting));
  h += fmt::format(".</p><p>Report generated <time id=\"generated\">{}</time>.</p>", esc(ctx.generated));
  if (!tl) {
    h += "<h2 id=\"drawn\">Last rollout</h2><p>No rollout recorded yet.</p>";
  } else {
    const Timeline& t = *tl;
    h += fmt::format("<h2 id=\"drawn\">{}</h2>", drawn_heading(t, ctx));
    h += fmt::format("<p>Started <time id=\"rollout-start\">{}</time>, ended <time id=\"rollout-end\">{}</time>.</p>",
                     iso_of_ms(t.start_ms), iso_of_ms(t.end_ms));
    h += fmt::format("<p id=\"rollout\">{} {} &rarr; {} ({}, generation {}), {:.1f} s</p>", esc(t.action),
                     esc(t.from.empty() ? "-" : t.from), esc(t.to), esc(t.strategy), t.generation,
                     (t.end_ms - t.start_ms) / 1000.0);
    std::vector<std::string> hosts;
    for (const auto& e : t.events)
      if (std::find(hosts.begin(), hosts.end(), e.host) == hosts.end()) hosts.push_back(e.host);
    std::sort(hosts.begin(), hosts.end());
    const int left = 140, width = 720, row = 26;
    double span = std::max<int64_t>(1, t.end_ms - t.start_ms);
    h += fmt::format("<svg id=\"timeline\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"timeline\">",
                     left + width + 20, row * (hosts.size() + 1) + 10);
    for (size_t i = 0; i < hosts.size(); ++i) {
      int y = 10 + static_cast<int>(i) * row;
      h += fmt::format("<text x=\"4\" y=\"{}\" class=\"host\">{}</text>", y + 16, esc(hosts[i]));
      std::vector<const TimelineEvent*> ev;
      for (const auto& e : t.events)
        if (e.host == hosts[i]) ev.push_back(&e);
      for (size_t k = 0; k < ev.size(); ++k) {
        int64_t a = std::max(ev[k]->unix_ms, t.start_ms);
        int64_t b = k + 1 < ev.size() ? ev[k + 1]->unix_ms : t.end_ms;
        double x0 = left + (a - t.start_ms) / span * width, x1 = left + (b - t.start_ms) / span * width;
        h += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"18\" fill=\"{}\"><title>{} {} {}</title></rect>",
                         x0, y + 2, std::max(1.0, x1 - x0), color_of(ev[k]->state), esc(hosts[i]), esc(ev[k]->state),
                         esc(ev[k]->running));
      }
    }
    int ya = 10 + static_cast<int>(hosts.size()) * row + 12;
    h += fmt::format("<text x=\"{}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\">{:.1f} s</text></svg>", left, ya,
                     left + width - 30, ya, span / 1000.0);
    h += "<p class=\"legend\">";
    for (const char* s : {"draining", "stopping", "stopped", "starting", "running", "failed"})
      h += fmt::format("<span style=\"background:{}\">{}</span>", color_of(s), s);
    h += "</p><table id=\"downtime\"><tr><th>host</th><th>downtime</th><th>states seen</th></tr>";
    for (const auto& host : hosts) {
      std::string seq;
      for (const auto& e : t.events)
        if (e.host == host) seq += (seq.empty() ? "" : " &rarr; ") + esc(e.state) + (e.running.empty() ? "" : " " + esc(e.running));
      h += fmt::format("<tr><td>{}</td><td>{:.2f} s</td><td>{}</td></tr>", esc(host),
                       host_downtime_ms(t, host) / 1000.0, seq);
    }
    h += "</table>";
  }
  h += "<h2>Hosts now</h2><table id=\"hosts\"><tr><th>host</th><th>group</th><th>state</th><th>running</th>"
       "<th>reason</th></tr>";
  for (const auto& v : status.hosts) {
    if (!v.status) {
      h += fmt::format("<tr><td>{}</td><td></td><td>?</td><td></td><td>{}</td></tr>", esc(v.host), esc(v.error));
      continue;
    }
    h += fmt::format("<tr class=\"host\" data-host=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     esc(v.host), esc(v.host), esc(v.status->group), esc(v.stale ? "stale" : v.status->state),
                     esc(v.status->running), esc(v.status->reason));
  }
  h += "</table><h2>Audit trail</h2><table id=\"audit\"><tr><th>time</th><th>host</th><th>user</th><th>action</th>"
       "<th>detail</th><th>result</th></tr>";
  for (auto it = audit.rbegin(); it != audit.rend(); ++it)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(it->time),
                     esc(it->host), esc(it->user), esc(it->action), esc(it->detail), esc(it->result));
  h += "</table></body></html>\n";
  return h;
}

}  // namespace nfsup
