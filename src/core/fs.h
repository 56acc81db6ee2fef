// nfsup core: the file-system interface the protocol code talks to, and its real implementation.
//
// Every write on the share goes through write_atomic() or publish_new(): a temp file in the
// same directory (named by host and pid), fsync, close (both checked: NFS reports ENOSPC and
// EDQUOT late), then rename() or link(). Nothing is written in place. A reported rename/link
// failure may be false on NFS (the server did it, the reply was lost), so callers that care
// re-read the target.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util.h"

namespace nfsup {

struct FileInfo {
  enum Type { File, Dir, Symlink, Other } type = Other;
  uint64_t size = 0;
  uint32_t mode = 0;        ///< permission bits only
  int64_t mtime_ms = 0;     ///< server-stamped on NFS; compare only with other server stamps
  uint64_t nlink = 0;
  uint64_t ino = 0;
};

struct DirEntry {
  std::string name;
  FileInfo::Type type = FileInfo::Other;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  /// The whole file, or nullopt when it does not exist. Files over max_bytes are an error.
  virtual Result<std::optional<std::string>> read_file(const std::string& path, size_t max_bytes) = 0;
  /// Replaces `path` atomically (temp + fsync + rename); `mode` for the new file.
  virtual Status write_atomic(const std::string& path, std::string_view data, uint32_t mode = 0644) = 0;
  /// Creates `path` with `data` only if it does not exist (temp + fsync + link). Returns false if it existed.
  virtual Result<bool> publish_new(const std::string& path, std::string_view data, uint32_t mode = 0644) = 0;
  virtual Result<std::optional<FileInfo>> stat(const std::string& path) = 0;  ///< lstat
  virtual Result<std::vector<DirEntry>> list_dir(const std::string& path) = 0;
  virtual Status mkdir(const std::string& path, uint32_t mode = 0755) = 0;  ///< ok if it exists
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Result<bool> unlink(const std::string& path) = 0;  ///< false if it was already gone
  virtual Status rmdir(const std::string& path) = 0;
  /// The cheapest cache-defeating look for `name` in `dir`: open(dir), openat(name)+read, close.
  /// Three share calls when the file is absent (nfs-notes §1 (b)).
  virtual Result<std::optional<std::string>> probe(const std::string& dir, const std::string& name,
                                                   size_t max_bytes) = 0;
  /// From now on, paths strictly below `root` (the share) are resolved beneath it and never
  /// through a symlink: not in a directory on the way, not as the final name. Share calls this.
  virtual void confine(const std::string& root) { (void)root; }
  /// chmod of the directory `path` itself (never of a symlink's target).
  virtual Status chmod_dir(const std::string& path, uint32_t mode) {
    (void)path, (void)mode;
    return ok_status();
  }
};

/// The real POSIX implementation. Temp names carry host and pid so hosts never collide.
class RealFs : public FileSystem {
 public:
  explicit RealFs(std::string tmp_tag);
  /// Off: write_atomic skips the fsync (still atomic for readers, not durable across a crash);
  /// for local files derived from the share and rewritten whenever they change.
  void set_durable(bool on) { durable_ = on; }
  Result<std::optional<std::string>> read_file(const std::string& path, size_t max_bytes) override;
  Status write_atomic(const std::string& path, std::string_view data, uint32_t mode) override;
  Result<bool> publish_new(const std::string& path, std::string_view data, uint32_t mode) override;
  Result<std::optional<FileInfo>> stat(const std::string& path) override;
  Result<std::vector<DirEntry>> list_dir(const std::string& path) override;
  Status mkdir(const std::string& path, uint32_t mode) override;
  Status rename(const std::string& from, const std::string& to) override;
  Result<bool> unlink(const std::string& path) override;
  Status rmdir(const std::string& path) override;
  Result<std::optional<std::string>> probe(const std::string& dir, const std::string& name,
                                           size_t max_bytes) override;

  void confine(const std::string& root) override;
  Status chmod_dir(const std::string& path, uint32_t mode) override;

  /// A unique temp path in the directory of `target`.
  std::string temp_for(const std::string& target);
  /// Creates the new file `path` for writing (O_EXCL): its descriptor, or an error.
  Result<int> create_new(const std::string& path, uint32_t mode);
  /// link(from, to), rename(from, to) and symlink(target, path): 0 or the errno of the failure (ELOOP when a
  /// directory on the way below the share root is a symlink).
  int link(const std::string& from, const std::string& to);
  int rename_errno(const std::string& from, const std::string& to);
  int symlink(const std::string& target, const std::string& path);

  /// An open directory and a name in it: where an operation on a path acts. Below the confine
  /// root, the directory was opened beneath it without following symlinks; elsewhere it is
  /// AT_FDCWD and the name is the whole path.
  struct At {
    int fd = AT_FDCWD;     ///< or an owned descriptor
    std::string name;
    int error = 0;         ///< the errno of resolving the directory (ENOENT: it does not exist)
    std::string bad;       ///< the path that failed to resolve
    At() = default;
    At(const At&) = delete;
    At& operator=(const At&) = delete;
    At(At&& o) noexcept;
    ~At();
  };
  At at(const std::string& path) const;

 private:
  Status write_temp(int dfd, const std::string& tmp, const std::string& shown, std::string_view data, uint32_t mode);
  std::string root_;  ///< the confine root ("" none)
  std::string tag_;
  bool durable_ = true;
  std::atomic<uint64_t> counter_{0};
};

/// Test-only fault points: when env NFSUP_CRASH_AT equals `point`, the process kills itself
/// with SIGKILL right there. Used by the crash-safety tests to stop a command between steps.
void crash_point(const char* point);
/// Test-only stall points: when env NFSUP_STOP_AT equals `point`, the process stops itself
/// (SIGSTOP) there until a SIGCONT, to test what another master does meanwhile.
void stop_point(const char* point);
/// The in-process fleet simulator (test/sim) replaces both: crash (may throw to end the
/// simulated master there) and stop (may run another party before returning). Null = env.
struct FaultHooks {
  void (*crash)(void* ctx, const char* point) = nullptr;
  void (*stop)(void* ctx, const char* point) = nullptr;
  void* ctx = nullptr;
};
void set_fault_hooks(const FaultHooks& h);

/// Guards a process that must never hang on the share (nfsup-install): if one guarded section
/// runs longer than the limit, the process prints `message` and exits with Exit::Share.
class StallGuard {
 public:
  static void start(int64_t limit_ms, std::string program);
  class Section {
   public:
    /// what = verb + " " + path, built only when the guard runs (nfsup-install).
    Section(const char* verb, const std::string& path);
    ~Section();
  };
};

/// The idle poll, kept lean (no allocation, no error text): open dir, openat name, close.
/// True only when dir opened and name is certainly absent (ENOENT); anything else (the file
/// exists, an error) is false and the caller looks properly.
bool certainly_absent(const char* dir, const char* name);

/// Tests only: resolve below the confine root by the openat walk even where openat2 exists.
void fs_force_walk_for_tests(bool on);

/// The error of system call `op` on `path`: "op(path): strerror", except that a symlink met
/// below the share root (ELOOP) is named as such.
Error fs_error(std::string_view op, const std::string& path, int e);

std::string dirname_of(const std::string& p);
std::string basename_of(const std::string& p);
std::string path_join(const std::string& a, const std::string& b);

}  // namespace nfsup
