// nfsup core: config-rewrite runner.
#include "reconfig.h"

#include <stdio.h>
#include <fmt/format.h>

#include "hash.h"
#include "trust.h"
#include "process.h"

namespace nfsup {

std::string ReconfigPlan::describe() const {
  switch (kind) {
    case Nothing: return fmt::format("{} -> {}: keep the configuration as it is", from.empty() ? "-" : from, to);
    case Restore: return fmt::format("{} -> {}: restore the configuration backed up under {}", from, to, to);
    case Script: return fmt::format("{} -> {}: run release {}'s reconfig script", from, to, to);
  }
  return "";
}

std::string backup_path(const WatchdogConfig& cfg, const std::string& version) {
  return path_join(path_join(cfg.state_dir, "backups"), fmt::format("{}@{}", basename_of(cfg.agent.config), version));
}

// The manifest the script is hashed against. In signed mode its signature and expiry are
// checked on these very bytes: a manifest read apart from the one whose signature was checked
// could list a swapped-in script's hash.
static Result<std::optional<Manifest>> read_trusted_manifest(Share& share, const WatchdogConfig& cfg,
                                                             const std::string& to) {
  if (!cfg.trust.signed_mode()) return share.read_manifest(to);
  auto text = share.read_manifest_text(to);
  if (!text) return text.error();
  if (!*text) return std::optional<Manifest>();
  auto trust = check_manifest_trust(share, to, **text, cfg.trust, unix_now());
  if (!trust) return trust.error();
  if (!trust->empty()) return err(Exit::Integrity, *trust);
  auto m = unpack_manifest(**text, share.manifest_path(to));
  if (!m) return m.error();
  return std::optional<Manifest>(std::move(*m));
}

Result<ReconfigPlan> plan_reconfig(Share& share, const WatchdogConfig& cfg, const std::string& from,
                                   const std::string& to) {
  ReconfigPlan plan;
  plan.from = from;
  plan.to = to;
  if (auto e = check_version_name(to)) return err(Exit::Usage, fmt::format("--to: {}", *e));
  if (!from.empty())
    if (auto e = check_version_name(from)) return err(Exit::Usage, fmt::format("--from: {}", *e));
  if (cfg.agent.config.empty() || from.empty() || from == to) return plan;
  if (compare_versions(to, from) < 0) {
    FileInfo st;
    std::string b = backup_path(cfg, to);
    if (local_stat(b, &st) == 0) {
      plan.kind = ReconfigPlan::Restore;
      plan.backup_source = b;
      return plan;
    }
    return plan;  // a downgrade without a backup keeps the configuration; never run an old script backwards
  }
  auto m = read_trusted_manifest(share, cfg, to);
  if (!m) return m.error();
  if (!*m) return err(Exit::Usage, fmt::format("release {} is not on the share ({})", to, share.release_dir(to)));
  if ((*m)->reconfig.empty()) return plan;
  const ManifestEntry* entry = nullptr;
  for (const auto& e : (*m)->entries)
    if (e.path == (*m)->reconfig) entry = &e;
  if (!entry) return err(Exit::Integrity, fmt::format("{}: reconfig script not listed", share.manifest_path(to)));
  std::string src = path_join(share.release_dir(to), entry->path);
  std::string dir = path_join(cfg.state_dir, "scripts");
  (void)make_dir(cfg.state_dir, 0755);  // (a failure shows at the script's create)
  (void)make_dir(dir, 0700);
  std::string local = path_join(dir, fmt::format("reconfig@{}", to));
  std::string tmp = fmt::format("{}.tmp.{}", local, self_pid());
  int fd = -1;
  if (int e = create_trunc(tmp, 0700, &fd); e != 0)
    return err(Exit::Failed, fmt::format("open({}): {}", tmp, errno_str(e)));
  auto h = hash_file(src, fd, tmp);
  // (a local copy checked against the manifest's hash just above; a crash loses only the copy)
  (void)sync_fd(fd);
  (void)close_fd(fd);
  if (!h) {
    (void)unlink_path(tmp);  // (cleanup of our own temp; the error reported is the hash's)
    return h.error();
  }
  if (h->sha256 != entry->sha256) {
    (void)unlink_path(tmp);
    return err(Exit::Integrity, fmt::format("{}: sha256 does not match the manifest; refusing to run it", src));
  }
  if (int e = rename_path(tmp, local); e != 0) {
    (void)unlink_path(tmp);
    return err(Exit::Failed, fmt::format("rename({}): {}", local, errno_str(e)));
  }
  plan.kind = ReconfigPlan::Script;
  plan.local_script = local;
  return plan;
}

static std::string unified_diff(const std::string& a_path, const std::string& b_path, const std::string& label) {
  SpawnSpec s;
  s.argv = {"diff", "-u", "--label", label + " (now)", "--label", label + " (after)", a_path, b_path};
  auto r = run_with_timeout(s, 10000);
  if (!r) return "";
  return r->output;
}

Status write_backup(const WatchdogConfig& cfg, const std::string& path, std::string_view content) {
  (void)make_dir(cfg.state_dir, 0755);  // (a failure shows at the backup's write)
  (void)make_dir(path_join(cfg.state_dir, "backups"), 0700);
  return write_local_atomic(path, content, 0600);
}

// Plan Nothing: the configuration stays; it is still kept as it was under `from`, so a
// rollback can restore it.
static Result<ReconfigOutcome> keep_config(const WatchdogConfig& cfg, const ReconfigPlan& plan, bool dry_run,
                                           bool defer_backup) {
  ReconfigOutcome out;
  const std::string& conf = cfg.agent.config;
  out.message = plan.describe();
  if (dry_run || conf.empty() || plan.from.empty() || plan.from == plan.to) return out;
  auto cur = read_local(conf);
  if (!cur || !*cur) return out;
  if (defer_backup) {
    out.backup_path = backup_path(cfg, plan.from);
    out.backup = std::move(**cur);
  } else if (auto s = write_backup(cfg, backup_path(cfg, plan.from), **cur); !s) {
    return s.error();
  }
  return out;
}

// Runs the release's reconfig script on the candidate copy `tmp` of the configuration.
static Status run_reconfig_script(const WatchdogConfig& cfg, const ReconfigPlan& plan, const std::string& tmp) {
  const std::string& conf = cfg.agent.config;
  SpawnSpec s;
  s.argv = {plan.local_script};
  s.env = {{"NFSUP_HOST", cfg.host},
           {"NFSUP_FROM_VERSION", plan.from},
           {"NFSUP_TO_VERSION", plan.to},
           {"NFSUP_CONFIG", tmp},
           {"NFSUP_ORIGINAL_CONFIG", conf}};
  s.cwd = cfg.state_dir;
  auto r = run_with_timeout(s, cfg.agent.reconfig_timeout_ms);
  if (!r) return r.error();
  if (!r->timed_out && r->exit_code == 0) return ok_status();
  std::string last;
  for (const auto& l : split(r->output, '\n'))
    if (!l.empty()) last = l;
  std::string why = r->timed_out ? fmt::format("timed out after {}", format_duration_ms(cfg.agent.reconfig_timeout_ms))
                    : r->signal ? fmt::format("killed by {}", signal_name(r->signal))
                                : fmt::format("exit code {}", r->exit_code);
  return err(Exit::Failed, fmt::format("reconfig script of {} failed ({}){}{}; {} left unchanged", plan.to, why,
                                       last.empty() ? "" : ": ", last, conf));
}

// Makes `tmp` the new configuration: the backup it is restored from, or the script's output.
static Status make_candidate(const WatchdogConfig& cfg, const ReconfigPlan& plan, const std::string& tmp,
                             uint32_t mode) {
  if (plan.kind != ReconfigPlan::Restore) return run_reconfig_script(cfg, plan, tmp);
  auto b = read_local(plan.backup_source);
  if (!b || !*b) return err(Exit::Failed, fmt::format("{}: cannot read the backup", plan.backup_source));
  return write_local_atomic(tmp, **b, mode);
}

Result<ReconfigOutcome> apply_reconfig(const WatchdogConfig& cfg, const ReconfigPlan& plan, bool dry_run,
                                       bool defer_backup) {
  ReconfigOutcome out;
  const std::string& conf = cfg.agent.config;
  if (plan.kind == ReconfigPlan::Nothing) return keep_config(cfg, plan, dry_run, defer_backup);
  FileInfo st;
  if (int e = local_stat(conf, &st); e != 0) return err(Exit::Failed, fmt::format("{}: {}", conf, errno_str(e)));
  auto current = read_local(conf);
  if (!current) return current.error();
  if (!*current) return err(Exit::Failed, fmt::format("{}: does not exist", conf));
  uint32_t mode = st.mode;

  // The candidate goes to a temp file beside the config so the final rename is atomic.
  std::string tmp = path_join(dirname_of(conf), fmt::format(".{}.nfsup-new.{}", basename_of(conf), self_pid()));
  auto drop = [&]() { (void)unlink_path(tmp); };  // (our own temp; the error reported is the step's)
  if (auto s = write_local_atomic(tmp, **current, mode); !s) return s.error();

  if (auto s = make_candidate(cfg, plan, tmp, mode); !s) {
    drop();
    return s.error();
  }
  auto after = read_local(tmp);
  if (!after || !*after) {
    drop();
    return err(Exit::Failed, fmt::format("{}: the script removed the configuration copy", conf));
  }
  out.changed = **after != **current;
  out.diff = out.changed ? unified_diff(conf, tmp, conf) : "";
  if (dry_run) {
    drop();
    out.message = plan.describe() + (out.changed ? "" : " (no change)");
    return out;
  }
  // Keep the configuration as it was under `from`, then switch atomically.
  std::string bdir = path_join(cfg.state_dir, "backups");
  (void)make_dir(cfg.state_dir, 0755);  // (a failure shows at the backup's write)
  (void)make_dir(bdir, 0700);
  if (auto s = write_local_atomic(backup_path(cfg, plan.from), **current, 0600); !s) {
    drop();
    return s.error();
  }
  // The script may have replaced the copy (mv, cp, editors): keep the config's owner and mode.
  // (best effort: a non-root run cannot chown, and the copy then keeps the runner's owner)
  (void)chown_path(tmp, st.uid, st.gid);
  (void)chmod_path(tmp, mode);
  if (int e = rename_path(tmp, conf); e != 0) {
    drop();
    return err(Exit::Failed, fmt::format("rename({}): {}", conf, errno_str(e)));
  }
  out.message = plan.describe();
  return out;
}

}  // namespace nfsup
