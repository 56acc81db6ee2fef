// nfsup master: push, rollback and finalize: checks before anything is written, then a switch.
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

namespace {

// A rolling push starts from a finished rollout and goes up: an older release would run beside
// data the acting version wrote (and, held with --hold-acting, leave the acting version above
// every host's release).
Status check_rolling_target(Share& share, const std::optional<Pointer>& p, const PushRequest& req,
                            const MasterOptions& opt) {
  if (opt.strategy != "rolling") return ok_status();
  if (!p) return err(Exit::Usage, "the first release must be pushed all-at-once (no release runs yet)");
  if (!p->overrides.empty())
    return err(Exit::Usage, fmt::format("{}: a rollout is unfinished (hosts {} have their own release); roll back or "
                                        "push all-at-once first",
                                        share.pointer_path(), p->overrides.begin()->first));
  const std::string acting = p->acting.empty() ? p->release : p->acting;
  if (compare_versions(req.stage.version, acting) >= 0) return ok_status();
  return err(Exit::Usage, fmt::format("a rolling push of {} is below the acting version {}: its hosts would run "
                                      "beside data they cannot read; use rollback or --strategy all-at-once",
                                      req.stage.version, acting));
}

}  // namespace

// Every flag of a push, checked before the release is staged: a refused push writes nothing.
Status check_push_flags(Share& share, const PushRequest& req, const MasterOptions& opt) {
  if (!valid_batch(opt.batch))
    return err(Exit::Usage, fmt::format("--batch '{}': use a number or a percentage like 25%", opt.batch));
  if (opt.strategy == "rolling" && (!opt.hosts.empty() || !opt.cls.empty()))
    return err(Exit::Usage, "--hosts and --class do not combine with --strategy rolling (a rollout covers the fleet)");
  auto p = share.read_pointer();
  if (!p) return p.error();
  if (!*p && (!opt.hosts.empty() || !opt.cls.empty()))
    return err(Exit::Usage, "the first release goes to every host; --hosts and --class need a current release");
  if (auto s = check_rolling_target(share, *p, req, opt); !s) return s.error();
  if (auto s = check_targets(share, opt); !s) return s.error();
  if (auto s = check_signer(share, opt); !s) return s.error();
  if (opt.strategy == "rolling" && !req.stage.min_compatible.empty()) {
    // Refuse an incompatible rolling push before anything is written.
    auto fleet = survey(share, server_now_ms(share), opt.stale_after_ms);
    if (!fleet) return fleet.error();
    std::vector<std::string> bad;
    for (const auto& h : fleet->live) {
      auto s = share.read_status(h);
      if (s && *s && !(*s)->running.empty() && compare_versions((*s)->running, req.stage.min_compatible) < 0)
        bad.push_back(h + " runs " + (*s)->running);
    }
    if (!bad.empty())
      return err(Exit::Usage, fmt::format("a rolling upgrade to {} would run it beside releases it cannot run beside "
                                          "(--min-compatible {}; {}); push it with --strategy all-at-once",
                                          req.stage.version, req.stage.min_compatible, join(bad, ", ")));
  }
  return ok_status();
}

Result<SwitchReport> push(Share& share, const PushRequest& req, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto existing = share.read_marker();
  if (!existing) return existing.error();
  if (*existing)
    return err(Exit::Busy, fmt::format("{}: {} of {} by {} (pid {}) is in progress; if it died, run "
                                       "'nfsup-install abort {}'",
                                       share.marker_path(), (*existing)->action, (*existing)->release,
                                       (*existing)->master_host, (*existing)->master_pid, share.root()));
  if (auto s = check_push_flags(share, req, opt); !s) return s.error();
  SwitchReport rep;
  StageRequest sr = req.stage;
  sr.interrupt = opt.interrupt;
  sr.progress = opt.progress;
  sr.sign_key = opt.sign_key;
  auto staged = stage_release(share, sr);
  if (!staged) return staged.error();
  rep.stage = *staged;
  note(opt, staged->already_published
                ? fmt::format("release {} is already on the share with the same content; nothing copied", sr.version)
                : fmt::format("staged {}: {} bytes, {} written to the share", sr.version, staged->bytes_total,
                              staged->bytes_written));
  if (!staged->already_published)
    audit_or_say(share, opt, "stage", fmt::format("{} {} bytes ({} written)", sr.version, staged->bytes_total,
                                           staged->bytes_written),
                      "ok");
  crash_point("push-after-stage");
  if (interrupted(opt)) return interrupted_error(opt, fmt::format("{} is staged; nothing was switched", sr.version));
  if (opt.strategy == "rolling") return run_rolling(share, sr.version, opt, rep);
  return run_switch(share, sr.version, "push", opt, rep);
}

bool valid_batch(const std::string& spec) { return batch_size(spec, 1) > 0; }

Result<std::string> rollback_target(Share& share, const std::string& to) {
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  if (!*ptr) return err(Exit::Usage, fmt::format("{}: no release has been pushed yet; nothing to roll back", share.root()));
  auto kept = share.list_releases();
  if (!kept) return kept.error();
  auto is_kept = [&](const std::string& v) { return std::find(kept->begin(), kept->end(), v) != kept->end(); };
  if (!to.empty()) {
    if (auto e = check_version_name(to)) return err(Exit::Usage, fmt::format("--to: {}", *e));
    if (!is_kept(to))
      return err(Exit::Usage, fmt::format("--to {}: no such release on the share (kept: {})", to, join(*kept, ", ")));
    return to;
  }
  // The release the last switch replaced, not the newest one below: a release can sit on the
  // share without ever having run (its push was refused or its master died after staging).
  const Pointer& p = **ptr;
  if (p.previous.empty() || p.previous == p.release)
    return err(Exit::Usage, fmt::format("{} names no previous release to go back to; use --to (kept: {})",
                                        share.pointer_path(), join(*kept, ", ")));
  if (compare_versions(p.previous, p.release) > 0)
    return err(Exit::Usage, fmt::format("the last switch went from {} back to {}; a rollback without --to would "
                                        "return to {}: name the release with --to (kept: {})",
                                        p.previous, p.release, p.previous, join(*kept, ", ")));
  if (!is_kept(p.previous))
    return err(Exit::Usage, fmt::format("the previous release {} is no longer on the share; use --to (kept: {})",
                                        p.previous, join(*kept, ", ")));
  return p.previous;
}

Result<SwitchReport> rollback(Share& share, const std::string& to_in, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  auto to = rollback_target(share, to_in);
  if (!to) return to.error();
  if (auto s = check_targets(share, opt); !s) return s.error();
  if (auto s = check_signer(share, opt); !s) return s.error();
  SwitchReport rep;
  return run_switch(share, *to, "rollback", opt, rep);
}

}  // namespace nfsup
