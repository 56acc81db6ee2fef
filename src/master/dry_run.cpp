// nfsup master: --dry-run: what a push or rollback would do. It reads the share, writes
// nothing, and prints the steps from the same plan builder (plan.h) the real run uses.
#include <fmt/format.h>

#include <algorithm>

#include "internal.h"
#include "plan.h"

namespace nfsup {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

struct DryRun {
  Share& share;
  const std::string& action;
  const std::string& target;
  const MasterOptions& opt;
  DryRunPlan out;
  std::optional<Pointer> ptr;
  std::map<std::string, HostStatus> st;
  std::vector<std::string> live, todo, there, voters;

  void say(std::string l) { out.lines.push_back(std::move(l)); }
  // A step the real run would refuse: said, and its exit code kept (the first one wins).
  void refuse(Exit code, std::string l) {
    if (out.exit_code == 0) out.exit_code = static_cast<int>(code);
    say("refused now: " + std::move(l));
  }
  std::string cur() const { return ptr ? ptr->release : ""; }

  Status read_head() {
    if (auto s = share.check(); !s) return s;
    auto p = share.read_pointer();
    if (!p) return p.error();
    ptr = *p;
    auto mk = share.read_marker();
    if (!mk) return mk.error();
    if (*mk)
      refuse(Exit::Busy, fmt::format("a {} of {} by {} (pid {}) holds the marker ('nfsup-install abort' if it died)",
                                     (*mk)->action, (*mk)->release, (*mk)->master_host, (*mk)->master_pid));
    return ok_status();
  }

  Status staging(const Manifest& staged, bool on_share) {
    uint64_t files = 0, bytes = 0, new_files = 0, new_bytes = 0;
    for (const auto& e : staged.entries) {
      if (e.kind != ManifestEntry::File) continue;
      ++files;
      bytes += e.size;
      auto s = share.fs().stat(share.object_path(e.sha256, e.mode));
      if (!s) return s.error();
      if (!*s) {
        ++new_files;
        new_bytes += e.size;
      }
    }
    if (!on_share) {
      say(fmt::format("would stage {}: {} file(s), {} bytes; would copy the {} ({} bytes) not on the share yet",
                      target, files, bytes, new_files, new_bytes));
      return ok_status();
    }
    auto have = share.read_manifest(target);
    if (!have) return have.error();
    if (*have && same_content(**have, staged))
      say(fmt::format("release {} is already on the share with the same files: nothing to copy", target));
    else
      refuse(Exit::Usage, fmt::format("release {} is already on the share with other files (releases are "
                                      "immutable: pick a new --version)",
                                      target));
    return ok_status();
  }

  Status release(const Manifest* staged) {
    auto kept = share.list_releases();
    if (!kept) return kept.error();
    const bool on_share = contains(*kept, target);
    if (staged) return staging(*staged, on_share);
    if (!on_share)
      return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", target, join(*kept, ", ")));
    return ok_status();
  }

  // The fleet, judged by this machine's clock (a dry run writes nothing, not even the clock probe).
  Status fleet() {
    auto f = survey(share, unix_ms(), opt.stale_after_ms);
    if (!f) return f.error();
    for (const auto& h : f->live)
      if (auto s = share.read_status(h); s && *s) st[h] = **s;
    for (const auto& h : f->live) {
      if (!opt.hosts.empty() && !contains(opt.hosts, h)) continue;
      if (!opt.cls.empty() && st[h].cls != opt.cls) continue;
      live.push_back(h);
    }
    for (const auto& h : opt.hosts)
      if (!contains(live, h)) say(fmt::format("--hosts {}: not a live host; it would be left out", h));
    for (const auto& s : f->skipped)
      if (opt.hosts.empty() || contains(opt.hosts, s.host))
        say(fmt::format("would skip {}: {} ({})", s.host, s.outcome, s.detail));
    for (const auto& h : live) {
      const HostStatus& s = st[h];
      (s.state == "running" && s.running == target ? there : todo).push_back(h);
      if (s.checks != "no") voters.push_back(h);
    }
    return ok_status();
  }

  // What planning needs, from what the dry run read (the real run reads the same under the marker).
  PlanInput plan_input(const std::vector<std::string>& hosts) const {
    PlanInput in;
    in.action = action;
    in.strategy = action == "push" ? opt.strategy : "all-at-once";
    in.from = ptr ? ptr->release : "";
    in.acting = ptr ? ptr->acting : "";
    in.to = target;
    in.hosts = hosts;
    in.fleet = st.size();
    for (const auto& [h, s] : st) in.groups[h] = s.group;
    in.vote = !voters.empty();
    in.subset = !opt.hosts.empty() || !opt.cls.empty();
    in.batch = opt.batch;
    in.max_unavailable = opt.max_unavailable;
    in.max_failures = opt.max_failures;
    in.hold_acting = opt.hold_acting;
    return in;
  }

  void votes() {
    if (voters.empty()) {
      say("no vote round: no targeted live host has checks");
      return;
    }
    say(fmt::format("would ask {} to vote first (their checks_dir; --vote-timeout {}{})", join(voters, " "),
                    format_duration_ms(opt.vote_timeout_ms),
                    opt.force         ? ", --force: vetoes overridden"
                    : opt.skip_vetoed ? ", --skip-vetoed: vetoed hosts left out"
                                      : ""));
  }

  Status all_at_once() {
    say(fmt::format("would {} {} host(s) all at once: {} -> {}: {}", action == "push" ? "switch" : "roll back",
                    live.size(), cur().empty() ? "-" : cur(), target, join(live, " ")));
    auto plan = build_plan(plan_input(live));
    if (!plan) return plan.error();
    for (auto& l : describe_plan(*plan)) say(std::move(l));
    return ok_status();
  }

  Status rolling(const Manifest* staged) {
    if (!ptr) {
      refuse(Exit::Usage, "the first release must be pushed all-at-once");
      return ok_status();
    }
    if (staged && !staged->min_compatible.empty())
      for (const auto& [h, s] : st)
        if (!s.running.empty() && compare_versions(s.running, staged->min_compatible) < 0)
          refuse(Exit::Usage, fmt::format("{} runs {}, below --min-compatible {}: push it all-at-once", h, s.running,
                                          staged->min_compatible));
    auto plan = build_plan(plan_input(todo));
    if (!plan) return plan.error();
    int i = 0;
    for (const auto& batch : plan->batches())
      say(fmt::format("rolling batch {} ({} at most, {} per group): {}", ++i, plan->batch_size, opt.max_unavailable,
                      join(batch, " ")));
    say(fmt::format("acting version {} until every host runs {}{}", ptr->acting.empty() ? cur() : ptr->acting, target,
                    opt.hold_acting ? " and 'finalize' is run (--hold-acting)" : ""));
    for (auto& l : describe_plan(*plan)) say(std::move(l));
    return ok_status();
  }

  Status run(const Manifest* staged) {
    if (auto s = read_head(); !s) return s;
    if (auto s = release(staged); !s) return s;
    if (auto s = fleet(); !s) return s;
    if (live.empty()) {
      if (!opt.hosts.empty() || !opt.cls.empty()) refuse(Exit::Usage, "no live host is targeted");
      else say("no live host: the pointer would move, and hosts would start " + target + " when they come up");
      return ok_status();
    }
    if (!there.empty()) say(fmt::format("already running {}: {}", target, join(there, " ")));
    votes();
    if (action == "push" && opt.strategy == "rolling") return rolling(staged);
    return all_at_once();
  }
};

}  // namespace

Result<DryRunPlan> dry_run_plan(Share& share, const std::string& action, const std::string& target,
                                const Manifest* staged, const MasterOptions& opt) {
  DryRun d{share, action, target, opt, {}, {}, {}, {}, {}, {}, {}};
  if (auto s = d.run(staged); !s) return s.error();
  return d.out;
}

}  // namespace nfsup
