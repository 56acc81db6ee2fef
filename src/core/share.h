// nfsup core: the share layout and the files on it (format version 1).
//
//   SHARE/nfsup-share            format file written by `init`
//   SHARE/MARKER                 exists only while a push/rollback runs; created by link() so
//                                creating it is also taking the master lock
//   SHARE/current                the release pointer, replaced by rename
//   SHARE/releases/<version>/    immutable release trees; <version>/.nfsup/manifest lists every entry
//   SHARE/releases/.staging-*    a push being staged; never a release
//   SHARE/objects/<xx>/<sha256>.<mode>   content-addressed file store; release files are hard links
//   SHARE/hosts/<host>/status    written only by that host's watchdog
//   SHARE/audit/                 one file per event
//
// Every file is a record (record.h) whose first line names its kind and format version.
// Encoding is pure (pack_*/unpack_*); the Share class does the I/O through a FileSystem.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fs.h"
#include "record.h"
#include "util.h"

namespace nfsup {

constexpr int kFormatVersion = 1;
constexpr size_t kSmallFileMax = 64 * 1024;
constexpr size_t kManifestMax = 32 * 1024 * 1024;

struct Marker {
  int64_t generation = 0;
  std::string action = "push";  ///< push | rollback
  std::string release;          ///< target
  std::string previous;         ///< release the fleet ran before ("" if none)
  std::string master_host;
  int64_t master_pid = 0;
  std::string nonce;
  int64_t lease_ms = 30000;
  int64_t renewal = 0;
  std::string started;          ///< informational wall time
  std::string strategy = "all-at-once";  ///< all-at-once | rolling
  /// Hosts that must stop for this marker; nullopt = every host (all-at-once).
  std::optional<std::vector<std::string>> targets;
  bool targets_host(const std::string& h) const;
  std::string phase = "stop";   ///< vote: targeted hosts vote, nobody stops yet | stop
  /// pack_marker signs with this key when set (a master with --sign-key); not stored.
  const struct SecretKey* signer = nullptr;
  /// Read from the file: `sig <key-id> <hex>` lines, each over `signed_bytes`.
  std::vector<std::pair<std::string, std::string>> sigs;
  /// Read from the file: its exact bytes without the sig lines (what a signature covers, so a
  /// field a newer master adds is covered too).
  std::string signed_bytes;
};

/// A host's answer to a vote (hosts/<host>/vote). Format 2 names the switch it answers: the
/// marker's generation, nonce and target release; the master counts only a vote that names all
/// three of its marker. Format 1 (watchdogs before 2026-12) named the generation only, so a vote
/// cast for one push counted for a retry under the same generation; such votes are read (to say
/// which hosts run an older watchdog) and never counted.
constexpr int kVoteFormatVersion = 2;
struct Vote {
  int version = kVoteFormatVersion;  ///< the format it was read in
  std::string host;
  int64_t generation = 0;
  std::string nonce;                 ///< the marker's nonce ("" in format 1)
  std::string target;                ///< the marker's release ("" in format 1)
  bool accept = true;
  std::string reason;
  /// Whether this vote answers the switch of marker `m`.
  bool answers(const Marker& m) const;
};
std::string pack_vote(const Vote& v);
Result<Vote> unpack_vote(std::string_view text, std::string_view what);

struct Pointer {
  int64_t generation = 0;
  std::string release;
  std::string previous;
  std::string action = "push";
  std::string updated;
  std::string updated_by;
  std::map<std::string, std::string> overrides;  ///< host -> release (rolling upgrades in progress)
  std::string acting;           ///< acting version: the lowest release installed on a live host
  std::string min_supported;    ///< the lowest version the newest release can run beside
  /// The release host `h` should run.
  const std::string& release_for(const std::string& h) const;
  /// Signatures over pack_pointer() of this pointer without them: (key id, hex).
  std::vector<std::pair<std::string, std::string>> sigs;
};

struct HostStatus {
  std::string host;
  std::string state;            ///< idle|starting|running|stopping|stopped|failed|unreachable
  std::string running;          ///< version the agent runs ("" none)
  int64_t generation = 0;       ///< the marker/pointer generation this status answers
  int64_t heartbeat = 0;
  int64_t pid = 0;
  int64_t agent_pid = 0;
  std::string mode;             ///< daemon|check
  std::string reason;
  std::string updated;
  std::string trust;            ///< signed | unsigned (what this host requires)
  std::vector<std::string> keys;  ///< ids of the keys a signed host trusts (empty: not reported)
  std::string group;            ///< redundancy group ("" none)
  std::string cls;              ///< host class ("" none)
  std::map<std::string, std::string> modules;  ///< module -> version this host runs
  std::string runs_from;        ///< release directory the agent runs from, if not `running`'s
  std::string run_from;         ///< local | share: where this host runs its agent from ("" not reported)
  std::string acting;           ///< acting version handed to the agent
  int64_t poll_ms = 0;          ///< the host's poll_interval (0: not reported)
  std::string checks;           ///< "yes": votes with local checks; "no": accepts without any; "": not reported
  std::string watchdog_version; ///< the nfsup-watchdog version writing this status ("" not reported)
  int64_t mtime_ms = 0;         ///< filled from stat by readers; not stored
};

struct ManifestEntry {
  enum Kind { File, Dir, Symlink } kind = File;
  std::string path;
  uint32_t mode = 0;
  uint64_t size = 0;
  std::string sha256;
  std::string target;  ///< for symlinks
};

/// A module: a named set of files or subtrees of the release, versioned, with dependencies.
struct ModuleInfo {
  std::string name, version;
  std::string sha256;                          ///< over its entries' kind, path, mode, size, hash
  uint64_t size = 0;
  std::vector<std::string> paths;              ///< path prefixes inside the release
  std::map<std::string, std::string> depends;  ///< module -> lowest version
  std::map<std::string, std::string> provides; ///< api -> version
  std::map<std::string, std::string> consumes; ///< api -> lowest version
};

/// A host class: which modules a host of this class gets, and the traits that select it.
struct ClassInfo {
  std::string name;
  std::vector<std::string> modules;
  std::map<std::string, std::string> match;
};

struct Manifest {
  std::string version;
  std::string created;
  std::string created_by;
  std::string reconfig;  ///< path of the reconfig script inside the release, "" if none
  int64_t expires = 0;   ///< unix seconds after which hosts refuse to start it (0 = never)
  std::string min_compatible;  ///< lowest version this release can run beside ("" = any)
  std::string migrate;   ///< path of the data-migration hook inside the release, "" if none
  std::vector<ManifestEntry> entries;
  std::vector<ModuleInfo> modules;   ///< empty = one implicit module covering everything
  std::vector<ClassInfo> classes;
  uint64_t total_bytes() const;
  const ModuleInfo* module(const std::string& name) const;
  /// The class a host gets: by name, else the first whose match traits the host has; null = whole release.
  const ClassInfo* pick_class(const std::string& cls, const std::map<std::string, std::string>& traits) const;
  /// Modules a host of class `c` runs (all modules when c is null).
  std::vector<const ModuleInfo*> modules_for(const ClassInfo* c) const;
  /// Whether entry path `p` belongs to module `m`.
  static bool in_module(const ModuleInfo& m, const std::string& p);
};

/// The marker file; with `m.signer` set, one `sig` line (appended last) signs every line before
/// it. If signing fails the marker goes out unsigned: signed hosts then ignore it (fail safe).
std::string pack_marker(const Marker& m);
/// `text` without its `sig` lines.
std::string marker_signing_bytes(std::string_view text);
Result<Marker> unpack_marker(std::string_view text, std::string_view what);
std::string pack_pointer(const Pointer& p);
Result<Pointer> unpack_pointer(std::string_view text, std::string_view what);
std::string pack_status(const HostStatus& s);
Result<HostStatus> unpack_status(std::string_view text, std::string_view what);
std::string pack_manifest(const Manifest& m);
Result<Manifest> unpack_manifest(std::string_view text, std::string_view what);

/// The object-store name of a file with this content and mode.
std::string object_name(const std::string& sha256, uint32_t mode);

class LocalStore;
struct StoreStats;

class Share {
 public:
  /// Confines `fs` to `root`: nothing below it is reached through a symlink (FileSystem::confine).
  Share(FileSystem& fs, std::string root) : fs_(fs), root_(std::move(root)) { fs_.confine(root_); }
  FileSystem& fs() { return fs_; }
  const std::string& root() const { return root_; }

  std::string format_file() const { return path_join(root_, "nfsup-share"); }
  std::string marker_path() const { return path_join(root_, "MARKER"); }
  static constexpr const char* kMarkerName = "MARKER";
  std::string pointer_path() const { return path_join(root_, "current"); }
  std::string releases_dir() const { return path_join(root_, "releases"); }
  std::string release_dir(const std::string& v) const { return path_join(releases_dir(), v); }
  std::string manifest_path(const std::string& v) const { return path_join(release_dir(v), ".nfsup/manifest"); }
  /// Where a host of class `cls` runs release `v` from ("" = the whole release).
  std::string run_dir(const std::string& v, const std::string& cls) const {
    return cls.empty() ? release_dir(v) : path_join(release_dir(v), ".nfsup/class/" + cls);
  }
  std::string manifest_sig_path(const std::string& v) const { return path_join(release_dir(v), ".nfsup/manifest.sig"); }
  std::string objects_dir() const { return path_join(root_, "objects"); }
  std::string object_path(const std::string& sha, uint32_t mode) const;
  std::string hosts_dir() const { return path_join(root_, "hosts"); }
  std::string host_dir(const std::string& h) const { return path_join(hosts_dir(), h); }
  std::string status_path(const std::string& h) const { return path_join(host_dir(h), "status"); }
  std::string audit_dir() const { return path_join(root_, "audit"); }

  /// Creates the layout (idempotent).
  Status init();
  /// Checks that root is an nfsup share of a format this binary understands.
  Status check();

  Result<std::optional<Marker>> read_marker();
  /// The polling read of the marker (3 share calls when absent).
  Result<std::optional<Marker>> probe_marker(int64_t* root_mtime_ns = nullptr);
  Result<std::optional<Pointer>> read_pointer();
  Result<std::optional<HostStatus>> read_status(const std::string& host);
  Status write_status(const HostStatus& s);
  /// A heartbeat without news: the status file's times set to now (one call; on NFS the server
  /// stamps it). false when there is no status file to touch (write it instead).
  Result<bool> touch_status(const std::string& host);
  Status write_vote(const Vote& v);
  Result<std::optional<Vote>> read_vote(const std::string& host);
  Result<std::vector<std::string>> list_hosts();
  Result<std::vector<std::string>> list_releases();  ///< published releases, sorted by version
  Result<std::optional<Manifest>> read_manifest(const std::string& version);
  /// The manifest's exact bytes (what signatures cover).
  Result<std::optional<std::string>> read_manifest_text(const std::string& version);

  /// Names every entry of the run tree of `version` for class `cls` that manifest `m` does not
  /// list ("" = the whole release, its class trees included) in `problems`.
  Status find_unlisted_entries(const Manifest& m, const std::string& version, const std::string& cls,
                               std::vector<std::string>* problems);
  /// Checks every entry of a release against its manifest, and that it holds nothing else.
  /// Returns the list of problems (empty = ok).
  Result<std::vector<std::string>> verify_release(const std::string& version, const std::string& cls = "");
  /// Copies the run tree of `version` for class `cls` to the new local directory `dst`,
  /// hashing each file as it is copied: a file whose hash is not the manifest's fails the copy
  /// (Exit::Integrity). Files are not fsynced: the caller publishes the tree by rename.
  /// With `store`, files are not copied: each is fetched into the store unless the store has
  /// it (LocalStore::fetch) and hard-linked into `dst`; `stats` says what was read.
  Status copy_run_tree(const std::string& version, const std::string& cls, const std::string& dst,
                       const LocalStore* store = nullptr, StoreStats* stats = nullptr);
  /// The same against manifest `m`, already read (and checked) by the caller.
  Status copy_run_tree(const Manifest& m, const std::string& cls, const std::string& dst,
                       const LocalStore* store = nullptr, StoreStats* stats = nullptr);

  /// Writes one audit event (one file per event, never appended).
  Status audit(const std::string& action, const std::string& detail, const std::string& result);

 private:
  FileSystem& fs_;
  std::string root_;
};

}  // namespace nfsup
