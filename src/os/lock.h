// nfsup os: "is it running" as a lock, not a PID file (s6's supervise/lock).
//
// The state_dir lock keeps a watchdog daemon and cron ticks (or two daemons) from working on
// one state_dir at once. It lives on local disk only (flock over NFS is not to be trusted).
// Its holder writes what it is into the file ("daemon PID", "check PID") for the message of
// whoever finds it taken.
#pragma once

#include <string>
#include <string_view>

#include "util.h"

namespace nfsup {

class LockFile {
 public:
  /// Opens (creating) the lock file `path`; when its directory is missing, creates that
  /// directory (mode 0755, one level) and tries again. Nothing is locked yet.
  static Result<LockFile> open(const std::string& path);
  LockFile(LockFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  LockFile& operator=(LockFile&&) = delete;
  LockFile(const LockFile&) = delete;
  ~LockFile();  ///< closes the file, which releases the lock (unless keep() was called)

  /// An exclusive flock without waiting: true when this process now holds it.
  bool try_lock();
  /// What the holder wrote into the file ("" none), trailing spaces and newlines cut.
  std::string holder() const;
  /// Writes "what PID\n" into the file (replacing what was there), for others to read.
  void note_holder(std::string_view what);
  /// Empties the note (left by a holder that is gone).
  void clear_note();
  /// Holds the lock until the process ends: the descriptor (close-on-exec) is never closed.
  void keep() { fd_ = -1; }
  const std::string& path() const { return path_; }

 private:
  LockFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace nfsup
