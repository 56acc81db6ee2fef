// nfsup os: the state_dir lock (flock on a local file).
#include "lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

namespace nfsup {

Result<LockFile> LockFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == ENOENT && ::mkdir(dirname_of(path).c_str(), 0755) == 0)  // first use
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return err(Exit::Usage, fmt::format("open({}): {}", path, errno_str(errno)));
  return LockFile(fd, path);
}

LockFile::~LockFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool LockFile::try_lock() { return fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0; }

std::string LockFile::holder() const {
  char buf[64] = {0};
  ssize_t n = fd_ < 0 ? -1 : ::pread(fd_, buf, sizeof buf - 1, 0);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void LockFile::note_holder(std::string_view what) {
  std::string t = fmt::format("{} {}\n", what, ::getpid());
  // (best effort: the note only improves another process's message)
  if (fd_ >= 0 && ::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, t.data(), t.size(), 0);
}

void LockFile::clear_note() {
  if (fd_ >= 0 && ::ftruncate(fd_, 0) != 0) { /* best effort, as note_holder */ }
}

}  // namespace nfsup
