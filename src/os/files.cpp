// nfsup os: real file-system implementation (POSIX, NFS-aware).
#include "files.h"
#include "files_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
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

Error fs_error(std::string_view op, const std::string& path, int e) {
  if (e == ELOOP)
    return err(Exit::Integrity,
               fmt::format("{}({}): a symlink on the share (nfsup never follows one)", op, path));
  return err(Exit::Share, fmt::format("{}({}): {}", op, path, errno_str(e)));
}

static Error sys_err(std::string_view op, const std::string& path, int e) { return fs_error(op, path, e); }

FileInfo to_info(const struct stat& st) {
  FileInfo fi;
  if (S_ISREG(st.st_mode)) fi.type = FileInfo::File;
  else if (S_ISDIR(st.st_mode)) fi.type = FileInfo::Dir;
  else if (S_ISLNK(st.st_mode)) fi.type = FileInfo::Symlink;
  fi.size = static_cast<uint64_t>(st.st_size);
  fi.mode = st.st_mode & 07777;
  fi.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  fi.nlink = st.st_nlink;
  fi.ino = st.st_ino;
  fi.uid = st.st_uid;
  fi.gid = st.st_gid;
  return fi;
}

NFSUP_HOT RealFs::RealFs(std::string tmp_tag) : tag_(std::move(tmp_tag)) {}

void RealFs::confine(const std::string& root) {
  root_ = root;
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

RealFs::At::At(At&& o) noexcept {
  fd = o.fd;
  name = std::move(o.name);
  error = o.error;
  bad = std::move(o.bad);
  o.fd = AT_FDCWD;
}

RealFs::At::~At() {
  if (fd >= 0) ::close(fd);
}

// ---- Resolving beneath the share root
//
// A path below the root is opened one directory at a time from the root with O_NOFOLLOW, or in
// one openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) call where the kernel has it (Linux 5.6):
// a symlink planted anywhere under the share (inbox/<host>, rollouts, objects/<xx>) makes the
// operation fail with ELOOP instead of reaching outside the share. The root itself is the
// operator's path and may be a symlink. The root is opened anew for each operation: a held
// descriptor would keep pointing at a mount point's old directory after a remount.

namespace {
std::atomic<bool> g_no_openat2{false};
std::atomic<bool> g_force_walk{false};

// Walks `rel` below `rfd` one directory at a time; the descriptor of the last one, or -1 with
// errno set and *failed the prefix that failed.
int walk_beneath(int rfd, const std::string& rel, std::string* failed, int access) {
  int cur = rfd;
  std::string done;
  for (const auto& comp : split(rel, '/')) {
    if (comp.empty()) continue;
    done += (done.empty() ? "" : "/") + comp;
    bool dots = comp == "." || comp == "..";  // never written by nfsup; refused like a symlink
    int next = dots ? -1 : ::openat(cur, comp.c_str(), access | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = dots ? EXDEV : errno;
    if (cur != rfd) ::close(cur);
    if (next < 0) {
      // A symlink to a directory fails with ELOOP or (with O_DIRECTORY) ENOTDIR; say which.
      struct stat st{};
      if (e == ENOTDIR && ::fstatat(rfd, done.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) e = ELOOP;
      if (e == EXDEV) e = ELOOP;
      *failed = done;
      errno = e;
      return -1;
    }
    cur = next;
  }
  if (cur == rfd) return ::fcntl(rfd, F_DUPFD_CLOEXEC, 0);
  return cur;
}

int open_beneath(int rfd, const std::string& rel, std::string* failed, int access) {
#if defined(SYS_openat2) && __has_include(<linux/openat2.h>)
  if (!g_no_openat2.load(std::memory_order_relaxed) && !g_force_walk.load(std::memory_order_relaxed)) {
    struct open_how how{};
    how.flags = static_cast<uint64_t>(access | O_DIRECTORY | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    long fd = ::syscall(SYS_openat2, rfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    int e = errno;
    if (e == ENOSYS || e == EPERM || e == E2BIG || e == EINVAL) g_no_openat2.store(true);
    else if (e == ENOENT || e == EACCES || e == EIO || e == ESTALE || e == ETIMEDOUT) {
      *failed = rel;
      errno = e;
      return -1;
    }
    // ELOOP, ENOTDIR, EXDEV, EAGAIN: the walk names the component that is in the way.
  }
#endif
  return walk_beneath(rfd, rel, failed, access);
}
}  // namespace

void fs_force_walk_for_tests(bool on) { g_force_walk.store(on); }

RealFs::At RealFs::at(const std::string& path, bool light) const {
  At a;
  if (root_.empty() || path.size() <= root_.size() + 1 || path.compare(0, root_.size(), root_) != 0 ||
      (path[root_.size()] != '/' && root_ != "/")) {
    a.name = path;
    return a;
  }
  std::string rel = path.substr(root_ == "/" ? 1 : root_.size() + 1);
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  auto slash = rel.rfind('/');
  a.name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  int access = light ? O_PATH : O_RDONLY;
  int rfd = ::open(root_.c_str(), access | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) {
    a.error = errno;
    a.bad = root_;
    return a;
  }
  if (slash == std::string::npos) {
    a.fd = rfd;
    return a;
  }
  std::string failed;
  a.fd = open_beneath(rfd, rel.substr(0, slash), &failed, access);
  if (a.fd < 0) {
    a.error = errno;
    a.bad = path_join(root_, failed);
  }
  ::close(rfd);
  return a;
}

// The error of resolving a's directory, for operation `op` on `path`.
Error at_err(std::string_view op, const RealFs::At& a, const std::string& path) {
  if (a.error == ELOOP)
    return err(Exit::Integrity, fmt::format("{}: not a directory (a symlink?); nfsup never follows a symlink on the "
                                            "share (refusing to {} {})",
                                            a.bad, op, path));
  return sys_err(op, a.bad == path ? path : a.bad, a.error);
}

std::string RealFs::temp_for(const std::string& target) {
  return path_join(dirname_of(target),
                   fmt::format(".tmp.{}.{}.{}", tag_, getpid(), counter_.fetch_add(1)));
}

// The name of `full` (a sibling of a.name) as seen from a.fd.
std::string sibling(const RealFs::At& a, const std::string& full) {
  return a.fd == AT_FDCWD ? full : basename_of(full);
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

// Share files are opened without following a symlink and without blocking (a FIFO planted
// under a file's name would otherwise hang the open until a writer came), and read only if
// fstat says they are regular files.
constexpr int kShareOpenFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;

static std::optional<Error> not_regular(int fd, const std::string& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return sys_err("fstat", path, errno);
  if (!S_ISREG(st.st_mode)) return err(Exit::Integrity, fmt::format("{}: not a regular file", path));
  return std::nullopt;
}

// Reads a.name below directory `dfd` as a share file: no symlink followed, no FIFO waited on,
// only a regular file read; missing is "not found", not an error.
static Result<std::optional<std::string>> read_regular_at(int dfd, const std::string& name, const std::string& path,
                                                          size_t max_bytes) {
  int fd = ::openat(dfd, name.c_str(), kShareOpenFlags);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    if (errno == ELOOP) return fs_error("open", path, ELOOP);
    return sys_err("open", path, errno);
  }
  if (auto e = not_regular(fd, path)) {
    ::close(fd);
    return *e;
  }
  auto r = read_fd(fd, path, max_bytes);
  ::close(fd);
  return r;
}

Result<std::optional<std::string>> RealFs::read_file(const std::string& path, size_t max_bytes) {
  StallGuard::Section g("read", path);
  At a = at(path);
  if (a.error == ENOENT) return std::optional<std::string>();
  if (a.error) return at_err("read", a, path);
  return read_regular_at(a.fd, a.name, path, max_bytes);
}

int RealFs::rename_errno(const std::string& from, const std::string& to) {
  At a = at(from), b = at(to);
  if (a.error || b.error) return a.error ? a.error : b.error;
  return ::renameat(a.fd, a.name.c_str(), b.fd, b.name.c_str()) == 0 ? 0 : errno;
}

int RealFs::link(const std::string& from, const std::string& to) {
  At a = at(from), b = at(to);
  if (a.error || b.error) return a.error ? a.error : b.error;
  return ::linkat(a.fd, a.name.c_str(), b.fd, b.name.c_str(), 0) == 0 ? 0 : errno;
}

int RealFs::symlink(const std::string& target, const std::string& path) {
  At a = at(path);
  if (a.error) return a.error;
  return ::symlinkat(target.c_str(), a.fd, a.name.c_str()) == 0 ? 0 : errno;
}

Result<std::optional<FileInfo>> RealFs::stat(const std::string& path) {
  StallGuard::Section g("stat", path);
  At a = at(path);
  if (a.error == ENOENT) return std::optional<FileInfo>();
  if (a.error) return at_err("stat", a, path);
  struct stat st{};
  if (::fstatat(a.fd, a.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::optional<FileInfo>();
    return sys_err("stat", path, errno);
  }
  return std::optional<FileInfo>(to_info(st));
}

Result<std::vector<DirEntry>> RealFs::list_dir(const std::string& path) {
  StallGuard::Section g("list", path);
  At a = at(path);
  if (a.error) return at_err("list", a, path);
  int fd = ::openat(a.fd, a.name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (a.fd == AT_FDCWD ? 0 : O_NOFOLLOW));
  DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!d) {
    int e = errno;
    if (fd >= 0) ::close(fd);
    return sys_err("opendir", path, e);
  }
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
  At a = at(path);
  if (a.error) return at_err("mkdir", a, path);
  if (::mkdirat(a.fd, a.name.c_str(), mode) != 0 && errno != EEXIST) return sys_err("mkdir", path, errno);
  return ok_status();
}

Status RealFs::chmod_dir(const std::string& path, uint32_t mode) {
  StallGuard::Section g("chmod", path);
  At a = at(path);
  if (a.error) return at_err("chmod", a, path);
  int fd = ::openat(a.fd, a.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return sys_err("open", path, errno);
  int rc = ::fchmod(fd, mode), e = errno;
  ::close(fd);
  return rc == 0 ? ok_status() : sys_err("chmod", path, e);
}

Status RealFs::rename(const std::string& from, const std::string& to) {
  StallGuard::Section g("rename", to);
  At a = at(from), b = at(to);
  if (a.error) return at_err("rename", a, from);
  if (b.error) return at_err("rename", b, to);
  if (::renameat(a.fd, a.name.c_str(), b.fd, b.name.c_str()) != 0) {
    int e = errno;
    // A lost reply after a successful rename leaves `from` gone and `to` present.
    struct stat st{};
    if (::fstatat(a.fd, a.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT &&
        ::fstatat(b.fd, b.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      return ok_status();
    return sys_err("rename", from + " -> " + to, e);
  }
  return ok_status();
}

Result<bool> RealFs::unlink(const std::string& path) {
  StallGuard::Section g("unlink", path);
  At a = at(path);
  if (a.error == ENOENT) return false;
  if (a.error) return at_err("unlink", a, path);
  if (::unlinkat(a.fd, a.name.c_str(), 0) != 0) {
    if (errno == ENOENT) return false;
    return sys_err("unlink", path, errno);
  }
  return true;
}

Status RealFs::rmdir(const std::string& path) {
  StallGuard::Section g("rmdir", path);
  At a = at(path);
  if (a.error == ENOENT) return ok_status();
  if (a.error) return at_err("rmdir", a, path);
  if (::unlinkat(a.fd, a.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return sys_err("rmdir", path, errno);
  return ok_status();
}

Result<std::optional<std::string>> RealFs::probe(const std::string& dir, const std::string& name,
                                                 size_t max_bytes) {
  int64_t ignored = 0;
  return probe_in(dir, name, max_bytes, &ignored);
}

Result<std::optional<std::string>> RealFs::probe_in(const std::string& dir, const std::string& name, size_t max_bytes,
                                                    int64_t* dir_mtime_ns) {
  StallGuard::Section g("probe", dir);
  *dir_mtime_ns = 0;
  std::string path = path_join(dir, name);
  At a = at(path);
  if (a.error) return at_err("open", a, path);
  if (a.fd == AT_FDCWD) {  // not below a confine root: open(dir), openat(name) as before
    a.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (a.fd < 0) return sys_err("open", dir, errno);
    a.name = name;
  }
  // (the attributes the open just revalidated: no further round trip)
  if (struct stat st{}; ::fstat(a.fd, &st) == 0)
    *dir_mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return read_regular_at(a.fd, a.name, path, max_bytes);
}

Result<bool> RealFs::touch(const std::string& path) {
  StallGuard::Section g("touch", path);
  At a = at(path, true);
  if (a.error == ENOENT) return false;
  if (a.error) return at_err("touch", a, path);
  if (::utimensat(a.fd, a.name.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ESTALE) return false;
    return sys_err("touch", path, errno);
  }
  return true;
}

NFSUP_HOT bool certainly_absent(const char* dir, const char* name) {
  int dfd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  int fd = ::openat(dfd, name, kShareOpenFlags);
  int e = errno;
  if (fd >= 0) ::close(fd);
  ::close(dfd);
  return fd < 0 && e == ENOENT;
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
