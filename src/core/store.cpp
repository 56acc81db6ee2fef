// nfsup core: a host's local object store (see store.h).
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "hash.h"

namespace nfsup {

std::string LocalStore::object_path(const std::string& sha, uint32_t mode) const {
  return path_join(path_join(root_, sha.substr(0, 2)), object_name(sha, mode & 07777));
}

Status LocalStore::fetch(const std::string& from, const ManifestEntry& e, StoreStats* stats) const {
  if (!is_sha256_hex(e.sha256)) return err(Exit::Integrity, fmt::format("{}: bad sha256 in the manifest", e.path));
  std::string obj = object_path(e.sha256, e.mode);
  struct stat st{};
  if (::lstat(obj.c_str(), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == e.size) {
    if (stats) ++stats->reused;
    return ok_status();
  }
  ::mkdir(root_.c_str(), 0700);
  std::string dir = path_join(root_, e.sha256.substr(0, 2));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return err(Exit::Failed, fmt::format("mkdir({}): {}", dir, errno_str(errno)));
  std::string tmp = fmt::format("{}.tmp-{}", obj, ::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return err(Exit::Failed, fmt::format("open({}): {}", tmp, errno_str(errno)));
  auto h = hash_file(from, fd, tmp);
  if (h && ::fchmod(fd, e.mode & 0755) != 0) h = err(Exit::Failed, fmt::format("chmod({}): {}", tmp, errno_str(errno)));
  ::close(fd);
  if (h && h->sha256 != e.sha256)
    h = err(Exit::Integrity,
            fmt::format("{}: sha256 {} != manifest {}", from, h->sha256.substr(0, 16), e.sha256.substr(0, 16)));
  if (h && ::rename(tmp.c_str(), obj.c_str()) != 0)
    h = err(Exit::Failed, fmt::format("rename({} -> {}): {}", tmp, obj, errno_str(errno)));
  if (!h) {
    ::unlink(tmp.c_str());
    return h.error();
  }
  if (stats) {
    ++stats->fetched;
    stats->fetched_bytes += h->size;
  }
  return ok_status();
}

void LocalStore::sync() const {
  int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::syncfs(fd);
  ::close(fd);
}

Result<uint64_t> LocalStore::prune() const {
  uint64_t removed = 0;
  DIR* top = ::opendir(root_.c_str());
  if (!top) return errno == ENOENT ? Result<uint64_t>(0) : err(Exit::Failed, fmt::format("opendir({}): {}", root_, errno_str(errno)));
  std::vector<std::string> subs;
  while (dirent* de = ::readdir(top))
    if (de->d_name[0] != '.') subs.push_back(de->d_name);
  ::closedir(top);
  for (const auto& s : subs) {
    std::string dir = path_join(root_, s);
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    std::vector<std::string> gone;
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      struct stat st{};
      if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      // Linked by no run tree, or a temp an interrupted fetch left (never linked).
      if (!S_ISREG(st.st_mode) || st.st_nlink <= 1 || n.find(".tmp-") != std::string::npos) gone.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : gone)
      if (::unlink(path_join(dir, n).c_str()) == 0) ++removed;
    ::rmdir(dir.c_str());  // (fails while it holds objects)
  }
  return removed;
}

}  // namespace nfsup
