// nfsup master: the engine: one loop that runs the steps of any rollout plan (plan.h).
//
// A strategy builds the plan (what to do, as data); the engine walks it (doing it), as ninja's
// Builder runs a Plan. Each step is done by the strategy's StepRunner; after each the engine
// records it in SHARE/progress and passes its "<step>-done" crash point, so `resume` can go
// on from any step and `--dry-run` (describe_plan) prints the very steps this loop runs.
#include <fmt/format.h>

#include "internal.h"

namespace nfsup {

Result<SwitchReport> run_plan(Share& share, Progressing& pr, size_t from, StepRunner& r, const MasterOptions& opt) {
  // The lines --dry-run prints, noted as each step starts (only built when someone listens).
  const std::vector<std::string> said = opt.note ? describe_plan(pr.plan) : std::vector<std::string>{};
  for (size_t i = from; i < pr.plan.steps.size(); ++i) {
    const Step& s = pr.plan.steps[i];
    if (i < said.size()) note(opt, said[i]);
    auto end = r.run_step(s);
    if (end && !end->done) return std::move(end->result);
    if (pr.on) record_step(share, pr.rec, s, static_cast<int>(i + 1), opt);
    if (end) return std::move(end->result);
  }
  return err(Exit::Internal, "the rollout plan ended without a release step");
}

size_t index_after(const Plan& plan, StepKind k, int batch) {
  for (size_t i = 0; i < plan.steps.size(); ++i)
    if (plan.steps[i].kind == k && plan.steps[i].batch == batch) return i + 1;
  return plan.steps.size();
}

}  // namespace nfsup
