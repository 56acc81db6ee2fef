// nfsup os: local-file primitives (0 or an errno; the caller words the error).
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "files.h"
#include "files_internal.h"

namespace nfsup {

int read_all(const std::string& path, size_t max_bytes, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out->clear();
  char buf[4096];
  int e = 0;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) e = errno;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > max_bytes) {
      e = EFBIG;
      break;
    }
  }
  ::close(fd);
  return e;
}

std::string read_head_nofollow(const std::string& path, size_t max_bytes) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return out;
  out.resize(max_bytes);
  ssize_t n = ::read(fd, out.data(), max_bytes);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  ::close(fd);
  return out;
}

int read_head(const std::string& path, size_t max_bytes, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  out->resize(max_bytes);
  ssize_t n = ::read(fd, out->data(), max_bytes);
  out->resize(n > 0 ? static_cast<size_t>(n) : 0);
  ::close(fd);
  return 0;
}

int local_lstat(const std::string& path, FileInfo* out) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return errno;
  *out = to_info(st);
  return 0;
}

int local_stat(const std::string& path, FileInfo* out) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return errno;
  *out = to_info(st);
  return 0;
}

int hard_link(const std::string& from, const std::string& to) {
  return ::link(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

int sync_filesystem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int e = ::syncfs(fd) == 0 ? 0 : errno;
  ::close(fd);
  return e;
}

int make_dir(const std::string& path, uint32_t mode) {
  return ::mkdir(path.c_str(), mode) == 0 || errno == EEXIST ? 0 : errno;
}

int make_new_dir(const std::string& path, uint32_t mode) { return ::mkdir(path.c_str(), mode) == 0 ? 0 : errno; }

int rename_path(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

int unlink_path(const std::string& path) { return ::unlink(path.c_str()) == 0 ? 0 : errno; }

int remove_dir(const std::string& path) { return ::rmdir(path.c_str()) == 0 ? 0 : errno; }

int chmod_path(const std::string& path, uint32_t mode) { return ::chmod(path.c_str(), mode) == 0 ? 0 : errno; }

int chown_path(const std::string& path, uint32_t uid, uint32_t gid) {
  return ::chown(path.c_str(), uid, gid) == 0 ? 0 : errno;
}

int read_link(const std::string& path, std::string* out) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return errno;
  out->assign(buf, static_cast<size_t>(n));
  return 0;
}

int real_path(const std::string& path, std::string* out) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return errno;
  *out = buf;
  return 0;
}

int list_names(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errno;
  out->clear();
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") out->push_back(std::move(n));
    errno = 0;
  }
  int e = errno;
  ::closedir(d);
  return e;
}

}  // namespace nfsup

namespace nfsup {

static Status write_all(int fd, const char* data, size_t n, const std::string& name) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return err(Exit::Share, fmt::format("write({}): {}", name, errno_str(errno)));
    }
    off += static_cast<size_t>(w);
  }
  return ok_status();
}

Status stream_file(const std::string& path, const std::function<void(const char*, size_t)>& chunk, int dest_fd,
                   const std::string& dest_name) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    return err(e == ENOENT || e == ELOOP ? Exit::Integrity : Exit::Share, fmt::format("open({}): {}", path, errno_str(e)));
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return err(Exit::Integrity, fmt::format("{}: not a regular file", path));
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  // A buffer the size of the file, up to 1 MiB, not zero-filled: a watchdog verifying a
  // release hashes mostly small files, and zeroing 1 MiB for each (256 fresh pages) was the
  // largest cost of its switch.
  size_t cap = 1 << 20;
  if (st.st_size >= 0 && static_cast<uint64_t>(st.st_size) < cap)
    cap = std::max<size_t>(static_cast<size_t>(st.st_size) + 1, 4096);
  std::unique_ptr<char[]> buf(new char[cap]);
  Status result = ok_status();
  while (true) {
    ssize_t n = ::read(fd, buf.get(), cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) result = err(Exit::Share, fmt::format("read({}): {}", path, errno_str(errno)));
    if (n <= 0) break;
    chunk(buf.get(), static_cast<size_t>(n));
    if (dest_fd >= 0) result = write_all(dest_fd, buf.get(), static_cast<size_t>(n), dest_name);
    if (!result) break;
  }
  ::close(fd);
  return result;
}

}  // namespace nfsup

namespace nfsup {

int make_symlink(const std::string& target, const std::string& path) {
  return ::symlink(target.c_str(), path.c_str()) == 0 ? 0 : errno;
}

int make_temp_file(std::string* tmpl, int* fd) {
  *fd = ::mkostemp(tmpl->data(), O_CLOEXEC);
  return *fd < 0 ? errno : 0;
}

int create_excl(const std::string& path, uint32_t mode, int* fd) {
  *fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  return *fd < 0 ? errno : 0;
}

int create_trunc(const std::string& path, uint32_t mode, int* fd) {
  *fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  return *fd < 0 ? errno : 0;
}

int chmod_fd(int fd, uint32_t mode) { return ::fchmod(fd, mode) == 0 ? 0 : errno; }
int sync_fd(int fd) { return ::fsync(fd) == 0 ? 0 : errno; }
int close_fd(int fd) { return ::close(fd) == 0 ? 0 : errno; }

}  // namespace nfsup
