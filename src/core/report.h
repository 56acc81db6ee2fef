// nfsup core: the audit trail reader and the self-contained HTML rollout report.
#pragma once

#include <string>
#include <vector>

#include "master.h"

namespace nfsup {

struct AuditEvent {
  std::string file, time, host, pid, user, action, detail, result;
};

/// Every audit event on the share, oldest first (malformed files are reported, not fatal).
Result<std::vector<AuditEvent>> read_audit(Share& share, std::vector<std::string>* warnings);

/// What the page says about itself: when it was written and which rollout it draws.
struct ReportContext {
  std::string generated;       ///< UTC ISO 8601 time the report was written
  int64_t newest_rollout = 0;  ///< the newest generation with a timeline (0: none)
};

/// One HTML page (inline CSS and SVG, no external resources): a timeline per host of one
/// switch (draining, stopped, starting, running...), marked with its generation and whether it
/// is the newest, its start and end, its downtime per host, the audit trail.
std::string render_html_report(const std::string& share, const std::optional<Timeline>& tl,
                               const StatusReport& status, const std::vector<AuditEvent>& audit,
                               const ReportContext& ctx);

/// UTC ISO 8601 with milliseconds of a Unix time in ms.
std::string iso_of_ms(int64_t unix_ms);

/// Downtime of `host` in the timeline: from its first non-running state to running again.
int64_t host_downtime_ms(const Timeline& tl, const std::string& host);

}  // namespace nfsup
