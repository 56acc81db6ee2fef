// nfsup core: config-rewrite runner.
#include "reconfig.h"

#include <fcntl.h>
#include <stdio.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

Result<std::optional<std::string>> read_local(const std::string& path, size_t max) {
  RealFs fs("local");
  return fs.read_file(path, max);
}

Status write_local_atomic(const std::string& path, std::string_view data, uint32_t mode) {
  RealFs fs(fmt::format("{}", short_hostname()));
  return fs.write_atomic(path, data, mode);
}

Status write_local_derived(const std::string& path, std::string_view data, uint32_t mode) {
  RealFs fs(fmt::format("{}", short_hostname()));
  fs.set_durable(false);
  return fs.write_atomic(path, data, mode);
}

Status write_local_exchange(const std::string& path, std::string_view data, uint32_t mode) {
  // Every replaced file used to free one inode and allocate another: on ext4 without a journal
  // each allocation then walks the inodes freed in the last minutes (recently_deleted), so a
  // fleet of watchdogs on one disk slowed each other's every create. Rewriting a spare in place
  // frees and allocates nothing.
  std::string spare = path_join(dirname_of(path), "." + basename_of(path) + ".spare");
  int fd = ::open(spare.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    // (not ours to rewrite: a link to another file, or something odd; use a fresh temp)
    if (fd >= 0) ::close(fd);
    return write_local_atomic(path, data, mode);
  }
  auto fail = [&](const char* op) {
    int e = errno;
    ::close(fd);
    return err(Exit::Share, fmt::format("{}({}): {}", op, spare, errno_str(e)));
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + off, data.size() - off, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    off += static_cast<size_t>(n);
  }
  if (::ftruncate(fd, static_cast<off_t>(data.size())) != 0) return fail("ftruncate");
  (void)::fchmod(fd, mode);
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) return err(Exit::Share, fmt::format("close({}): {}", spare, errno_str(errno)));
  if (::renameat2(AT_FDCWD, spare.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) return ok_status();
  int e = errno;
  if (e == ENOENT || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
    // First write (no target to swap with), or no RENAME_EXCHANGE here: a plain rename of the
    // complete, fsynced spare.
    if (::rename(spare.c_str(), path.c_str()) == 0) return ok_status();
    e = errno;
  }
  return err(Exit::Share, fmt::format("rename({} -> {}): {}", spare, path, errno_str(e)));
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
  auto trust = check_manifest_trust(share, to, **text, cfg.trust, time(nullptr));
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
    struct stat st{};
    std::string b = backup_path(cfg, to);
    if (::stat(b.c_str(), &st) == 0) {
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
  ::mkdir(cfg.state_dir.c_str(), 0755);
  ::mkdir(dir.c_str(), 0700);
  std::string local = path_join(dir, fmt::format("reconfig@{}", to));
  std::string tmp = fmt::format("{}.tmp.{}", local, getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
  if (fd < 0) return err(Exit::Failed, fmt::format("open({}): {}", tmp, errno_str(errno)));
  auto h = hash_file(src, fd, tmp);
  ::fsync(fd);
  ::close(fd);
  if (!h) {
    ::unlink(tmp.c_str());
    return h.error();
  }
  if (h->sha256 != entry->sha256) {
    ::unlink(tmp.c_str());
    return err(Exit::Integrity, fmt::format("{}: sha256 does not match the manifest; refusing to run it", src));
  }
  if (::rename(tmp.c_str(), local.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
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
  ::mkdir(cfg.state_dir.c_str(), 0755);
  ::mkdir(path_join(cfg.state_dir, "backups").c_str(), 0700);
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
  struct stat st{};
  if (::stat(conf.c_str(), &st) != 0)
    return err(Exit::Failed, fmt::format("{}: {}", conf, errno_str(errno)));
  auto current = read_local(conf);
  if (!current) return current.error();
  if (!*current) return err(Exit::Failed, fmt::format("{}: does not exist", conf));
  uint32_t mode = st.st_mode & 07777;

  // The candidate goes to a temp file beside the config so the final rename is atomic.
  std::string tmp = path_join(dirname_of(conf), fmt::format(".{}.nfsup-new.{}", basename_of(conf), getpid()));
  auto drop = [&]() { ::unlink(tmp.c_str()); };
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
  ::mkdir(cfg.state_dir.c_str(), 0755);
  ::mkdir(bdir.c_str(), 0700);
  if (auto s = write_local_atomic(backup_path(cfg, plan.from), **current, 0600); !s) {
    drop();
    return s.error();
  }
  // The script may have replaced the copy (mv, cp, editors): keep the config's owner and mode.
  (void)!::chown(tmp.c_str(), st.st_uid, st.st_gid);
  (void)!::chmod(tmp.c_str(), mode);
  if (::rename(tmp.c_str(), conf.c_str()) != 0) {
    int e = errno;
    drop();
    return err(Exit::Failed, fmt::format("rename({}): {}", conf, errno_str(e)));
  }
  out.message = plan.describe();
  return out;
}

}  // namespace nfsup
