// nfsup core: staging a release.
//
// Pass 1 hashes the source (nothing written). Each file's object name is then known, so a file
// whose object is already on the share costs no write: a re-push of unchanged content writes
// only the manifest. Missing objects are copied with the hash computed again while copying; a
// mismatch means the source changed under us and the push stops. Objects are published by
// rename; the release tree is a staging directory of hard links, published by one rename.
#include "stage.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "hash.h"
#include "trust.h"

namespace nfsup {

namespace {

uint32_t norm_mode(uint32_t m) { return (m & 0111) ? 0555 : 0444; }

struct Walker {
  std::vector<ManifestEntry> entries;
  std::vector<std::string> local;  // local path per entry
  std::string error;

  bool walk(const std::string& dir, const std::string& rel) {
    std::vector<std::string> names;
    if (int e = list_names(dir, &names); e != 0) {
      error = fmt::format("opendir({}): {}", dir, errno_str(e));
      return false;
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string lp = path_join(dir, n);
      std::string rp = rel.empty() ? n : rel + "/" + n;
      if (rel.empty() && n == ".nfsup") {
        error = fmt::format("{}: a top-level '.nfsup' is reserved for nfsup's own files", lp);
        return false;
      }
      if (auto why = check_rel_path(rp)) {
        error = fmt::format("{}: {}", lp, *why);
        return false;
      }
      FileInfo st;
      if (int se = local_lstat(lp, &st); se != 0) {
        error = fmt::format("stat({}): {}", lp, errno_str(se));
        return false;
      }
      ManifestEntry e;
      e.path = rp;
      if (st.type == FileInfo::Dir) {
        e.kind = ManifestEntry::Dir;
        e.mode = 0755;
        entries.push_back(e);
        local.push_back(lp);
        if (!walk(lp, rp)) return false;
      } else if (st.type == FileInfo::File) {
        e.kind = ManifestEntry::File;
        e.mode = norm_mode(st.mode);
        entries.push_back(e);
        local.push_back(lp);
      } else if (st.type == FileInfo::Symlink) {
        if (int re = read_link(lp, &e.target); re != 0) {
          error = fmt::format("readlink({}): {}", lp, errno_str(re));
          return false;
        }
        e.kind = ManifestEntry::Symlink;
        entries.push_back(e);
        local.push_back(lp);
      } else {
        error = fmt::format("{}: not a regular file, directory or symlink", lp);
        return false;
      }
    }
    return true;
  }
};

}  // namespace

Status remove_tree(const std::string& path) {
  FileInfo st;
  if (local_lstat(path, &st) != 0) return ok_status();
  if (st.type == FileInfo::Dir) {
    (void)chmod_path(path, 0755);  // releases are read-only; a failure shows as the rmdir's
    std::vector<std::string> names;
    if (list_names(path, &names) == 0)
      for (const auto& n : names) (void)remove_tree(path_join(path, n));
    if (int e = remove_dir(path); e != 0) return err(Exit::Share, fmt::format("rmdir({}): {}", path, errno_str(e)));
  } else if (int e = unlink_path(path); e != 0) {
    return err(Exit::Share, fmt::format("unlink({}): {}", path, errno_str(e)));
  }
  return ok_status();
}

Status remove_tree(FileSystem& fs, const std::string& path) {
  auto st = fs.stat(path);
  if (!st) return st.error();
  if (!*st) return ok_status();
  if ((*st)->type != FileInfo::Dir) {
    auto u = fs.unlink(path);
    return u ? ok_status() : Status(u.error());
  }
  (void)fs.chmod_dir(path, 0755);  // releases are read-only; a failure shows as the rmdir's
  if (auto l = fs.list_dir(path))
    for (const auto& e : *l) (void)remove_tree(fs, path_join(path, e.name));
  return fs.rmdir(path);
}

// Hosts exec() a hook straight from the release: a text file without a #! line, or one without
// the execute bit, would fail there, on every host, in the middle of a switch. Caught here.
static std::optional<std::string> check_hook_program(const std::string& path) {
  FileInfo st;
  if (local_stat(path, &st) != 0 || st.type != FileInfo::File) return "not a readable file";
  if ((st.mode & 0111) == 0) return "not executable (chmod +x it)";
  std::string head;
  if (int e = read_head(path, 4, &head); e != 0) return fmt::format("open: {}", errno_str(e));
  if (head.size() >= 2 && head[0] == '#' && head[1] == '!') return std::nullopt;
  if (head == "\x7f" "ELF") return std::nullopt;
  return "neither a script with a #! line nor an ELF program";
}

// A spec mapping's keys: each at most once, and (when `allowed` is not empty) one of those.
// A misspelt key (`provdes:`) would otherwise drop what it was meant to declare, silently.
template <typename At>
static std::optional<Error> only_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                                      const std::string& where, const At& at) {
  std::vector<std::string> seen;
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    if (allowed.size() && std::find(allowed.begin(), allowed.end(), std::string_view(k)) == allowed.end())
      return at(kv.first, fmt::format("unknown key '{}'{} (expected one of: {})", k, where,
                                      join(std::vector<std::string>(allowed.begin(), allowed.end()), ", ")));
    if (std::find(seen.begin(), seen.end(), k) != seen.end())
      return at(kv.first, fmt::format("duplicate key '{}'{}", k, where));
    seen.push_back(k);
  }
  return std::nullopt;
}

// One entry of the spec's `modules:` mapping.
template <typename At, typename NameMap>
static Result<ModuleInfo> parse_module(const YAML::Node& key, const YAML::Node& b, const std::string& version,
                                       const At& at, const NameMap& name_map) {
  ModuleInfo m;
  m.name = key.as<std::string>();
  if (auto e = check_host_name(m.name)) return at(key, "module name: " + *e);
  if (b.IsMap())
    if (auto e = only_keys(b, {"paths", "version", "depends", "provides", "consumes"}, fmt::format(" in module {}", m.name), at))
      return *e;
  if (!b.IsMap() || !b["paths"] || !b["paths"].IsSequence())
    return at(b, fmt::format("module {} needs 'paths: [...]'", m.name));
  for (const auto& p : b["paths"]) {
    std::string s = p.as<std::string>();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    if (auto e = check_rel_path(s)) return at(p, "module path: " + *e);
    m.paths.push_back(s);
  }
  m.version = b["version"] ? b["version"].as<std::string>() : version;
  if (auto e = check_version_name(m.version)) return at(b["version"], "module version: " + *e);
  if (auto e = name_map(b["depends"], "depends", &m.depends)) return *e;
  if (auto e = name_map(b["provides"], "provides", &m.provides)) return *e;
  if (auto e = name_map(b["consumes"], "consumes", &m.consumes)) return *e;
  return m;
}

// One entry of the spec's `classes:` mapping: a list of modules, or {modules: [...], match: {...}}.
template <typename At, typename NameMap>
static Result<ClassInfo> parse_class(const YAML::Node& key, const YAML::Node& body, const std::vector<ModuleInfo>& mods,
                                     const At& at, const NameMap& name_map) {
  ClassInfo c;
  c.name = key.as<std::string>();
  if (auto e = check_host_name(c.name)) return at(key, "class name: " + *e);
  YAML::Node list = body.IsMap() ? body["modules"] : body;
  if (!list || !list.IsSequence()) return at(body, fmt::format("class {} needs a list of modules", c.name));
  for (const auto& m : list) {
    std::string n = m.as<std::string>();
    if (std::none_of(mods.begin(), mods.end(), [&](auto& x) { return x.name == n; }))
      return at(m, fmt::format("class {} names unknown module '{}'", c.name, n));
    c.modules.push_back(n);
  }
  if (body.IsMap()) {
    if (auto e = only_keys(body, {"modules", "match"}, fmt::format(" in class {}", c.name), at)) return *e;
    if (auto e = name_map(body["match"], "match", &c.match)) return *e;
  }
  return c;
}

Result<std::pair<std::vector<ModuleInfo>, std::vector<ClassInfo>>> parse_module_spec(std::string_view yaml,
                                                                                      const std::string& path,
                                                                                      const std::string& version) {
  auto at = [&](const YAML::Node& n, const std::string& msg) -> Error {
    auto mk = n.Mark();
    if (mk.is_null()) return err(Exit::Usage, fmt::format("{}: {}", path, msg));
    return err(Exit::Usage, fmt::format("{}:{}:{}: {}", path, mk.line + 1, mk.column + 1, msg));
  };
  std::vector<ModuleInfo> mods;
  std::vector<ClassInfo> classes;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap() || !root["modules"] || !root["modules"].IsMap())
      return err(Exit::Usage, fmt::format("{}: needs a 'modules' mapping", path));
    if (auto e = only_keys(root, {"modules", "classes"}, "", at)) return *e;
    if (auto e = only_keys(root["modules"], {}, " in 'modules'", at)) return *e;
    if (root["classes"] && root["classes"].IsMap())
      if (auto e = only_keys(root["classes"], {}, " in 'classes'", at)) return *e;
    auto name_map = [&](const YAML::Node& n, const std::string& what,
                        std::map<std::string, std::string>* out) -> std::optional<Error> {
      if (!n) return std::nullopt;
      if (!n.IsMap()) return at(n, what + " must be a mapping of name: version");
      if (auto e = only_keys(n, {}, " in '" + what + "'", at)) return *e;
      for (const auto& kv : n) {
        std::string k = kv.first.as<std::string>(), v = kv.second.as<std::string>();
        if (check_host_name(k) || check_version_name(v)) return at(kv.first, fmt::format("{}: bad name or version '{}: {}'", what, k, v));
        (*out)[k] = v;
      }
      return std::nullopt;
    };
    for (const auto& kv : root["modules"]) {
      auto m = parse_module(kv.first, kv.second, version, at, name_map);
      if (!m) return m.error();
      mods.push_back(std::move(*m));
    }
    if (root["classes"]) {
      if (!root["classes"].IsMap()) return at(root["classes"], "'classes' must be a mapping");
      for (const auto& kv : root["classes"]) {
        auto c = parse_class(kv.first, kv.second, mods, at, name_map);
        if (!c) return c.error();
        classes.push_back(std::move(*c));
      }
    }
  } catch (const YAML::Exception& e) {
    return err(Exit::Usage, fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  for (const auto& m : mods)
    for (const auto& dep : m.depends) {
      const std::string& d = dep.first;
      if (std::none_of(mods.begin(), mods.end(), [&](auto& x) { return x.name == d; }))
        return err(Exit::Usage, fmt::format("{}: module {} depends on unknown module '{}'", path, m.name, d));
    }
  return std::make_pair(mods, classes);
}

// Fills in each module's hash and size and checks every file belongs to a module.
static Status seal_modules(Manifest& m, const std::string& spec_path) {
  if (m.modules.empty()) return ok_status();
  for (const auto& e : m.entries) {
    if (e.kind == ManifestEntry::Dir || starts_with(e.path, ".nfsup")) continue;
    if (std::none_of(m.modules.begin(), m.modules.end(), [&](auto& x) { return Manifest::in_module(x, e.path); }))
      return err(Exit::Usage, fmt::format("{}: '{}' belongs to no module", spec_path, e.path));
  }
  for (auto& mod : m.modules) {
    Sha256 h;
    mod.size = 0;
    bool any = false;
    for (const auto& e : m.entries) {
      if (!Manifest::in_module(mod, e.path)) continue;
      any = true;
      std::string line = fmt::format("{} {} {:o} {} {}{}\n", static_cast<int>(e.kind), e.path, e.mode, e.size, e.sha256,
                                     e.target);
      h.update(line.data(), line.size());
      mod.size += e.size;
    }
    if (!any) return err(Exit::Usage, fmt::format("{}: module {} matches no file", spec_path, mod.name));
    mod.sha256 = h.hex();
  }
  return ok_status();
}

Result<Manifest> scan_source(const StageRequest& req) {
  if (auto e = check_version_name(req.version)) return err(Exit::Usage, fmt::format("--version: {}", *e));
  FileInfo st;
  if (int e = local_stat(req.source, &st); e != 0)
    return err(Exit::Usage, fmt::format("{}: {}", req.source, errno_str(e)));
  Walker w;
  if (st.type == FileInfo::Dir) {
    if (!w.walk(req.source, "")) return err(Exit::Usage, w.error);
  } else if (st.type == FileInfo::File) {
    std::string name = basename_of(req.source);
    if (auto why = check_rel_path(name)) return err(Exit::Usage, fmt::format("{}: {}", req.source, *why));
    if (name == ".nfsup") return err(Exit::Usage, fmt::format("{}: the name '.nfsup' is reserved", req.source));
    ManifestEntry e;
    e.kind = ManifestEntry::File;
    e.path = name;
    e.mode = norm_mode(st.mode);
    w.entries.push_back(e);
    w.local.push_back(req.source);
  } else {
    return err(Exit::Usage, fmt::format("{}: not a file or directory", req.source));
  }
  if (w.entries.empty()) return err(Exit::Usage, fmt::format("{}: the release is empty", req.source));
  Manifest m;
  m.version = req.version;
  m.expires = req.expires;
  m.created = utc_now_iso();
  m.created_by = fmt::format("{}@{}", getenv("USER") ? getenv("USER") : "root", short_hostname());
  if (!req.min_compatible.empty()) {
    if (auto e = check_version_name(req.min_compatible)) return err(Exit::Usage, "--min-compatible: " + *e);
    m.min_compatible = req.min_compatible;
  }
  bool hooks_dir = false;
  for (auto [flag, local, name, field] :
       {std::tuple<const char*, const std::string*, const char*, std::string*>{"--reconfig", &req.reconfig, "reconfig", &m.reconfig},
        {"--migrate", &req.migrate, "migrate", &m.migrate}}) {
    if (local->empty()) continue;
    if (auto why = check_hook_program(*local)) return err(Exit::Usage, fmt::format("{} {}: {}", flag, *local, *why));
    if (!hooks_dir) {
      ManifestEntry d;
      d.kind = ManifestEntry::Dir;
      d.path = ".nfsup";
      d.mode = 0755;
      w.entries.push_back(d);
      w.local.push_back("");
      hooks_dir = true;
    }
    ManifestEntry e;
    e.kind = ManifestEntry::File;
    e.path = std::string(".nfsup/") + name;
    e.mode = 0555;
    w.entries.push_back(e);
    w.local.push_back(*local);
    *field = e.path;
  }
  // Validate symlinks the same way the share-side parser will.
  for (size_t i = 0; i < w.entries.size(); ++i) {
    auto& e = w.entries[i];
    if (e.kind == ManifestEntry::File) {
      auto h = hash_file(w.local[i]);
      if (!h) return err(Exit::Usage, h.error().msg);
      e.sha256 = h->sha256;
      e.size = h->size;
    }
    m.entries.push_back(e);
  }
  if (!req.modules.empty()) {
    RealFs lfs("local");
    auto text = lfs.read_file(req.modules, 1 << 20);
    if (!text) return err(Exit::Usage, text.error().msg);
    if (!*text) return err(Exit::Usage, fmt::format("--modules {}: no such file", req.modules));
    auto spec = parse_module_spec(**text, req.modules, req.version);
    if (!spec) return spec.error();
    m.modules = spec->first;
    m.classes = spec->second;
    if (auto s = seal_modules(m, req.modules); !s) return s.error();
  }
  auto check = unpack_manifest(pack_manifest(m), req.source);
  if (!check) return err(Exit::Usage, check.error().msg);
  return m;
}

bool same_content(const Manifest& a, const Manifest& b) {
  if (a.entries.size() != b.entries.size() || a.reconfig != b.reconfig || a.migrate != b.migrate ||
      a.min_compatible != b.min_compatible || pack_manifest(Manifest{"", "", "", "", 0, "", "", {}, a.modules, a.classes}) !=
                                                  pack_manifest(Manifest{"", "", "", "", 0, "", "", {}, b.modules, b.classes}))
    return false;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const auto &x = a.entries[i], &y = b.entries[i];
    if (x.kind != y.kind || x.path != y.path || x.mode != y.mode || x.size != y.size || x.sha256 != y.sha256 ||
        x.target != y.target)
      return false;
  }
  return true;
}

static bool no_hard_links(int e) { return e == EPERM || e == EXDEV || e == ENOTSUP || e == EMLINK || e == ENOSYS; }

// Copies `src` into the object store as `obj` (temp + fsync + rename), re-hashing while copying.
// With `also`, the temp file is hard-linked there before it is renamed into the store, so the
// object never exists with a link count of 1 (which is what `prune` deletes): a prune running
// beside this push cannot take it away between the copy and the link into the release.
static Result<uint64_t> put_object(Share& share, RealFs& fs, const std::string& src, const ManifestEntry& e,
                                   const std::string& obj, const std::string& also = "",
                                   bool* no_links = nullptr) {
  std::string tmp = fs.temp_for(obj);
  StallGuard::Section g("write", tmp);
  auto created = fs.create_new(tmp, 0600);  // never through a symlink planted at objects/<xx>
  if (!created) return created.error();
  int fd = *created;
  auto h = hash_file(src, fd, tmp);
  auto fail = [&](Error e2) -> Result<uint64_t> {
    (void)close_fd(fd);  // (the temp is dropped; the error reported is e2)
    (void)fs.unlink(tmp);
    return e2;
  };
  if (!h) return fail(h.error());
  if (h->sha256 != e.sha256 || h->size != e.size)
    return fail(err(Exit::Failed, fmt::format("{}: changed while it was being pushed; push again", src)));
  if (int ce = chmod_fd(fd, e.mode); ce != 0)
    return fail(err(Exit::Share, fmt::format("chmod({}): {}", tmp, errno_str(ce))));
  if (int se = sync_fd(fd); se != 0) return fail(err(Exit::Share, fmt::format("fsync({}): {}", tmp, errno_str(se))));
  if (int e2 = close_fd(fd); e2 != 0) {
    (void)fs.unlink(tmp);
    return err(Exit::Share, fmt::format("close({}): {}", tmp, errno_str(e2)));
  }
  if (int le = also.empty() ? 0 : fs.link(tmp, also); le != 0) {
    (void)fs.unlink(tmp);
    if (no_links) *no_links = no_hard_links(le);
    return fs_error("link", tmp + " -> " + also, le);
  }
  crash_point("stage-object-before-rename");
  if (auto s = share.fs().rename(tmp, obj); !s) {
    (void)fs.unlink(tmp);
    if (also.empty()) return s.error();  // (with `also`, the release has its file; the store lacks a copy)
  }
  return h->size;
}

// The local path each manifest entry is copied from (scan_source does not return them).
static std::vector<std::string> local_paths(const StageRequest& req, const Manifest& m) {
  std::vector<std::string> local;
  FileInfo st;
  bool dir = local_stat(req.source, &st) == 0 && st.type == FileInfo::Dir;  // (scan_source read it already)
  for (const auto& e : m.entries) {
    if (e.path == ".nfsup/reconfig") local.push_back(req.reconfig);
    else if (e.path == ".nfsup/migrate") local.push_back(req.migrate);
    else if (dir) local.push_back(path_join(req.source, e.path));
    else local.push_back(req.source);
  }
  return local;
}

// Puts entry `e` into the staging tree: a directory, a symlink, or a hard link to its object
// (stored first when the store lacks it). Returns the bytes written to the share.
static Result<uint64_t> place_entry(Share& share, RealFs& fs, const std::string& src, const ManifestEntry& e,
                                    const std::string& staging) {
  uint64_t written = 0;
  std::string dst = path_join(staging, e.path);
  StallGuard::Section g("stage", dst);
  if (e.kind == ManifestEntry::Dir) {
    if (auto s = fs.mkdir(dst, 0755); !s) return s.error();
    return 0;
  }
  if (e.kind == ManifestEntry::Symlink) {
    if (int se = fs.symlink(e.target, dst); se != 0) return fs_error("symlink", dst, se);
    return 0;
  }
  std::string obj = share.object_path(e.sha256, e.mode);
  auto have = fs.stat(obj);
  if (!have) return have.error();
  bool placed = false;
  if (*have && (*have)->size == e.size) {
    if (int le = fs.link(obj, dst); le == 0) {
      placed = true;
    } else {
      if (no_hard_links(le)) {
        // The share does not do hard links: store a private copy instead.
        auto w = put_object(share, fs, src, e, dst);
        if (!w) return w.error();
        written += *w;
        placed = true;
      } else if (le != ENOENT) {  // ENOENT: a prune took the object meanwhile; store it again
        return fs_error("link", obj + " -> " + dst, le);
      }
    }
  }
  if (!placed) {
    if (auto s = fs.mkdir(dirname_of(obj), 0755); !s) return s.error();
    bool no_links = false;
    auto w = put_object(share, fs, src, e, obj, dst, &no_links);
    if (!w && no_links) w = put_object(share, fs, src, e, dst);  // no hard links: a private copy
    if (!w) return w.error();
    written += *w;
  }
  return written;
}

// Per-class trees: hard links to the same objects, so each host class runs exactly its modules.
static Status make_class_trees(RealFs& fs, const Manifest& m, const std::string& staging) {
  for (const auto& c : m.classes) {
    std::string cdir = path_join(staging, ".nfsup/class/" + c.name);
    if (auto s = fs.mkdir(path_join(staging, ".nfsup/class"), 0755); !s) return s.error();
    if (auto s = fs.mkdir(cdir, 0755); !s) return s.error();
    auto mods = m.modules_for(&c);
    for (const auto& e : m.entries) {
      bool mine = false;
      for (const auto* mod : mods) mine = mine || Manifest::in_module(*mod, e.path);
      if (!mine) continue;
      std::string dst = path_join(cdir, e.path);
      // Parents of a module path are created as plain directories.
      std::string parent = dirname_of(dst);
      std::vector<std::string> chain;
      while (parent.size() > cdir.size()) {
        chain.push_back(parent);
        parent = dirname_of(parent);
      }
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) (void)fs.mkdir(*it, 0755);
      if (e.kind == ManifestEntry::Dir) {
        if (auto s = fs.mkdir(dst, 0755); !s) return s.error();
      } else if (e.kind == ManifestEntry::Symlink) {
        if (int se = fs.symlink(e.target, dst); se != 0) return fs_error("symlink", dst, se);
      } else if (int le = fs.link(path_join(staging, e.path), dst); le != 0) {
        return fs_error("link", dst, le);
      }
    }
  }
  return ok_status();
}

Result<StageResult> stage_release(Share& share, const StageRequest& req) {
  auto scanned = scan_source(req);
  if (!scanned) return scanned.error();
  StageResult res;
  res.manifest = *scanned;
  res.bytes_total = res.manifest.total_bytes();
  auto& fs = dynamic_cast<RealFs&>(share.fs());

  auto existing = share.read_manifest(req.version);
  if (!existing) return existing.error();
  if (*existing) {
    if (!same_content(**existing, res.manifest))
      return err(Exit::Usage, fmt::format("version {} is already on the share with different content; "
                                          "releases are immutable, push it as a new version",
                                          req.version));
    res.manifest = **existing;
    res.already_published = true;
    return res;
  }

  std::vector<std::string> local = local_paths(req, res.manifest);

  std::string staging = path_join(share.releases_dir(),
                                  fmt::format(".staging-{}.{}.{}", req.version, short_hostname(), self_pid()));
  auto cleanup = [&](Error e) -> Result<StageResult> {
    (void)remove_tree(fs, staging);
    return e;
  };
  if (auto s = fs.mkdir(staging, 0755); !s) return cleanup(s.error());
  if (auto s = fs.mkdir(path_join(staging, ".nfsup"), 0755); !s) return cleanup(s.error());

  uint64_t done = 0;
  for (size_t i = 0; i < res.manifest.entries.size(); ++i) {
    const auto& e = res.manifest.entries[i];
    if (req.interrupt && req.interrupt->load())
      return cleanup(err(Exit::Interrupted, fmt::format("interrupted while staging {}: nothing was published or "
                                                        "switched",
                                                        req.version)));
    auto w = place_entry(share, fs, local[i], e, staging);
    if (!w) return cleanup(w.error());
    res.bytes_written += *w;
    if (e.kind != ManifestEntry::File) continue;
    done += e.size;
    if (req.progress) req.progress(done, res.bytes_total);
  }
  if (auto s = make_class_trees(fs, res.manifest, staging); !s) return cleanup(s.error());
  crash_point("stage-before-manifest");
  std::string mtext = pack_manifest(res.manifest);
  if (auto s = fs.write_atomic(path_join(staging, ".nfsup/manifest"), mtext, 0444); !s) return cleanup(s.error());
  if (req.sign_key) {
    auto sig = sign_manifest_text(*req.sign_key, mtext);
    if (!sig) return cleanup(sig.error());
    if (auto s = fs.write_atomic(path_join(staging, ".nfsup/manifest.sig"), *sig, 0444); !s) return cleanup(s.error());
  }
  crash_point("stage-before-publish");
  {
    StallGuard::Section g("publish", share.release_dir(req.version));
    if (int e = fs.rename_errno(staging, share.release_dir(req.version)); e != 0) {
      auto again = share.read_manifest(req.version);
      if (again && *again && same_content(**again, res.manifest)) {
        (void)remove_tree(fs, staging);
        res.already_published = true;
        return res;
      }
      return cleanup(err(e == EEXIST || e == ENOTEMPTY ? Exit::Busy : Exit::Share,
                         fmt::format("rename({} -> {}): {}", staging, share.release_dir(req.version),
                                     errno_str(e))));
    }
  }
  return res;
}

}  // namespace nfsup
