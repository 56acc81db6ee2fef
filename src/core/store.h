// nfsup core: a host's local object store (state_dir/store/), the share's content addressing.
//
//   STATE/store/<xx>/<sha256>.<mode>   one file per content and mode, hashed on the way in
//   STATE/cache/<version>/             a release's run tree for this host's class: hard links
//                                      to store objects (plus its directories and symlinks)
//
// An object enters the store only by a copy from the share that hashed every byte it read
// against the manifest, written to a temp name and renamed; so an object name is a promise
// about its content, and a run tree made of links holds exactly what was verified, and
// nothing the manifest does not list. A second release fetches only the objects the store
// lacks: one read of each changed byte. An object that no run tree links (link count 1) is
// unreferenced: prune() removes it. Run trees are never written to: their files are the
// store's objects.
#pragma once

#include <cstdint>
#include <string>

#include "share.h"

namespace nfsup {

/// What a copy into the store did (the bytes it read from the share, what it reused).
struct StoreStats {
  uint64_t fetched = 0;        ///< objects read from the share
  uint64_t fetched_bytes = 0;  ///< bytes read from the share for them
  uint64_t reused = 0;         ///< objects the store had already
};

class LocalStore {
 public:
  explicit LocalStore(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string object_path(const std::string& sha256, uint32_t mode) const;
  /// Makes sure the store holds the content of file entry `e`: reused when an object of its
  /// name and size is there, else read from `from`, hashed while copied, and renamed into place.
  /// A hash that is not the manifest's fails with Exit::Integrity and leaves nothing behind.
  Status fetch(const std::string& from, const ManifestEntry& e, StoreStats* stats) const;
  /// Writes what the store holds to disk (syncfs of its file system), so that a fetch's dirty
  /// pages are not flushed later, by the first fsync of a small file, while the agent is down.
  void sync() const;
  /// Removes every object no run tree links any more (link count 1) and temp files an
  /// interrupted fetch left. Returns how many files were removed.
  Result<uint64_t> prune() const;

 private:
  std::string root_;
};

}  // namespace nfsup
