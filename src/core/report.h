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

/// One HTML page (inline CSS and SVG, no external resources): a timeline per host of the last
/// switch (draining, stopped, starting, running...), its downtime per host, the audit trail.
std::string render_html_report(const std::string& share, const std::optional<Timeline>& tl,
                               const StatusReport& status, const std::vector<AuditEvent>& audit);

/// Downtime of `host` in the timeline: from its first non-running state to running again.
int64_t host_downtime_ms(const Timeline& tl, const std::string& host);

}  // namespace nfsup
