// nfsup core: real file-system implementation (POSIX, NFS-aware).
#include "fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

namespace nfsup {

std::string dirname_of(const std::string& p) {
  auto s = p.rfind('/');
  if (s == std::string::npos) return ".";
  if (s == 0) return "/";
  return p.substr(0, s);
}

std::string basename_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

NFSUP_HOT std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

static Error sys_err(std::string_view op, const std::string& path, int e) {
  return err(Exit::Share, fmt::format("{}({}): {}", op, path, errno_str(e)));
}

static FileInfo to_info(const struct stat& st) {
  FileInfo fi;
  if (S_ISREG(st.st_mode)) fi.type = FileInfo::File;
  else if (S_ISDIR(st.st_mode)) fi.type = FileInfo::Dir;
  else if (S_ISLNK(st.st_mode)) fi.type = FileInfo::Symlink;
  fi.size = static_cast<uint64_t>(st.st_size);
  fi.mode = st.st_mode & 07777;
  fi.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  fi.nlink = st.st_nlink;
  fi.ino = st.st_ino;
  return fi;
}

NFSUP_HOT RealFs::RealFs(std::string tmp_tag) : tag_(std::move(tmp_tag)) {}

std::string RealFs::temp_for(const std::string& target) {
  return path_join(dirname_of(target),
                   fmt::format(".tmp.{}.{}.{}", tag_, getpid(), counter_.fetch_add(1)));
}

static Result<std::optional<std::string>> read_fd(int fd, const std::string& path, size_t max_bytes) {
  // Reads straight into the string, growing it as needed: no large buffer on the stack (each
  // page of one would be touched by stack-clash probes on every call).
  std::string out;
  size_t len = 0;
  out.resize(4096);
  while (true) {
    if (len == out.size()) out.resize(out.size() * 2);
    ssize_t n = ::read(fd, out.data() + len, out.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      return sys_err("read", path, e);
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
    if (len > max_bytes)
      return err(Exit::Integrity, fmt::format("{}: file is larger than the {} byte limit", path, max_bytes));
  }
  out.resize(len);
  return std::optional<std::string>(std::move(out));
}

Result<std::optional<std::string>> RealFs::read_file(const std::string& path, size_t max_bytes) {
  StallGuard::Section g("read", path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return sys_err("open", path, errno);
  }
  auto r = read_fd(fd, path, max_bytes);
  ::close(fd);
  return r;
}

Status RealFs::write_temp(const std::string& tmp, std::string_view data, uint32_t mode) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return sys_err("open", tmp, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return sys_err("write", tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) { /* umask may have narrowed it; best effort */ }
  if (durable_ && ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return sys_err("fsync", tmp, e);
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return sys_err("close", tmp, e);
  }
  return ok_status();
}

Status RealFs::write_atomic(const std::string& path, std::string_view data, uint32_t mode) {
  StallGuard::Section g("write", path);
  std::string tmp = temp_for(path);
  if (auto s = write_temp(tmp, data, mode); !s) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return sys_err("rename", path, e);
  }
  return ok_status();
}

Result<bool> RealFs::publish_new(const std::string& path, std::string_view data, uint32_t mode) {
  StallGuard::Section g("create", path);
  std::string tmp = temp_for(path);
  if (auto s = write_temp(tmp, data, mode); !s) return s.error();
  int rc = ::link(tmp.c_str(), path.c_str());
  int e = errno;
  // link() may report failure although the server did it (lost reply); trust the inode instead.
  struct stat a{}, b{};
  bool ours = ::stat(tmp.c_str(), &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
              a.st_dev == b.st_dev;
  ::unlink(tmp.c_str());
  if (rc == 0 || ours) return true;
  if (e == EEXIST) return false;
  return sys_err("link", path, e);
}

Result<std::optional<FileInfo>> RealFs::stat(const std::string& path) {
  StallGuard::Section g("stat", path);
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<FileInfo>();
    return sys_err("stat", path, errno);
  }
  return std::optional<FileInfo>(to_info(st));
}

Result<std::vector<DirEntry>> RealFs::list_dir(const std::string& path) {
  StallGuard::Section g("list", path);
  DIR* d = ::opendir(path.c_str());
  if (!d) return sys_err("opendir", path, errno);
  std::vector<DirEntry> out;
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    DirEntry e;
    e.name = n;
    switch (de->d_type) {
      case DT_REG: e.type = FileInfo::File; break;
      case DT_DIR: e.type = FileInfo::Dir; break;
      case DT_LNK: e.type = FileInfo::Symlink; break;
      case DT_UNKNOWN: {
        struct stat st{};
        if (::fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) e.type = to_info(st).type;
        break;
      }
      default: e.type = FileInfo::Other;
    }
    out.push_back(std::move(e));
    errno = 0;
  }
  int e = errno;
  ::closedir(d);
  if (e != 0) return sys_err("readdir", path, e);
  return out;
}

Status RealFs::mkdir(const std::string& path, uint32_t mode) {
  StallGuard::Section g("mkdir", path);
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return sys_err("mkdir", path, errno);
  return ok_status();
}

Status RealFs::rename(const std::string& from, const std::string& to) {
  StallGuard::Section g("rename", to);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    int e = errno;
    // A lost reply after a successful rename leaves `from` gone and `to` present.
    struct stat st{};
    if (::lstat(from.c_str(), &st) != 0 && errno == ENOENT && ::lstat(to.c_str(), &st) == 0)
      return ok_status();
    return sys_err("rename", from + " -> " + to, e);
  }
  return ok_status();
}

Result<bool> RealFs::unlink(const std::string& path) {
  StallGuard::Section g("unlink", path);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return sys_err("unlink", path, errno);
  }
  return true;
}

Status RealFs::rmdir(const std::string& path) {
  StallGuard::Section g("rmdir", path);
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return sys_err("rmdir", path, errno);
  return ok_status();
}

Result<std::optional<std::string>> RealFs::probe(const std::string& dir, const std::string& name,
                                                 size_t max_bytes) {
  StallGuard::Section g("probe", dir);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return sys_err("open", dir, errno);
  int fd = ::openat(dfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int e = errno;
    ::close(dfd);
    if (e == ENOENT) return std::optional<std::string>();
    return sys_err("open", path_join(dir, name), e);
  }
  ::close(dfd);
  auto r = read_fd(fd, path_join(dir, name), max_bytes);
  ::close(fd);
  return r;
}

NFSUP_HOT bool certainly_absent(const char* dir, const char* name) {
  int dfd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  int fd = ::openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int e = errno;
  if (fd >= 0) ::close(fd);
  ::close(dfd);
  return fd < 0 && e == ENOENT;
}

void crash_point(const char* point) {
  static const char* want = std::getenv("NFSUP_CRASH_AT");
  if (want && std::strcmp(want, point) == 0) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

void stop_point(const char* point) {
  static const char* want = std::getenv("NFSUP_STOP_AT");
  if (want && std::strcmp(want, point) == 0) ::raise(SIGSTOP);
}

// ---- StallGuard: one monitor thread, one in-flight section at a time per thread is enough.
namespace {
std::mutex g_mu;
int64_t g_limit_ms = 0;
std::string g_program;
std::atomic<int64_t> g_since{0};
std::atomic<int> g_depth{0};
std::atomic<bool> g_started{false};  // no monitor thread (the watchdog): sections cost nothing
std::string g_what;
}  // namespace

void StallGuard::start(int64_t limit_ms, std::string program) {
  {
    std::lock_guard<std::mutex> l(g_mu);
    if (g_limit_ms != 0) {
      g_limit_ms = limit_ms;
      return;
    }
    g_limit_ms = limit_ms;
    g_program = std::move(program);
  }
  g_started.store(true);
  std::thread([] {
    while (true) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      int64_t since = g_since.load();
      if (since == 0) continue;
      int64_t limit;
      std::string what, prog;
      {
        std::lock_guard<std::mutex> l(g_mu);
        limit = g_limit_ms;
        what = g_what;
        prog = g_program;
      }
      if (boot_ms() - since > limit) {
        std::string msg = fmt::format("{}: error: {}: the share did not answer within {} (hung or unreachable mount)\n",
                                      prog, what, format_duration_ms(limit));
        (void)!::write(2, msg.data(), msg.size());
        ::_exit(static_cast<int>(Exit::Share));
      }
    }
  }).detach();
}

StallGuard::Section::Section(const char* verb, const std::string& path) {
  if (g_depth.fetch_add(1) == 0 && g_started.load(std::memory_order_relaxed)) {
    {
      std::lock_guard<std::mutex> l(g_mu);
      g_what = fmt::format("{} {}", verb, path);
    }
    g_since.store(boot_ms());
  }
}

StallGuard::Section::~Section() {
  if (g_depth.fetch_sub(1) == 1) g_since.store(0);
}

}  // namespace nfsup
