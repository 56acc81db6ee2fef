// nfsup master: --dry-run: what a push or rollback would do.
#include "internal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "hash.h"
#include "process.h"
#include "reconfig.h"
#include "trust.h"

namespace nfsup {

Result<DryRunPlan> dry_run_plan(Share& share, const std::string& action, const std::string& target,
                                              const Manifest* staged, const MasterOptions& opt) {
  DryRunPlan out;
  auto say = [&](std::string l) { out.lines.push_back(std::move(l)); };
  // A step the real run would refuse: said, and its exit code kept (the first one wins).
  auto refuse = [&](Exit code, std::string l) {
    if (out.exit_code == 0) out.exit_code = static_cast<int>(code);
    say("refused now: " + std::move(l));
  };
  if (auto s = share.check(); !s) return s.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  const std::string cur = *ptr ? (*ptr)->release : "";
  if (auto mk = share.read_marker(); !mk) {
    return mk.error();
  } else if (*mk) {
    refuse(Exit::Busy, fmt::format("a {} of {} by {} (pid {}) holds the marker ('nfsup-install abort' if it died)",
                    (*mk)->action, (*mk)->release, (*mk)->master_host, (*mk)->master_pid));
  }
  auto kept = share.list_releases();
  if (!kept) return kept.error();
  const bool on_share = std::find(kept->begin(), kept->end(), target) != kept->end();
  if (staged) {
    uint64_t files = 0, bytes = 0, new_files = 0, new_bytes = 0;
    for (const auto& e : staged->entries) {
      if (e.kind != ManifestEntry::File) continue;
      ++files;
      bytes += e.size;
      auto st = share.fs().stat(share.object_path(e.sha256, e.mode));
      if (!st) return st.error();
      if (!*st) {
        ++new_files;
        new_bytes += e.size;
      }
    }
    if (on_share) {
      auto have = share.read_manifest(target);
      if (!have) return have.error();
      const bool same = *have && same_content(**have, *staged);
      if (same) say(fmt::format("release {} is already on the share with the same files: nothing to copy", target));
      else refuse(Exit::Usage, fmt::format("release {} is already on the share with other files (releases are "
                                           "immutable: pick a new --version)",
                                           target));
    } else {
      say(fmt::format("would stage {}: {} file(s), {} bytes; would copy the {} ({} bytes) not on the share yet",
                      target, files, bytes, new_files, new_bytes));
    }
  } else if (!on_share) {
    return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", target, join(*kept, ", ")));
  }
  // The fleet, judged by this machine's clock (a dry run writes nothing, not even the clock probe).
  auto fleet = survey(share, unix_ms(), opt.stale_after_ms);
  if (!fleet) return fleet.error();
  std::map<std::string, HostStatus> st;
  for (const auto& h : fleet->live)
    if (auto s = share.read_status(h); s && *s) st[h] = **s;
  std::vector<std::string> live;
  for (const auto& h : fleet->live) {
    if (!opt.hosts.empty() && std::find(opt.hosts.begin(), opt.hosts.end(), h) == opt.hosts.end()) continue;
    if (!opt.cls.empty() && st[h].cls != opt.cls) continue;
    live.push_back(h);
  }
  for (const auto& h : opt.hosts)
    if (std::find(live.begin(), live.end(), h) == live.end())
      say(fmt::format("--hosts {}: not a live host; it would be left out", h));
  for (const auto& s : fleet->skipped)
    if (opt.hosts.empty() || std::find(opt.hosts.begin(), opt.hosts.end(), s.host) != opt.hosts.end())
      say(fmt::format("would skip {}: {} ({})", s.host, s.outcome, s.detail));
  std::vector<std::string> todo, there, voters;
  for (const auto& h : live) {
    const HostStatus& s = st[h];
    if (s.state == "running" && s.running == target) there.push_back(h);
    else todo.push_back(h);
    if (s.checks != "no") voters.push_back(h);
  }
  if (live.empty()) {
    if (!opt.hosts.empty() || !opt.cls.empty()) refuse(Exit::Usage, "no live host is targeted");
    else say("no live host: the pointer would move, and hosts would start " + target + " when they come up");
    return out;
  }
  if (!there.empty()) say(fmt::format("already running {}: {}", target, join(there, " ")));
  const bool rolling = action == "push" && opt.strategy == "rolling";
  if (!voters.empty())
    say(fmt::format("would ask {} to vote first (their checks_dir; --vote-timeout {}{})", join(voters, " "),
                    format_duration_ms(opt.vote_timeout_ms),
                    opt.force ? ", --force: vetoes overridden" : opt.skip_vetoed ? ", --skip-vetoed: vetoed hosts left out" : ""));
  else
    say("no vote round: no targeted live host has checks");
  if (!rolling) {
    say(fmt::format("would {} {} host(s) all at once: {} -> {}: {}", action == "push" ? "switch" : "roll back",
                    live.size(), cur.empty() ? "-" : cur, target, join(live, " ")));
    return out;
  }
  if (!*ptr) {
    refuse(Exit::Usage, "the first release must be pushed all-at-once");
    return out;
  }
  if (staged && !staged->min_compatible.empty())
    for (const auto& [h, s] : st)
      if (!s.running.empty() && compare_versions(s.running, staged->min_compatible) < 0)
        refuse(Exit::Usage, fmt::format("{} runs {}, below --min-compatible {}: push it all-at-once", h, s.running,
                                        staged->min_compatible));
  int b = batch_size(opt.batch, st.size());
  if (b < 0) return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
  std::vector<std::string> remaining = todo;
  for (int i = 1; !remaining.empty(); ++i)
    say(fmt::format("rolling batch {} ({} at most, {} per group): {}", i, b, opt.max_unavailable,
                    join(next_batch(remaining, st, b, opt.max_unavailable), " ")));
  say(fmt::format("acting version {} until every host runs {}{}", (*ptr)->acting.empty() ? cur : (*ptr)->acting,
                  target, opt.hold_acting ? " and 'finalize' is run (--hold-acting)" : ""));
  return out;
}

}  // namespace nfsup
