// nfsup core: the share layout and its I/O through a FileSystem (the codecs are in
// share_format.cpp).
#include "share.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "crypto.h"
#include "hash.h"
#include "store.h"

namespace nfsup {

// ---- Share I/O
std::string Share::object_path(const std::string& sha, uint32_t mode) const {
  return path_join(path_join(objects_dir(), sha.substr(0, 2)), object_name(sha, mode));
}

Status Share::init() {
  auto existing = fs_.read_file(format_file(), kSmallFileMax);
  if (!existing) return existing.error();
  auto root_before = fs_.stat(root_);
  if (!root_before) return root_before.error();
  if (auto s = fs_.mkdir(root_, 0755); !s) return s;
  // The marker is created with link() (the exclusive create that works on NFS) and staging
  // links objects into releases: a share that refuses hard links could never carry a push.
  // Found here, before anything else is created, rather than by the first push.
  std::string probe = path_join(root_, fmt::format(".nfsup-link-probe.{}.{}", short_hostname(), self_pid()));
  auto linked = fs_.publish_new(probe, "", 0644);
  (void)fs_.unlink(probe);
  if (!linked) {
    if (!*root_before) (void)fs_.rmdir(root_);
    return err(Exit::Share, fmt::format("{}: this file system refuses hard links ({}); nfsup needs them (the marker's "
                                        "exclusive create, release objects): use an export that supports link()",
                                        root_, linked.error().msg));
  }
  for (const auto& d : {releases_dir(), objects_dir(), hosts_dir(), audit_dir()})
    if (auto s = fs_.mkdir(d, 0755); !s) return s;
  if (!*existing) {
    Record r{"share", kFormatVersion, {}};
    r.add("created", {utc_now_iso()});
    r.add("created_by", {short_hostname()});
    if (auto s = fs_.write_atomic(format_file(), pack_record(r), 0644); !s) return s;
  }
  return check();
}

Status Share::check() {
  auto f = fs_.read_file(format_file(), kSmallFileMax);
  if (!f) return f.error();
  if (!*f)
    return err(Exit::Share, fmt::format("{}: not an nfsup share (no nfsup-share file; run 'nfsup-install init {}')",
                                        root_, root_));
  auto rec = unpack_record(**f, "share", kFormatVersion, format_file());
  if (!rec) return rec.error();
  for (const auto& d : {releases_dir(), objects_dir(), hosts_dir(), audit_dir()}) {
    auto info = fs_.stat(d);
    if (!info) return info.error();
    if (*info && (*info)->type != FileInfo::Dir)
      return err(Exit::Integrity, fmt::format("{}: not a directory (a symlink?); the share layout was tampered with", d));
  }
  return ok_status();
}

Result<std::optional<Marker>> Share::read_marker() {
  auto t = fs_.read_file(marker_path(), kSmallFileMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Marker>();
  auto m = unpack_marker(**t, marker_path());
  if (!m) return m.error();
  return std::optional<Marker>(*m);
}

Result<std::optional<Marker>> Share::probe_marker(int64_t* root_mtime_ns) {
  int64_t ignored = 0;
  auto t = fs_.probe_in(root_, "MARKER", kSmallFileMax, root_mtime_ns ? root_mtime_ns : &ignored);
  if (!t) return t.error();
  if (!*t) return std::optional<Marker>();
  auto m = unpack_marker(**t, marker_path());
  if (!m) return m.error();
  return std::optional<Marker>(*m);
}

Result<std::optional<Pointer>> Share::read_pointer() {
  auto t = fs_.read_file(pointer_path(), kSmallFileMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Pointer>();
  auto p = unpack_pointer(**t, pointer_path());
  if (!p) return p.error();
  return std::optional<Pointer>(*p);
}

Result<std::optional<HostStatus>> Share::read_status(const std::string& host) {
  auto path = status_path(host);
  auto t = fs_.read_file(path, kSmallFileMax);
  if (!t) return t.error();
  if (!*t) return std::optional<HostStatus>();
  auto s = unpack_status(**t, path);
  if (!s) return s.error();
  if (s->host != host)
    return err(Exit::Integrity, fmt::format("{}: names host '{}', not '{}'", path, s->host, host));
  auto st = fs_.stat(path);
  if (st && *st) s->mtime_ms = (*st)->mtime_ms;
  return std::optional<HostStatus>(*s);
}

// A host's own directory must be a real directory on the share: a symlink planted there would
// make the watchdog write outside the share.
static Status own_host_dir(FileSystem& fs, const std::string& dir) {
  if (auto st = fs.mkdir(dir, 0755); !st) return st;
  auto info = fs.stat(dir);
  if (!info) return info.error();
  if (!*info || (*info)->type != FileInfo::Dir)
    return err(Exit::Integrity, fmt::format("{}: not a directory (a symlink?); refusing to write through it", dir));
  return ok_status();
}

Status Share::write_vote(const Vote& v) {
  if (auto st = own_host_dir(fs_, host_dir(v.host)); !st) return st;
  return fs_.write_atomic(path_join(host_dir(v.host), "vote"), pack_vote(v), 0644);
}

Result<std::optional<Vote>> Share::read_vote(const std::string& host) {
  std::string path = path_join(host_dir(host), "vote");
  auto t = fs_.read_file(path, kSmallFileMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Vote>();
  auto v = unpack_vote(**t, path);
  if (!v) return v.error();
  if (v->host != host) return err(Exit::Integrity, fmt::format("{}: names host '{}'", path, v->host));
  return std::optional<Vote>(*v);
}

Status Share::write_status(const HostStatus& s) {
  if (auto st = own_host_dir(fs_, host_dir(s.host)); !st) return st;
  return fs_.write_atomic(status_path(s.host), pack_status(s), 0644);
}

Result<bool> Share::touch_status(const std::string& host) { return fs_.touch(status_path(host)); }

Result<std::vector<std::string>> Share::list_hosts() {
  auto l = fs_.list_dir(hosts_dir());
  if (!l) return l.error();
  std::vector<std::string> out;
  for (const auto& e : *l) {
    if (e.type != FileInfo::Dir) continue;
    if (check_host_name(e.name)) continue;  // not ours (".nfs*", temp, hostile)
    out.push_back(e.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<std::string>> Share::list_releases() {
  auto l = fs_.list_dir(releases_dir());
  if (!l) return l.error();
  std::vector<std::string> out;
  for (const auto& e : *l) {
    if (e.type != FileInfo::Dir) continue;
    if (check_version_name(e.name)) continue;  // staging dirs start with '.', ignored
    out.push_back(e.name);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return compare_versions(a, b) < 0;
  });
  return out;
}

// A release directory must be a real directory on the share, never a symlink to elsewhere.
static Status real_release_dir(FileSystem& fs, const std::string& dir) {
  auto info = fs.stat(dir);
  if (!info) return info.error();
  if (*info && (*info)->type != FileInfo::Dir)
    return err(Exit::Integrity, fmt::format("{}: not a directory (a symlink?); refusing to read through it", dir));
  return ok_status();
}

Result<std::optional<Manifest>> Share::read_manifest(const std::string& version) {
  if (auto e = check_version_name(version)) return err(Exit::Usage, *e);
  if (auto s = real_release_dir(fs_, release_dir(version)); !s) return s.error();
  auto path = manifest_path(version);
  auto t = fs_.read_file(path, kManifestMax);
  if (!t) return t.error();
  if (!*t) return std::optional<Manifest>();
  auto m = unpack_manifest(**t, path);
  if (!m) return m.error();
  if (m->version != version)
    return err(Exit::Integrity, fmt::format("{}: manifest is for version '{}', not '{}'", path, m->version, version));
  return std::optional<Manifest>(*m);
}

Result<std::optional<std::string>> Share::read_manifest_text(const std::string& version) {
  if (auto e = check_version_name(version)) return err(Exit::Usage, *e);
  if (auto s = real_release_dir(fs_, release_dir(version)); !s) return s.error();
  return fs_.read_file(manifest_path(version), kManifestMax);
}

// Entries of one run tree that its manifest does not list: anything there is an integrity
// error (a planted bin/healthcheck would otherwise run as root). `expected` holds every listed
// path and the directories above them; `skip` what is nfsup's own (checked elsewhere).
// Symlinks and unlisted directories are not descended into.
static Status find_unlisted(FileSystem& fs, const std::string& root, const std::string& rel,
                            const std::set<std::string>& expected, const std::set<std::string>& skip,
                            std::vector<std::string>* problems) {
  auto l = fs.list_dir(rel.empty() ? root : path_join(root, rel));
  if (!l) return l.error();
  for (const auto& e : *l) {
    std::string p = rel.empty() ? e.name : rel + "/" + e.name;
    if (skip.count(p)) continue;
    if (!expected.count(p)) {
      problems->push_back(fmt::format("{}: not in the manifest", path_join(root, p)));
      continue;
    }
    if (e.type == FileInfo::Dir)
      if (auto st = find_unlisted(fs, root, p, expected, skip, problems); !st) return st;
  }
  return ok_status();
}

// What a run tree holds: the listed paths of `m` (of the modules of class `ci`; all when null)
// and every directory above them.
static std::set<std::string> tree_paths(const Manifest& m, const ClassInfo* ci) {
  std::set<std::string> out;
  auto mods = m.modules_for(ci);
  for (const auto& e : m.entries) {
    if (ci && std::none_of(mods.begin(), mods.end(), [&](auto* mod) { return Manifest::in_module(*mod, e.path); }))
      continue;
    out.insert(e.path);
    for (size_t p = e.path.find('/'); p != std::string::npos; p = e.path.find('/', p + 1)) out.insert(e.path.substr(0, p));
  }
  return out;
}

Status Share::find_unlisted_entries(const Manifest& m, const std::string& version, const std::string& cls,
                                    std::vector<std::string>* problems) {
  if (!cls.empty()) {
    for (const auto& c : m.classes)
      if (c.name == cls) return find_unlisted(fs_, run_dir(version, cls), "", tree_paths(m, &c), {}, problems);
    return ok_status();  // (no such class: the caller says so)
  }
  auto expected = tree_paths(m, nullptr);
  for (const char* own : {".nfsup", ".nfsup/manifest", ".nfsup/manifest.sig"}) expected.insert(own);
  if (auto st = find_unlisted(fs_, release_dir(version), "", expected, {".nfsup/class"}, problems); !st) return st;
  if (m.classes.empty()) return ok_status();
  auto cdir = path_join(release_dir(version), ".nfsup/class");
  auto l = fs_.list_dir(cdir);
  if (!l) return l.error();
  for (const auto& e : *l) {
    auto c = std::find_if(m.classes.begin(), m.classes.end(), [&](const ClassInfo& x) { return x.name == e.name; });
    if (c == m.classes.end() || e.type != FileInfo::Dir) {
      problems->push_back(fmt::format("{}: not in the manifest", path_join(cdir, e.name)));
      continue;
    }
    if (auto st = find_unlisted(fs_, path_join(cdir, e.name), "", tree_paths(m, &*c), {}, problems); !st) return st;
  }
  return ok_status();
}

Result<std::vector<std::string>> Share::verify_release(const std::string& version, const std::string& cls) {
  auto m = read_manifest(version);
  if (!m) return m.error();
  std::vector<std::string> problems;
  if (!*m) {
    problems.push_back(fmt::format("{}: manifest missing", manifest_path(version)));
    return problems;
  }
  std::string dir = run_dir(version, cls);
  const ClassInfo* ci = nullptr;
  if (!cls.empty()) {
    for (const auto& c : (*m)->classes)
      if (c.name == cls) ci = &c;
    if (!ci) {
      problems.push_back(fmt::format("release {} has no class '{}'", version, cls));
      return problems;
    }
  }
  if (auto st = find_unlisted_entries(**m, version, cls, &problems); !st) return st.error();
  auto mods = (*m)->modules_for(ci);
  for (const auto& e : (*m)->entries) {
    if (ci) {
      // A class tree holds its modules' entries only.
      bool mine = false;
      for (const auto* mod : mods) mine = mine || Manifest::in_module(*mod, e.path);
      if (!mine) continue;
    }
    g_read_progress.fetch_add(1, std::memory_order_relaxed);  // one entry checked (a waiter sees it move)
    std::string p = path_join(dir, e.path);
    auto st = fs_.stat(p);
    if (!st) return st.error();
    if (!*st) {
      problems.push_back(fmt::format("{}: missing", p));
      continue;
    }
    const FileInfo& fi = **st;
    switch (e.kind) {
      case ManifestEntry::Dir:
        if (fi.type != FileInfo::Dir) problems.push_back(fmt::format("{}: not a directory", p));
        break;
      case ManifestEntry::Symlink:
        if (fi.type != FileInfo::Symlink) problems.push_back(fmt::format("{}: not a symlink", p));
        break;
      case ManifestEntry::File: {
        if (fi.type != FileInfo::File) {
          problems.push_back(fmt::format("{}: not a regular file", p));
          break;
        }
        if (fi.mode & 022) problems.push_back(fmt::format("{}: group/world-writable (mode {:o})", p, fi.mode));
        if (fi.size != e.size) {
          problems.push_back(fmt::format("{}: size {} != manifest {}", p, fi.size, e.size));
          break;
        }
        auto h = hash_file(p);
        if (!h) return h.error();
        if (h->sha256 != e.sha256)
          problems.push_back(fmt::format("{}: sha256 {} != manifest {}", p, h->sha256.substr(0, 16),
                                         e.sha256.substr(0, 16)));
        break;
      }
    }
  }
  return problems;
}

// Whether entry path `p` belongs to one of `mods`.
static bool in_modules(const std::vector<const ModuleInfo*>& mods, const std::string& p) {
  for (const auto* mod : mods)
    if (Manifest::in_module(*mod, p)) return true;
  return false;
}

// One file of a run tree from the local store: fetched into it unless it is there, then linked.
static Status link_from_store(const LocalStore& store, const std::string& from, const ManifestEntry& e,
                              const std::string& to, StoreStats* stats) {
  if (auto st = store.fetch(from, e, stats); !st) return st;
  std::string obj = store.object_path(e.sha256, e.mode);
  if (int le = hard_link(obj, to); le != 0)
    return err(Exit::Failed, fmt::format("link({} -> {}): {}", obj, to, errno_str(le)));
  return ok_status();
}

Status Share::copy_run_tree(const std::string& version, const std::string& cls, const std::string& dst,
                            const LocalStore* store, StoreStats* stats) {
  auto m = read_manifest(version);
  if (!m) return m.error();
  if (!*m) return err(Exit::Integrity, fmt::format("{}: manifest missing", manifest_path(version)));
  return copy_run_tree(**m, cls, dst, store, stats);
}

Status Share::copy_run_tree(const Manifest& man, const std::string& cls, const std::string& dst,
                            const LocalStore* store, StoreStats* stats) {
  const std::string& version = man.version;
  const ClassInfo* ci = nullptr;
  if (!cls.empty()) {
    for (const auto& c : man.classes)
      if (c.name == cls) ci = &c;
    if (!ci) return err(Exit::Integrity, fmt::format("release {} has no class '{}'", version, cls));
  }
  auto mods = man.modules_for(ci);
  std::string dir = run_dir(version, cls);
  StoreStats own;
  if (!stats) stats = &own;
  const uint64_t fetched_before = stats->fetched;
  if (int e = make_new_dir(dst, 0755); e != 0) return err(Exit::Failed, fmt::format("mkdir({}): {}", dst, errno_str(e)));
  // Parents before children, whatever the manifest's order.
  auto make_parents = [&](const std::string& rel) {
    for (size_t p = rel.find('/'); p != std::string::npos; p = rel.find('/', p + 1))
      (void)make_dir(path_join(dst, rel.substr(0, p)), 0755);  // (a failure shows at the entry's create)
  };
  for (const auto& e : man.entries) {
    if (ci && !in_modules(mods, e.path)) continue;  // a class tree holds its modules' entries only
    g_read_progress.fetch_add(1, std::memory_order_relaxed);
    if (auto bad = check_rel_path(e.path)) return err(Exit::Integrity, fmt::format("{}: {}", manifest_path(version), *bad));
    std::string to = path_join(dst, e.path);
    make_parents(e.path);
    switch (e.kind) {
      case ManifestEntry::Dir:
        if (int me = make_dir(to, e.mode & 0755); me != 0)
          return err(Exit::Failed, fmt::format("mkdir({}): {}", to, errno_str(me)));
        break;
      case ManifestEntry::Symlink:
        if (int se = make_symlink(e.target, to); se != 0)
          return err(Exit::Failed, fmt::format("symlink({}): {}", to, errno_str(se)));
        break;
      case ManifestEntry::File: {
        if (store) {
          if (auto st = link_from_store(*store, path_join(dir, e.path), e, to, stats); !st) return st;
          break;
        }
        int fd = -1;
        if (int oe = create_excl(to, 0600, &fd); oe != 0)
          return err(Exit::Failed, fmt::format("open({}): {}", to, errno_str(oe)));
        std::string from = path_join(dir, e.path);
        auto h = hash_file(from, fd, to);
        if (int ce = h ? chmod_fd(fd, e.mode & 0755) : 0; ce != 0)
          h = err(Exit::Failed, fmt::format("chmod({}): {}", to, errno_str(ce)));
        (void)close_fd(fd);  // (a local file opened for writing; its data was checked by the hash)
        if (!h) return h.error();
        if (h->sha256 != e.sha256)
          return err(Exit::Integrity, fmt::format("{}: sha256 {} != manifest {}", from, h->sha256.substr(0, 16),
                                                  e.sha256.substr(0, 16)));
        break;
      }
    }
  }
  // What was fetched goes to disk now, while the agent still runs (see LocalStore::sync).
  if (store && stats->fetched > fetched_before) store->sync();
  return ok_status();
}

Status Share::audit(const std::string& action, const std::string& detail, const std::string& result) {
  Record r{"audit", kFormatVersion, {}};
  r.add("time", {utc_now_iso()});
  r.add("host", {short_hostname()});
  r.add("pid", {std::to_string(self_pid())});
  r.add("user", {self_user()});
  r.add("action", {action});
  r.add("detail", {detail});
  r.add("result", {result});
  static int seq = 0;
  std::string name = fmt::format("{}-{}-{}-{:04d}-{}", utc_now_iso(), short_hostname(), self_pid(), ++seq, action);
  for (auto& c : name)
    if (c == ':') c = '-';
  auto pub = fs_.publish_new(path_join(audit_dir(), name), pack_record(r), 0644);
  if (!pub) return pub.error();
  return ok_status();
}

}  // namespace nfsup
