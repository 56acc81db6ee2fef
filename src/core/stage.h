// nfsup core: staging a release on the share (hash while copying, content-addressed, publish by rename).
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <string>

#include "share.h"

namespace nfsup {

struct StageRequest {
  std::string source;       ///< a file or a directory tree
  std::string version;
  std::string reconfig;     ///< local path of the config-rewrite script, "" for none
  std::function<void(uint64_t done, uint64_t total)> progress;
  const struct SecretKey* sign_key = nullptr;  ///< sign the manifest (manifest.sig)
  int64_t expires = 0;                          ///< unix seconds; 0 = never
  std::string min_compatible;                   ///< lowest version this release can run beside
  std::string migrate;                          ///< local path of the data-migration hook
  std::string modules;                          ///< local path of the module/class spec (YAML), "" = one module
  const std::atomic<int>* interrupt = nullptr;  ///< set by a signal handler: stop staging, publish nothing
};

/// Parses a module spec (YAML) into modules and classes (paths and names only; hashes are
/// filled in by scan_source). `path` names the file in errors.
Result<std::pair<std::vector<ModuleInfo>, std::vector<ClassInfo>>> parse_module_spec(std::string_view yaml,
                                                                                      const std::string& path,
                                                                                      const std::string& version);

struct StageResult {
  Manifest manifest;
  uint64_t bytes_total = 0;
  uint64_t bytes_written = 0;   ///< new object bytes that reached the share
  bool already_published = false;  ///< the same content was already on the share under this version
};

/// Builds the manifest of a local source without writing anything (used for validation and
/// for comparing a re-push with what is published).
Result<Manifest> scan_source(const StageRequest& req);

/// Whether two manifests describe the same release content (files, hooks, modules, classes).
bool same_content(const Manifest& a, const Manifest& b);

/// Stages and publishes releases/<version>. On any error nothing is published and the
/// staging directory is removed.
Result<StageResult> stage_release(Share& share, const StageRequest& req);

/// Removes a local directory tree; best effort, returns the first error.
Status remove_tree(const std::string& path);
/// Removes a directory tree on the share through `fs`, never following a symlink in it (a
/// symlink is removed as a name; FileSystem::confine).
Status remove_tree(FileSystem& fs, const std::string& path);

}  // namespace nfsup
