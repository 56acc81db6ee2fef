// nfsup master: rollout plans (see plan.h).
#include "plan.h"

#include <fmt/format.h>

#include <algorithm>

namespace nfsup {

const char* step_name(StepKind k) {
  switch (k) {
    case StepKind::Acquire: return "acquire";
    case StepKind::Vote: return "vote";
    case StepKind::Stop: return "stop";
    case StepKind::Migrate: return "migrate";
    case StepKind::Switch: return "switch";
    case StepKind::Start: return "start";
    case StepKind::Fence: return "fence";
    case StepKind::Release: return "release";
  }
  return "?";
}

int batch_size(const std::string& spec, size_t n) {
  if (!spec.empty() && spec.back() == '%') {
    auto p = parse_i64(spec.substr(0, spec.size() - 1));
    if (!p || *p <= 0) return -1;
    return std::max<int>(1, static_cast<int>((static_cast<int64_t>(n) * *p + 99) / 100));
  }
  auto v = parse_i64(spec);
  return v && *v > 0 ? static_cast<int>(*v) : -1;
}

std::vector<std::string> next_batch(std::vector<std::string>& remaining,
                                    const std::map<std::string, std::string>& groups, int b, int max_unavailable) {
  std::vector<std::string> batch, rest;
  std::map<std::string, int> per_group;
  for (const auto& h : remaining) {
    auto it = groups.find(h);
    const std::string g = it == groups.end() ? "" : it->second;
    if (static_cast<int>(batch.size()) < b && (g.empty() || per_group[g] < max_unavailable)) {
      batch.push_back(h);
      if (!g.empty()) ++per_group[g];
    } else {
      rest.push_back(h);
    }
  }
  remaining = rest;
  return batch;
}

std::vector<std::vector<std::string>> Plan::batches() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& s : steps)
    if (s.kind == StepKind::Stop && s.batch > 0) out.push_back(s.hosts);
  return out;
}

namespace {

std::string acting_now(const PlanInput& in) { return in.acting.empty() ? in.from : in.acting; }

Plan begin(const PlanInput& in, const std::string& strategy) {
  Plan p;
  p.action = in.action;
  p.strategy = strategy;
  p.from = in.from;
  p.to = in.to;
  p.steps.push_back({StepKind::Acquire, {}, in.to, 0});
  return p;
}

// All at once (push, rollback, or --hosts/--class): every targeted host stops, then one
// pointer write switches them; the hook runs only for a whole-fleet push that raises the
// acting version (a subset keeps the acting version and the data).
Plan plan_all_at_once(const PlanInput& in) {
  Plan p = begin(in, "all-at-once");
  if (in.vote) p.steps.push_back({StepKind::Vote, in.hosts, in.to, 0});
  p.steps.push_back({StepKind::Stop, in.hosts, in.to, 0});
  const bool migrate = in.action == "push" && !in.from.empty() && !in.subset &&
                       compare_versions(in.to, acting_now(in)) > 0;
  if (migrate) p.steps.push_back({StepKind::Migrate, {}, in.to, 0});
  p.steps.push_back({StepKind::Switch, in.subset ? in.hosts : std::vector<std::string>{}, in.to, 0});
  p.steps.push_back({StepKind::Start, in.hosts, in.to, 0});
  p.steps.push_back({StepKind::Fence, {}, in.subset ? acting_now(in) : in.to, 0});
  p.steps.push_back({StepKind::Release, {}, "", 0});
  p.policy = {OnFailure::BackOut, OnFailure::UndoOrKeep, in.max_failures};
  return p;
}

// Rolling: batch by batch (at most --batch hosts, at most --max-unavailable per group), each
// stopped, switched by an override and started; then the pointer names the target for all,
// and the acting version moves (with the hook) unless --hold-acting.
Result<Plan> plan_rolling(const PlanInput& in) {
  if (in.from.empty()) return err(Exit::Usage, "the first release must be pushed all-at-once (no release runs yet)");
  int b = batch_size(in.batch, in.fleet);
  if (b < 0) return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", in.batch));
  Plan p = begin(in, "rolling");
  p.batch_size = b;
  if (in.vote) p.steps.push_back({StepKind::Vote, in.hosts, in.to, 0});
  std::vector<std::string> remaining = in.hosts;
  for (int i = 1; !remaining.empty(); ++i) {
    auto batch = next_batch(remaining, in.groups, b, in.max_unavailable);
    p.steps.push_back({StepKind::Stop, batch, in.to, i});
    p.steps.push_back({StepKind::Switch, batch, in.to, i});
    p.steps.push_back({StepKind::Start, batch, in.to, i});
  }
  const bool move_acting = !in.hold_acting && compare_versions(in.to, acting_now(in)) > 0;
  if (move_acting) p.steps.push_back({StepKind::Migrate, {}, in.to, 0});
  p.steps.push_back({StepKind::Switch, {}, in.to, 0});
  p.steps.push_back({StepKind::Fence, {}, move_acting ? in.to : acting_now(in), 0});
  p.steps.push_back({StepKind::Release, {}, "", 0});
  p.policy = {OnFailure::BackOut, OnFailure::RollBackUpgraded, std::max(0, in.max_failures)};
  return p;
}

// Finalize: the release stays; the held-back acting version moves to it (hook first).
Plan plan_finalize(const PlanInput& in) {
  Plan p = begin(in, "finalize");
  p.steps.push_back({StepKind::Migrate, {}, in.to, 0});
  p.steps.push_back({StepKind::Switch, {}, in.to, 0});
  p.steps.push_back({StepKind::Fence, {}, in.to, 0});
  p.steps.push_back({StepKind::Release, {}, "", 0});
  p.policy = {OnFailure::BackOut, OnFailure::BackOut, 0};
  return p;
}

std::string hosts_or(const std::vector<std::string>& h, const char* none) {
  return h.empty() ? none : fmt::format("{} ({})", join(h, " "), h.size());
}

}  // namespace

Result<Plan> build_plan(const PlanInput& in) {
  if (in.action == "finalize") return plan_finalize(in);
  if (in.strategy == "rolling") {
    if (in.action != "push") return err(Exit::Usage, "--strategy rolling is for push only");
    return plan_rolling(in);
  }
  if (in.strategy != "all-at-once")
    return err(Exit::Usage, fmt::format("--strategy '{}': use all-at-once or rolling", in.strategy));
  return plan_all_at_once(in);
}

std::vector<std::string> describe_plan(const Plan& p) {
  std::vector<std::string> out;
  int n = 0;
  for (const auto& s : p.steps) {
    std::string what;
    const std::string batch = s.batch > 0 ? fmt::format(" [batch {}]", s.batch) : "";
    switch (s.kind) {
      case StepKind::Acquire: what = fmt::format("take the marker for {} -> {}", p.from.empty() ? "-" : p.from, p.to); break;
      case StepKind::Vote: what = hosts_or(s.hosts, "nobody"); break;
      case StepKind::Stop: what = hosts_or(s.hosts, "no host"); break;
      case StepKind::Migrate: what = "run the migration hook of " + s.release; break;
      case StepKind::Switch:
        what = s.hosts.empty() ? "pointer names " + s.release : fmt::format("pointer gives {} to {}", s.release, join(s.hosts, " "));
        break;
      case StepKind::Start: what = fmt::format("start {}: {}", s.release, hosts_or(s.hosts, "no host")); break;
      case StepKind::Fence: what = "wait until every live host acts as " + s.release; break;
      case StepKind::Release: what = "remove the marker"; break;
    }
    out.push_back(fmt::format("plan step {} {}{}: {}", ++n, step_name(s.kind), batch, what));
  }
  const char* policy = p.policy.after_switch == OnFailure::RollBackUpgraded ? "every upgraded host goes back"
                       : p.policy.after_switch == OnFailure::UndoOrKeep
                           ? "undone if no host started it, else kept with a host line per failed host"
                           : "backed out";
  out.push_back(fmt::format("plan on failure: before the switch, backed out; after it ({}), {}",
                            p.policy.max_failures < 0 ? std::string("no --max-failures")
                                                      : fmt::format("more than {} failed host(s)", p.policy.max_failures),
                            policy));
  return out;
}

}  // namespace nfsup
