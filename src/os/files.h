// nfsup os: the file-system interface the protocol code talks to, and its real implementation.
//
// One writer, write_file(), with its behaviours as flags (systemd's write_string_file_atomic_at):
// a temp file in the same directory (named by host and pid), written, optionally fsynced,
// closed (checked: NFS reports ENOSPC and EDQUOT late), then published by rename(), by link()
// (no_replace) or by renameat2(RENAME_EXCHANGE) (exchange); one failure path unlinks the temp.
// There is no in-place mode: every write is atomic for readers. A reported rename/link failure
// may be false on NFS (the server did it, the reply was lost), so callers that care re-read.
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
  uint32_t uid = 0, gid = 0;
};

/// write_file() behaviours; combine with |. Without kWriteSync the write is atomic for readers
/// but not durable across a crash.
enum WriteFlags : unsigned {
  kWriteSync = 1u << 0,       ///< fsync the file before publishing it
  kWriteSyncDir = 1u << 1,    ///< fsync the directory after publishing ("sync the rename, too")
  kWriteNoReplace = 1u << 2,  ///< publish by link(): never replace; the result is false if it existed
  kWriteExchange = 1u << 3,   ///< rewrite a spare `.NAME.spare` in place, swap it in (see write_file)
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
  /// probe(), also giving the modification time of `dir` (ns) as the open of `dir` revalidated
  /// it: a change of anything directly in `dir` (a rename onto the pointer) changes it. 0 where
  /// the file system cannot tell (then every caller must assume a change).
  virtual Result<std::optional<std::string>> probe_in(const std::string& dir, const std::string& name, size_t max_bytes,
                                                      int64_t* dir_mtime_ns) {
    *dir_mtime_ns = 0;
    return probe(dir, name, max_bytes);
  }
  /// Sets the times of the existing file `path` to now as its file system stamps them (on NFS
  /// one SETATTR, server time), never through a symlink; the directory of `path` is reached
  /// without revalidating it (a file only this process replaces). false when `path` does not
  /// exist, or where the file system cannot touch (then the caller rewrites it).
  virtual Result<bool> touch(const std::string& path) {
    (void)path;
    return false;
  }
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
  /// The one writer (see the file comment). Returns false only with kWriteNoReplace when `path`
  /// existed. kWriteExchange is for a local file only its writer reads: the data goes into the
  /// spare beside it, rewritten in place and fsynced, and renameat2(RENAME_EXCHANGE) swaps the
  /// two names (no inode freed or allocated; the spare then holds the previous content); it
  /// falls back to a fresh temp when the spare is not a plain file of ours, and to rename()
  /// when the target does not exist yet or the file system cannot exchange.
  Result<bool> write_file(const std::string& path, std::string_view data, unsigned flags, uint32_t mode = 0644);
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
  Result<std::optional<std::string>> probe_in(const std::string& dir, const std::string& name, size_t max_bytes,
                                              int64_t* dir_mtime_ns) override;
  Result<bool> touch(const std::string& path) override;

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
  /// light: directories opened O_PATH (no open of the directory itself: on NFS no
  /// close-to-open revalidation, so no GETATTR for each directory on the way).
  At at(const std::string& path, bool light = false) const;

 private:
  Status write_temp(int dfd, const std::string& tmp, const std::string& shown, std::string_view data, uint32_t mode,
                    bool sync);
  Result<bool> publish(At& a, const std::string& path, const std::string& tmp, unsigned flags);
  Result<int> exchange_spare(At& a, const std::string& path, std::string_view data, uint32_t mode);
  std::string root_;  ///< the confine root ("" none)
  std::string tag_;
  bool durable_ = true;
  std::atomic<uint64_t> counter_{0};
};

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

/// Local files (never the share): the whole file or nullopt when missing; and write_file() on
/// a local path with a host-tagged temp name.
Result<std::optional<std::string>> read_local(const std::string& path, size_t max = 16 * 1024 * 1024);
Result<bool> write_local(const std::string& path, std::string_view data, unsigned flags, uint32_t mode);
/// Local atomic write (temp in the same directory, fsync, rename), keeping `mode`.
Status write_local_atomic(const std::string& path, std::string_view data, uint32_t mode);
/// The same without the fsync, for a local file recomputed from the share whenever it is
/// needed (a crash may lose the last version, never leave a torn one).
Status write_local_derived(const std::string& path, std::string_view data, uint32_t mode);
/// A local file that only its writer reads (the watchdog's state, read back only by the holder
/// of the state_dir lock), replaced without a new inode: write_file(kWriteSync|kWriteExchange).
/// Every replaced file used to free one inode and allocate another: on ext4 without a journal
/// each allocation then walks the inodes freed in the last minutes, so a fleet of watchdogs on
/// one disk slowed each other's every create.
Status write_local_exchange(const std::string& path, std::string_view data, uint32_t mode);

/// Reads the regular file `path` in chunks of up to 1 MiB (never through a symlink, never
/// blocking on a FIFO, the type checked on the open file so nothing is swapped in between),
/// handing each to `chunk`; with dest_fd >= 0 also appends each to it (named dest_name in
/// errors). Missing or a symlink, or not a regular file: Exit::Integrity; read or write: Share.
Status stream_file(const std::string& path, const std::function<void(const char*, size_t)>& chunk, int dest_fd,
                   const std::string& dest_name);

/// Local-file primitives (state_dir, configuration, keys, a release's source tree): 0 or the
/// errno of the failure, so that each caller words its own error. Paths are taken as given.
/// The whole file `path` into *out (following symlinks); EFBIG when it exceeds max_bytes.
int read_all(const std::string& path, size_t max_bytes, std::string* out);
/// At most max_bytes of a file that is never opened through a symlink ("" when unreadable).
std::string read_head_nofollow(const std::string& path, size_t max_bytes);
/// The same following symlinks, as 0 or an errno (a file shorter than max_bytes: all of it).
int read_head(const std::string& path, size_t max_bytes, std::string* out);
int local_lstat(const std::string& path, FileInfo* out);  ///< never follows a symlink
int local_stat(const std::string& path, FileInfo* out);   ///< follows symlinks
int make_dir(const std::string& path, uint32_t mode);     ///< 0 also when it exists
int make_new_dir(const std::string& path, uint32_t mode); ///< EEXIST when it exists
int rename_path(const std::string& from, const std::string& to);
int unlink_path(const std::string& path);
int remove_dir(const std::string& path);
int chmod_path(const std::string& path, uint32_t mode);
int chown_path(const std::string& path, uint32_t uid, uint32_t gid);
int read_link(const std::string& path, std::string* out);
int real_path(const std::string& path, std::string* out);
int make_symlink(const std::string& target, const std::string& path);
/// A second name for an existing file (link(2): never follows a symlink `from`).
int hard_link(const std::string& from, const std::string& to);
/// Writes back every dirty page of the file system that holds `path` (syncfs(2)).
int sync_filesystem(const std::string& path);
/// A new file named from `tmpl` (ending in XXXXXX, replaced in place), open for writing
/// (mkstemp, mode 0600, close-on-exec).
int make_temp_file(std::string* tmpl, int* fd);
/// A new file open for writing (O_CREAT|O_EXCL, never through a symlink, close-on-exec).
int create_excl(const std::string& path, uint32_t mode, int* fd);
/// Creates or truncates `path` for writing (O_TRUNC, close-on-exec).
int create_trunc(const std::string& path, uint32_t mode, int* fd);
int chmod_fd(int fd, uint32_t mode);
int sync_fd(int fd);
int close_fd(int fd);
/// The names in `dir` (without . and ..), sorted as readdir returns them.
int list_names(const std::string& dir, std::vector<std::string>* out);

std::string dirname_of(const std::string& p);
std::string basename_of(const std::string& p);
std::string path_join(const std::string& a, const std::string& b);

}  // namespace nfsup
