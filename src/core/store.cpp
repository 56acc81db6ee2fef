// nfsup core: a host's local object store (see store.h).
#include "store.h"

#include <fmt/format.h>

#include <vector>

#include "hash.h"
#include "os/files.h"
#include "os/self.h"

namespace nfsup {

std::string LocalStore::object_path(const std::string& sha, uint32_t mode) const {
  return path_join(path_join(root_, sha.substr(0, 2)), object_name(sha, mode & 07777));
}

Status LocalStore::fetch(const std::string& from, const ManifestEntry& e, StoreStats* stats) const {
  if (!is_sha256_hex(e.sha256)) return err(Exit::Integrity, fmt::format("{}: bad sha256 in the manifest", e.path));
  std::string obj = object_path(e.sha256, e.mode);
  FileInfo st;
  if (local_lstat(obj, &st) == 0 && st.type == FileInfo::File && st.size == e.size) {
    if (stats) ++stats->reused;
    return ok_status();
  }
  (void)make_dir(root_, 0700);  // (a failure shows at the next step)
  std::string dir = path_join(root_, e.sha256.substr(0, 2));
  if (int me = make_dir(dir, 0755); me != 0) return err(Exit::Failed, fmt::format("mkdir({}): {}", dir, errno_str(me)));
  std::string tmp = fmt::format("{}.tmp-{}", obj, self_pid());
  (void)unlink_path(tmp);  // (one an interrupted fetch of this process id left)
  int fd = -1;
  if (int oe = create_excl(tmp, 0600, &fd); oe != 0) return err(Exit::Failed, fmt::format("open({}): {}", tmp, errno_str(oe)));
  auto h = hash_file(from, fd, tmp);
  if (int ce = h ? chmod_fd(fd, e.mode & 0755) : 0; ce != 0)
    h = err(Exit::Failed, fmt::format("chmod({}): {}", tmp, errno_str(ce)));
  (void)close_fd(fd);  // (a local file; its data was checked by the hash, made durable by sync())
  if (h && h->sha256 != e.sha256)
    h = err(Exit::Integrity,
            fmt::format("{}: sha256 {} != manifest {}", from, h->sha256.substr(0, 16), e.sha256.substr(0, 16)));
  if (int re = h ? rename_path(tmp, obj) : 0; re != 0)
    h = err(Exit::Failed, fmt::format("rename({} -> {}): {}", tmp, obj, errno_str(re)));
  if (!h) {
    (void)unlink_path(tmp);
    return h.error();
  }
  if (stats) {
    ++stats->fetched;
    stats->fetched_bytes += h->size;
  }
  return ok_status();
}

void LocalStore::sync() const { (void)sync_filesystem(root_); }  // (best effort: the next fsync writes it)

Result<uint64_t> LocalStore::prune() const {
  uint64_t removed = 0;
  std::vector<std::string> subs;
  if (int le = list_names(root_, &subs); le != 0)
    return le == ENOENT ? Result<uint64_t>(0) : err(Exit::Failed, fmt::format("opendir({}): {}", root_, errno_str(le)));
  for (const auto& s : subs) {
    if (s[0] == '.') continue;
    std::string dir = path_join(root_, s);
    std::vector<std::string> names;
    if (list_names(dir, &names) != 0) continue;
    for (const auto& n : names) {
      FileInfo st;
      if (local_lstat(path_join(dir, n), &st) != 0) continue;
      // Linked by no run tree, or a temp an interrupted fetch left (never linked).
      bool gone = st.type != FileInfo::File || st.nlink <= 1 || n.find(".tmp-") != std::string::npos;
      if (gone && unlink_path(path_join(dir, n)) == 0) ++removed;
    }
    (void)remove_dir(dir);  // (fails while it holds objects)
  }
  return removed;
}

}  // namespace nfsup
