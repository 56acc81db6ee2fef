// nfsup os: the one crash-safe writer (RealFs::write_file) and the local-file wrappers over it.
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "files_internal.h"
#include "self.h"

namespace nfsup {

Status RealFs::write_temp(int dfd, const std::string& tmp, const std::string& shown, std::string_view data,
                          uint32_t mode, bool sync) {
  int fd = ::openat(dfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fs_error("open", shown, errno);
  auto drop = [&](std::string_view op, int e) {
    ::close(fd);
    ::unlinkat(dfd, tmp.c_str(), 0);
    return fs_error(op, shown, e);
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return drop("write", errno);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) { /* umask may have narrowed it; best effort */ }
  if (sync && ::fsync(fd) != 0) return drop("fsync", errno);
  if (::close(fd) != 0) {
    int e = errno;
    ::unlinkat(dfd, tmp.c_str(), 0);
    return fs_error("close", shown, e);
  }
  return ok_status();
}

// Publishes the complete temp `tmp` (a sibling of a.name) under a.name; unlinks it on failure.
Result<bool> RealFs::publish(At& a, const std::string& path, const std::string& tmp, unsigned flags) {
  if (!(flags & kWriteNoReplace)) {
    if (::renameat(a.fd, tmp.c_str(), a.fd, a.name.c_str()) != 0) {
      int e = errno;
      ::unlinkat(a.fd, tmp.c_str(), 0);
      return fs_error("rename", path, e);
    }
    return true;
  }
  int rc = ::linkat(a.fd, tmp.c_str(), a.fd, a.name.c_str(), 0);
  int e = errno;
  // link() may report failure although the server did it (lost reply); trust the inode instead.
  struct stat x{}, y{};
  bool ours = ::fstatat(a.fd, tmp.c_str(), &x, AT_SYMLINK_NOFOLLOW) == 0 &&
              ::fstatat(a.fd, a.name.c_str(), &y, AT_SYMLINK_NOFOLLOW) == 0 && x.st_ino == y.st_ino &&
              x.st_dev == y.st_dev;
  ::unlinkat(a.fd, tmp.c_str(), 0);
  if (rc == 0 || ours) return true;
  if (e == EEXIST) return false;
  return fs_error("link", path, e);
}

// kWriteExchange: the spare beside a.name rewritten in place. Its descriptor, closed and
// complete, is reported as 0; -1 = the spare is not ours to rewrite (use a fresh temp).
Result<int> RealFs::exchange_spare(At& a, const std::string& path, std::string_view data, uint32_t mode) {
  std::string spare_full = path_join(dirname_of(path), "." + basename_of(path) + ".spare");
  std::string spare = sibling(a, spare_full);
  int fd = ::openat(a.fd, spare.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    // (not ours to rewrite: a link to another file, or something odd)
    if (fd >= 0) ::close(fd);
    return -1;
  }
  auto fail = [&](const char* op) {
    int e = errno;
    ::close(fd);
    return fs_error(op, spare_full, e);
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
  (void)::fchmod(fd, mode);  // umask may have narrowed it; best effort
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) return fs_error("close", spare_full, errno);
  if (::renameat2(a.fd, spare.c_str(), a.fd, a.name.c_str(), RENAME_EXCHANGE) == 0) return 0;
  int e = errno;
  if (e == ENOENT || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
    // First write (no target to swap with), or no RENAME_EXCHANGE here: a plain rename of the
    // complete, fsynced spare.
    if (::renameat(a.fd, spare.c_str(), a.fd, a.name.c_str()) == 0) return 0;
    e = errno;
  }
  return fs_error("rename", spare_full + " -> " + path, e);
}

static Status sync_dir(const RealFs::At& a, const std::string& path) {
  int fd = a.fd;
  if (fd == AT_FDCWD) fd = ::open(dirname_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fs_error("open", dirname_of(path), errno);
  int rc = ::fsync(fd), e = errno;
  if (fd != a.fd) ::close(fd);
  return rc == 0 ? ok_status() : fs_error("fsync", dirname_of(path), e);
}

Result<bool> RealFs::write_file(const std::string& path, std::string_view data, unsigned flags, uint32_t mode) {
  StallGuard::Section g(flags & kWriteNoReplace ? "create" : "write", path);
  At a = at(path);
  if (a.error) return at_err(flags & kWriteNoReplace ? "create" : "write", a, path);
  Result<bool> done = false;
  if (flags & kWriteExchange) {
    auto x = exchange_spare(a, path, data, mode);
    if (!x) return x.error();
    if (*x == 0) done = true;
  }
  if (!done.value()) {
    std::string full = temp_for(path), tmp = sibling(a, full);
    if (auto s = write_temp(a.fd, tmp, full, data, mode, (flags & kWriteSync) != 0); !s) return s.error();
    done = publish(a, path, tmp, flags);
  }
  if (done && *done && (flags & kWriteSyncDir))
    if (auto s = sync_dir(a, path); !s) return s.error();
  return done;
}

Status RealFs::write_atomic(const std::string& path, std::string_view data, uint32_t mode) {
  auto r = write_file(path, data, durable_ ? kWriteSync : 0u, mode);
  if (!r) return r.error();
  return ok_status();
}

Result<bool> RealFs::publish_new(const std::string& path, std::string_view data, uint32_t mode) {
  return write_file(path, data, kWriteNoReplace | (durable_ ? kWriteSync : 0u), mode);
}

Result<int> RealFs::create_new(const std::string& path, uint32_t mode) {
  At a = at(path);
  if (a.error) return at_err("create", a, path);
  int fd = ::openat(a.fd, a.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fs_error("open", path, errno);
  return fd;
}

// ---- Local files (state_dir, configuration, keys): the same writer, never confined.

Result<std::optional<std::string>> read_local(const std::string& path, size_t max) {
  RealFs fs("local");
  return fs.read_file(path, max);
}

Result<bool> write_local(const std::string& path, std::string_view data, unsigned flags, uint32_t mode) {
  RealFs fs(short_hostname());
  return fs.write_file(path, data, flags, mode);
}

Status write_local_atomic(const std::string& path, std::string_view data, uint32_t mode) {
  auto r = write_local(path, data, kWriteSync, mode);
  if (!r) return r.error();
  return ok_status();
}

Status write_local_derived(const std::string& path, std::string_view data, uint32_t mode) {
  auto r = write_local(path, data, 0, mode);
  if (!r) return r.error();
  return ok_status();
}

Status write_local_exchange(const std::string& path, std::string_view data, uint32_t mode) {
  auto r = write_local(path, data, kWriteSync | kWriteExchange, mode);
  if (!r) return r.error();
  return ok_status();
}

}  // namespace nfsup
