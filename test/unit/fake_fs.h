// An in-memory nfsup::FileSystem for unit tests.
//
//  - files, directories and symlinks in one map keyed by normalized absolute path;
//  - mtimes come from a fake clock the test sets (set_now_ms / advance_ms);
//  - every FileSystem call is logged as (op, path), op being the method name;
//  - failure injection: fail(op_or_star, path, errno) makes that operation on that path fail
//    with Exit::Share and the message "op(path): strerror", exactly like RealFs reports errors.
//    `path` may be "*" (any path) or end in "/*" (anything below that directory).
//
// Semantics follow RealFs: write_atomic replaces the whole file or leaves it untouched,
// publish_new returns false when the target exists, unlink returns false when the file was
// already gone, mkdir/rmdir are idempotent, probe(dir, name) reads dir/name and fails when
// dir itself is missing. Setup helpers (add_file, add_dir, ...) are neither logged nor failed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fs.h"

namespace nfsup::test {

class FakeFs : public FileSystem {
 public:
  struct Call {
    std::string op;
    std::string path;
  };

  FakeFs();

  // ---- FileSystem
  Result<std::optional<std::string>> read_file(const std::string& path, size_t max_bytes) override;
  Status write_atomic(const std::string& path, std::string_view data, uint32_t mode = 0644) override;
  Result<bool> publish_new(const std::string& path, std::string_view data, uint32_t mode = 0644) override;
  Result<std::optional<FileInfo>> stat(const std::string& path) override;
  Result<std::vector<DirEntry>> list_dir(const std::string& path) override;
  Status mkdir(const std::string& path, uint32_t mode = 0755) override;
  Status rename(const std::string& from, const std::string& to) override;
  Result<bool> unlink(const std::string& path) override;
  Status rmdir(const std::string& path) override;
  Result<std::optional<std::string>> probe(const std::string& dir, const std::string& name,
                                           size_t max_bytes) override;

  // ---- setup and inspection (not logged, never failed)
  void add_dir(const std::string& path, uint32_t mode = 0755);  ///< creates missing parents
  void add_file(const std::string& path, std::string data, uint32_t mode = 0644);  ///< and parents
  void add_symlink(const std::string& path, std::string target);                     ///< and parents
  void remove(const std::string& path);  ///< recursive, silent
  bool exists(const std::string& path) const;
  std::optional<std::string> content(const std::string& path) const;  ///< files only
  std::optional<FileInfo> info(const std::string& path) const;
  std::vector<std::string> paths() const;  ///< every node except "/", sorted

  // ---- fake clock (milliseconds; stamped as mtime on every change)
  void set_now_ms(int64_t ms);
  void advance_ms(int64_t ms);
  int64_t now_ms() const;

  // ---- failure injection
  /// Makes `op` ("read_file", "write_atomic", ..., or "*") on `path` fail with `errnum`.
  /// `times` < 0 fails forever, otherwise only the next `times` matching calls.
  void fail(const std::string& op, const std::string& path, int errnum, int times = -1);
  void clear_failures();

  // ---- call log
  std::vector<Call> calls() const;
  /// Number of logged calls of `op` ("*" = any op), optionally only on `path`.
  size_t count(const std::string& op, const std::string& path = "") const;
  void clear_calls();

  /// Called (outside the lock) at the start of every FileSystem operation, after it is logged.
  /// Lets a test block an operation (a hung mount) or change the tree in between.
  std::function<void(const std::string& op, const std::string& path)> on_call;

  static std::string normalize(const std::string& path);

 private:
  struct Node {
    FileInfo::Type type = FileInfo::File;
    std::string data;  ///< file content or symlink target
    uint32_t mode = 0644;
    int64_t mtime_ms = 0;
    uint64_t ino = 0;
  };
  struct Rule {
    std::string op, path;
    int errnum = 0;
    int times = -1;
  };

  void enter(const std::string& op, const std::string& path);
  /// Consumes a matching failure rule for op on any of `paths`; returns errno or 0.
  int injected(const std::string& op, const std::vector<std::string>& paths);
  static Error sys_err(const std::string& op, const std::string& path, int e);
  /// 0 when every ancestor of path exists and is a directory; else ENOENT / ENOTDIR.
  int parent_state(const std::string& path) const;
  void touch_parent(const std::string& path);
  Node& put(const std::string& path, Node n);
  bool has_children(const std::string& path) const;
  void add_dir_locked(const std::string& path, uint32_t mode);

  mutable std::mutex mu_;
  std::map<std::string, Node> nodes_;
  std::vector<Rule> rules_;
  std::vector<Call> calls_;
  int64_t now_ms_ = 1'700'000'000'000;
  uint64_t next_ino_ = 100;
};

}  // namespace nfsup::test
