// nfsup core: the share's file formats: pure pack_*/unpack_* codecs of the marker, pointer,
// host status, manifest and vote records (no I/O; the Share class in share.cpp does that).
#include "share.h"

#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "crypto.h"
#include "hash.h"

namespace nfsup {

static std::string dash(const std::string& s) { return s.empty() ? "-" : s; }
static std::string undash(const std::string& s) { return s == "-" ? "" : s; }

bool Marker::targets_host(const std::string& h) const {
  if (!targets) return true;
  return std::find(targets->begin(), targets->end(), h) != targets->end();
}

const std::string& Pointer::release_for(const std::string& h) const {
  auto it = overrides.find(h);
  return it == overrides.end() ? release : it->second;
}

const ModuleInfo* Manifest::module(const std::string& name) const {
  for (const auto& m : modules)
    if (m.name == name) return &m;
  return nullptr;
}

bool Manifest::in_module(const ModuleInfo& m, const std::string& p) {
  for (const auto& pre : m.paths)
    if (p == pre || starts_with(p, pre + "/")) return true;
  return false;
}

const ClassInfo* Manifest::pick_class(const std::string& cls, const std::map<std::string, std::string>& traits) const {
  for (const auto& c : classes)
    if (!cls.empty() && c.name == cls) return &c;
  for (const auto& c : classes) {
    if (c.match.empty()) continue;
    bool all = true;
    for (const auto& [k, v] : c.match) {
      auto it = traits.find(k);
      if (it == traits.end() || it->second != v) all = false;
    }
    if (all) return &c;
  }
  return nullptr;
}

std::vector<const ModuleInfo*> Manifest::modules_for(const ClassInfo* c) const {
  std::vector<const ModuleInfo*> out;
  for (const auto& m : modules)
    if (!c || std::find(c->modules.begin(), c->modules.end(), m.name) != c->modules.end()) out.push_back(&m);
  return out;
}

uint64_t Manifest::total_bytes() const {
  uint64_t t = 0;
  for (const auto& e : entries) t += e.size;
  return t;
}

std::string object_name(const std::string& sha256, uint32_t mode) {
  return fmt::format("{}.{:o}", sha256, mode);
}

// ---- marker
std::string pack_marker(const Marker& m) {
  Record r{"marker", kFormatVersion, {}};
  r.add("generation", {std::to_string(m.generation)});
  r.add("action", {m.action});
  r.add("release", {m.release});
  r.add("previous", {dash(m.previous)});
  r.add("master_host", {m.master_host});
  r.add("master_pid", {std::to_string(m.master_pid)});
  r.add("nonce", {m.nonce});
  r.add("lease_ms", {std::to_string(m.lease_ms)});
  r.add("renewal", {std::to_string(m.renewal)});
  r.add("started", {dash(m.started)});
  r.add("strategy", {m.strategy});
  if (m.targets) r.add("targets", *m.targets);
  if (m.phase != "stop") r.add("phase", {m.phase});
  std::string text = pack_record(r);
  if (!m.signer) return text;
  auto sig = sign_data(*m.signer, text);
  if (!sig) return text;
  r.add("sig", {m.signer->id, *sig});
  return pack_record(r);
}

std::string marker_signing_bytes(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl == std::string_view::npos ? text.size() : nl + 1);
    text.remove_prefix(line.size());
    if (!starts_with(line, "sig ")) out += line;
  }
  return out;
}

#define TRY_ASSIGN(dst, expr)        \
  do {                               \
    auto _r = (expr);                \
    if (!_r) return _r.error();      \
    dst = std::move(*_r);            \
  } while (0)

static Error bad_value(std::string_view what, std::string_view key, const std::string& why) {
  return err(Exit::Integrity, fmt::format("{}: {}: {}", what, key, why));
}

// The marker's repeated lines: its targets and its signatures.
static Status unpack_marker_lists(const Record& rec, const RecordReader& rd, std::string_view text, Marker& m) {
  for (const auto& l : rec.lines) {
    if (l.key == "sig") {
      if (l.args.size() != 2 || l.args[0].size() != 16 || l.args[1].size() != 128)
        return rd.bad(l, "sig needs: key-id (16 hex) signature (128 hex)");
      m.sigs.emplace_back(l.args[0], l.args[1]);
      continue;
    }
    if (l.key != "targets") continue;
    if (m.targets) return rd.bad(l, "targets listed twice");
    if (l.args.size() > 100000) return rd.bad(l, "too many targets");
    for (const auto& h : l.args)
      if (auto e = check_host_name(h)) return rd.bad(l, "targets: " + *e);
    m.targets = l.args;
  }
  if (!m.sigs.empty()) m.signed_bytes = marker_signing_bytes(text);
  return ok_status();
}

Result<Marker> unpack_marker(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "marker", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Marker m;
  TRY_ASSIGN(m.generation, rd.num("generation"));
  TRY_ASSIGN(m.action, rd.str("action"));
  TRY_ASSIGN(m.release, rd.str("release"));
  std::string prev;
  TRY_ASSIGN(prev, rd.str("previous"));
  m.previous = undash(prev);
  TRY_ASSIGN(m.master_host, rd.str("master_host"));
  TRY_ASSIGN(m.master_pid, rd.num("master_pid"));
  TRY_ASSIGN(m.nonce, rd.str("nonce"));
  TRY_ASSIGN(m.lease_ms, rd.num("lease_ms"));
  TRY_ASSIGN(m.renewal, rd.num("renewal"));
  m.started = undash(rd.str_or("started", "-"));
  m.strategy = rd.str_or("strategy", "all-at-once");
  if (auto s = unpack_marker_lists(*rec, rd, text, m); !s) return s.error();
  if (m.strategy != "all-at-once" && m.strategy != "rolling") return bad_value(what, "strategy", "unknown strategy");
  m.phase = rd.str_or("phase", "stop");
  if (m.phase != "stop" && m.phase != "vote") return bad_value(what, "phase", "must be vote or stop");
  if (m.action != "push" && m.action != "rollback") return bad_value(what, "action", "must be push or rollback");
  if (auto e = check_version_name(m.release)) return bad_value(what, "release", *e);
  if (!m.previous.empty())
    if (auto e = check_version_name(m.previous)) return bad_value(what, "previous", *e);
  if (auto e = check_host_name(m.master_host)) return bad_value(what, "master_host", *e);
  if (m.generation < 1) return bad_value(what, "generation", "must be positive");
  if (m.lease_ms < 100 || m.lease_ms > 24LL * 3600 * 1000) return bad_value(what, "lease_ms", "out of range");
  return m;
}

// ---- pointer
std::string pack_pointer(const Pointer& p) {
  Record r{"current", kFormatVersion, {}};
  r.add("generation", {std::to_string(p.generation)});
  r.add("release", {p.release});
  r.add("previous", {dash(p.previous)});
  r.add("action", {p.action});
  r.add("updated", {dash(p.updated)});
  r.add("updated_by", {dash(p.updated_by)});
  if (!p.acting.empty()) r.add("acting", {p.acting});
  if (!p.min_supported.empty()) r.add("min_supported", {p.min_supported});
  for (const auto& [h, v] : p.overrides) r.add("host", {h, v});
  for (const auto& [id, sig] : p.sigs) r.add("sig", {id, sig});
  return pack_record(r);
}

Result<Pointer> unpack_pointer(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "current", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Pointer p;
  TRY_ASSIGN(p.generation, rd.num("generation"));
  TRY_ASSIGN(p.release, rd.str("release"));
  p.previous = undash(rd.str_or("previous", "-"));
  p.action = rd.str_or("action", "push");
  p.updated = undash(rd.str_or("updated", "-"));
  p.updated_by = undash(rd.str_or("updated_by", "-"));
  p.acting = undash(rd.str_or("acting", "-"));
  p.min_supported = undash(rd.str_or("min_supported", "-"));
  for (const auto& v : {p.acting, p.min_supported})
    if (!v.empty())
      if (auto e = check_version_name(v)) return bad_value(what, "acting/min_supported", *e);
  for (const auto& l : rec->lines) {
    if (l.key == "host") {
      if (l.args.size() != 2) return rd.bad(l, "host needs: name release");
      if (auto e = check_host_name(l.args[0])) return rd.bad(l, *e);
      if (auto e = check_version_name(l.args[1])) return rd.bad(l, *e);
      if (p.overrides.count(l.args[0])) return rd.bad(l, "host listed twice");
      p.overrides[l.args[0]] = l.args[1];
      continue;
    }
    if (l.key != "sig") continue;
    if (l.args.size() != 2 || l.args[0].size() != 16 || l.args[1].size() != 128)
      return rd.bad(l, "sig needs: key-id (16 hex) signature (128 hex)");
    p.sigs.emplace_back(l.args[0], l.args[1]);
  }
  if (auto e = check_version_name(p.release)) return bad_value(what, "release", *e);
  if (!p.previous.empty())
    if (auto e = check_version_name(p.previous)) return bad_value(what, "previous", *e);
  if (p.generation < 1) return bad_value(what, "generation", "must be positive");
  return p;
}

// ---- host status
std::string pack_status(const HostStatus& s) {
  Record r{"status", kFormatVersion, {}};
  r.add("host", {s.host});
  r.add("state", {s.state});
  r.add("running", {dash(s.running)});
  r.add("generation", {std::to_string(s.generation)});
  r.add("heartbeat", {std::to_string(s.heartbeat)});
  r.add("pid", {std::to_string(s.pid)});
  r.add("agent_pid", {std::to_string(s.agent_pid)});
  r.add("mode", {s.mode});
  r.add("reason", {dash(s.reason)});
  r.add("updated", {dash(s.updated)});
  r.add("trust", {dash(s.trust)});
  r.add("class", {dash(s.cls)});
  for (const auto& [m, v] : s.modules) r.add("module", {m, v});
  if (!s.runs_from.empty()) r.add("runs_from", {s.runs_from});
  if (!s.run_from.empty()) r.add("run_from", {s.run_from});
  r.add("group", {dash(s.group)});
  r.add("acting", {dash(s.acting)});
  if (s.poll_ms > 0) r.add("poll", {std::to_string(s.poll_ms)});
  if (!s.checks.empty()) r.add("checks", {s.checks});
  if (!s.watchdog_version.empty()) r.add("watchdog_version", {s.watchdog_version});
  if (!s.keys.empty()) r.add("keys", s.keys);
  return pack_record(r);
}

static const char* kStates[] = {"idle", "starting", "running", "stopping", "stopped", "failed", "draining", "voting",
                                "unchanged"};

static bool is_key_id(const std::string& id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) { return isxdigit(static_cast<unsigned char>(c)); });
}

// The `keys` line of a status: the ids of the keys the host trusts.
static Status unpack_status_keys(const Record& rec, const RecordReader& rd, HostStatus& s) {
  for (const auto& l : rec.lines) {
    if (l.key != "keys") continue;
    if (l.args.size() > 1000 || !std::all_of(l.args.begin(), l.args.end(), is_key_id))
      return rd.bad(l, "keys needs: key ids (16 hex each)");
    s.keys = l.args;
  }
  return ok_status();
}

// The optional lines of a status that say how the host is set up (acting, poll, checks,
// run_from, watchdog_version), each checked.
static Status unpack_status_settings(RecordReader& rd, std::string_view what, HostStatus& s) {
  s.acting = undash(rd.str_or("acting", "-"));
  s.poll_ms = rd.num_or("poll", 0);
  if (s.poll_ms < 0) return bad_value(what, "poll", "must not be negative");
  s.checks = rd.str_or("checks", "");
  if (!s.checks.empty() && s.checks != "yes" && s.checks != "no")
    return bad_value(what, "checks", fmt::format("'{}' is neither yes nor no", s.checks));
  s.run_from = rd.str_or("run_from", "");
  if (!s.run_from.empty() && s.run_from != "local" && s.run_from != "share")
    return bad_value(what, "run_from", "must be local or share");
  s.watchdog_version = rd.str_or("watchdog_version", "");
  if (!s.watchdog_version.empty())
    if (auto e = check_version_name(s.watchdog_version)) return bad_value(what, "watchdog_version", *e);
  return ok_status();
}

Result<HostStatus> unpack_status(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "status", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  HostStatus s;
  TRY_ASSIGN(s.host, rd.str("host"));
  TRY_ASSIGN(s.state, rd.str("state"));
  std::string running;
  TRY_ASSIGN(running, rd.str("running"));
  s.running = undash(running);
  TRY_ASSIGN(s.generation, rd.num("generation"));
  TRY_ASSIGN(s.heartbeat, rd.num("heartbeat"));
  s.pid = rd.num_or("pid", 0);
  s.agent_pid = rd.num_or("agent_pid", 0);
  s.mode = rd.str_or("mode", "daemon");
  s.reason = undash(rd.str_or("reason", "-"));
  s.updated = undash(rd.str_or("updated", "-"));
  s.trust = undash(rd.str_or("trust", "-"));
  s.group = undash(rd.str_or("group", "-"));
  s.cls = undash(rd.str_or("class", "-"));
  s.runs_from = rd.str_or("runs_from", "");
  if (!s.runs_from.empty())
    if (auto e = check_version_name(s.runs_from)) return bad_value(what, "runs_from", *e);
  for (const auto& l : rec->lines) {
    if (l.key != "module") continue;
    if (l.args.size() != 2 || check_host_name(l.args[0]) || check_version_name(l.args[1]))
      return rd.bad(l, "module needs: name version");
    s.modules[l.args[0]] = l.args[1];
  }
  if (auto k = unpack_status_keys(*rec, rd, s); !k) return k.error();
  if (!s.cls.empty())
    if (auto e = check_host_name(s.cls)) return bad_value(what, "class", *e);
  if (auto o = unpack_status_settings(rd, what, s); !o) return o.error();
  if (!s.group.empty())
    if (auto e = check_host_name(s.group)) return bad_value(what, "group", *e);
  if (auto e = check_host_name(s.host)) return bad_value(what, "host", *e);
  if (std::find_if(std::begin(kStates), std::end(kStates), [&](const char* k) { return s.state == k; }) ==
      std::end(kStates))
    return bad_value(what, "state", fmt::format("unknown state '{}'", s.state));
  if (!s.running.empty())
    if (auto e = check_version_name(s.running)) return bad_value(what, "running", *e);
  if (s.reason.size() > 1024) s.reason.resize(1024);
  return s;
}

// ---- manifest
std::string pack_manifest(const Manifest& m) {
  Record r{"manifest", kFormatVersion, {}};
  r.add("version", {m.version});
  r.add("created", {dash(m.created)});
  r.add("created_by", {dash(m.created_by)});
  r.add("reconfig", {dash(m.reconfig)});
  if (m.expires) r.add("expires", {std::to_string(m.expires)});
  if (!m.min_compatible.empty()) r.add("min_compatible", {m.min_compatible});
  if (!m.migrate.empty()) r.add("migrate", {m.migrate});
  for (const auto& mod : m.modules) {
    std::vector<std::string> a{mod.name, mod.version, mod.sha256, std::to_string(mod.size)};
    a.insert(a.end(), mod.paths.begin(), mod.paths.end());
    r.add("module", a);
    for (const auto& [d, v] : mod.depends) r.add("depends", {mod.name, d, v});
    for (const auto& [api, v] : mod.provides) r.add("provides", {mod.name, api, v});
    for (const auto& [api, v] : mod.consumes) r.add("consumes", {mod.name, api, v});
  }
  for (const auto& c : m.classes) {
    std::vector<std::string> a{c.name};
    a.insert(a.end(), c.modules.begin(), c.modules.end());
    r.add("class", a);
    for (const auto& [k, v] : c.match) r.add("match", {c.name, k, v});
  }
  for (const auto& e : m.entries) {
    switch (e.kind) {
      case ManifestEntry::Dir: r.add("dir", {e.path, fmt::format("{:o}", e.mode)}); break;
      case ManifestEntry::Symlink: r.add("symlink", {e.path, e.target}); break;
      case ManifestEntry::File:
        r.add("file", {e.path, fmt::format("{:o}", e.mode), std::to_string(e.size), e.sha256});
        break;
    }
  }
  return pack_record(r);
}

static std::optional<uint32_t> parse_mode(const std::string& s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    v = v * 8 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

namespace {

// The kind of every path listed so far.
using ManifestPaths = std::map<std::string, int>;
using ManifestLine = Status (*)(Manifest&, const RecordLine&, const RecordReader&, ManifestPaths&);

// Checks entry `e` (its path is the line's first argument) and adds it to `m`.
Status add_entry(Manifest& m, ManifestEntry e, const RecordLine& l, const RecordReader& rd, ManifestPaths& seen) {
  e.path = l.args[0];
  if (auto why = check_rel_path(e.path)) return rd.bad(l, *why);
  if (seen.count(e.path)) return rd.bad(l, fmt::format("path '{}' listed twice", e.path));
  seen[e.path] = e.kind;
  if (e.kind == ManifestEntry::Symlink) {
    // The link must resolve inside the release: count depth along the target.
    int depth = static_cast<int>(std::count(e.path.begin(), e.path.end(), '/'));
    for (const auto& c : split(e.target, '/')) {
      if (c == "..") --depth;
      else if (!c.empty() && c != ".") ++depth;
      if (depth < 0) return rd.bad(l, fmt::format("symlink '{}' points outside the release", e.path));
    }
  }
  m.entries.push_back(std::move(e));
  return ok_status();
}

Status file_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths& seen) {
  if (l.args.size() != 4) return rd.bad(l, "file needs: path mode size sha256");
  ManifestEntry e;
  e.kind = ManifestEntry::File;
  auto mode = parse_mode(l.args[1]);
  auto size = parse_i64(l.args[2]);
  if (!mode || (*mode & 07022) != 0) return rd.bad(l, "bad mode (must be octal, not group/world-writable, no setuid)");
  if (!size || *size < 0) return rd.bad(l, "bad size");
  if (!is_sha256_hex(l.args[3])) return rd.bad(l, "bad sha256");
  e.mode = *mode;
  e.size = static_cast<uint64_t>(*size);
  e.sha256 = l.args[3];
  return add_entry(m, std::move(e), l, rd, seen);
}

Status dir_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths& seen) {
  if (l.args.size() != 2) return rd.bad(l, "dir needs: path mode");
  ManifestEntry e;
  e.kind = ManifestEntry::Dir;
  auto mode = parse_mode(l.args[1]);
  if (!mode || (*mode & 07022) != 0) return rd.bad(l, "bad mode");
  e.mode = *mode;
  return add_entry(m, std::move(e), l, rd, seen);
}

Status symlink_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths& seen) {
  if (l.args.size() != 2) return rd.bad(l, "symlink needs: path target");
  ManifestEntry e;
  e.kind = ManifestEntry::Symlink;
  e.target = l.args[1];
  if (e.target.empty() || e.target[0] == '/' || e.target.size() > 4096)
    return rd.bad(l, "symlink target must be relative");
  if (std::any_of(e.target.begin(), e.target.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    return rd.bad(l, "symlink target contains a control character");
  return add_entry(m, std::move(e), l, rd, seen);
}

Status module_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths&) {
  if (l.args.size() < 5) return rd.bad(l, "module needs: name version sha256 size path...");
  ModuleInfo mod;
  mod.name = l.args[0];
  mod.version = l.args[1];
  mod.sha256 = l.args[2];
  auto sz = parse_i64(l.args[3]);
  if (check_host_name(mod.name)) return rd.bad(l, "bad module name");
  if (auto e2 = check_version_name(mod.version)) return rd.bad(l, "module version: " + *e2);
  if (!is_sha256_hex(mod.sha256)) return rd.bad(l, "bad module sha256");
  if (!sz || *sz < 0) return rd.bad(l, "bad module size");
  mod.size = static_cast<uint64_t>(*sz);
  for (size_t i = 4; i < l.args.size(); ++i) {
    if (auto e2 = check_rel_path(l.args[i])) return rd.bad(l, "module path: " + *e2);
    mod.paths.push_back(l.args[i]);
  }
  if (m.module(mod.name)) return rd.bad(l, "module listed twice");
  m.modules.push_back(std::move(mod));
  return ok_status();
}

// depends, provides, consumes: module name version.
Status module_api_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths&) {
  if (l.args.size() != 3) return rd.bad(l, l.key + " needs: module name version");
  ModuleInfo* mod = nullptr;
  for (auto& x : m.modules)
    if (x.name == l.args[0]) mod = &x;
  if (!mod) return rd.bad(l, fmt::format("{} names unknown module '{}'", l.key, l.args[0]));
  if (check_host_name(l.args[1]) || check_version_name(l.args[2])) return rd.bad(l, "bad name or version");
  (l.key == "depends" ? mod->depends : l.key == "provides" ? mod->provides : mod->consumes)[l.args[1]] = l.args[2];
  return ok_status();
}

Status class_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths&) {
  if (l.args.empty() || check_host_name(l.args[0])) return rd.bad(l, "class needs: name module...");
  ClassInfo c;
  c.name = l.args[0];
  for (size_t i = 1; i < l.args.size(); ++i) {
    if (!m.module(l.args[i])) return rd.bad(l, fmt::format("class {} names unknown module '{}'", c.name, l.args[i]));
    c.modules.push_back(l.args[i]);
  }
  m.classes.push_back(std::move(c));
  return ok_status();
}

Status match_line(Manifest& m, const RecordLine& l, const RecordReader& rd, ManifestPaths&) {
  if (l.args.size() != 3) return rd.bad(l, "match needs: class key value");
  ClassInfo* c = nullptr;
  for (auto& x : m.classes)
    if (x.name == l.args[0]) c = &x;
  if (!c) return rd.bad(l, fmt::format("match names unknown class '{}'", l.args[0]));
  c->match[l.args[1]] = l.args[2];
  return ok_status();
}

// The repeated lines of a manifest. Single-value lines are read by name; keys from newer minor
// revisions are ignored (format breaks bump the version).
const std::map<std::string, ManifestLine, std::less<>> kManifestLines = {
    {"file", file_line},         {"dir", dir_line},           {"symlink", symlink_line},
    {"module", module_line},     {"depends", module_api_line}, {"provides", module_api_line},
    {"consumes", module_api_line}, {"class", class_line},     {"match", match_line},
};

// A script the manifest names (reconfig, migrate) must be one of its files.
Status check_listed_file(std::string_view what, const char* key, const std::string& path, ManifestPaths& seen,
                         const char* noun) {
  if (path.empty()) return ok_status();
  if (auto why = check_rel_path(path)) return bad_value(what, key, *why);
  if (!seen.count(path) || seen[path] != ManifestEntry::File)
    return bad_value(what, key, fmt::format("{} is not listed as a file", noun));
  return ok_status();
}

}  // namespace

Result<Manifest> unpack_manifest(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "manifest", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Manifest m;
  TRY_ASSIGN(m.version, rd.str("version"));
  if (auto e = check_version_name(m.version)) return bad_value(what, "version", *e);
  m.created = undash(rd.str_or("created", "-"));
  m.created_by = undash(rd.str_or("created_by", "-"));
  m.reconfig = undash(rd.str_or("reconfig", "-"));
  m.min_compatible = undash(rd.str_or("min_compatible", "-"));
  m.migrate = undash(rd.str_or("migrate", "-"));
  if (!m.min_compatible.empty())
    if (auto e = check_version_name(m.min_compatible)) return bad_value(what, "min_compatible", *e);
  if (std::any_of(rec->lines.begin(), rec->lines.end(), [](const RecordLine& l) { return l.key == "expires"; })) {
    auto x = rd.num("expires");
    if (!x) return x.error();
    m.expires = *x;
  }
  ManifestPaths seen;
  for (const auto& l : rec->lines)
    if (auto it = kManifestLines.find(l.key); it != kManifestLines.end())
      if (auto s = it->second(m, l, rd, seen); !s) return s.error();
  if (auto s = check_listed_file(what, "reconfig", m.reconfig, seen, "script"); !s) return s.error();
  if (auto s = check_listed_file(what, "migrate", m.migrate, seen, "hook"); !s) return s.error();
  return m;
}

bool Vote::answers(const Marker& m) const {
  return version >= 2 && generation == m.generation && nonce == m.nonce && target == m.release;
}

std::string pack_vote(const Vote& v) {
  Record r{"vote", kVoteFormatVersion, {}};
  r.add("host", {v.host});
  r.add("generation", {std::to_string(v.generation)});
  r.add("nonce", {v.nonce});
  r.add("target", {v.target});
  r.add("vote", {v.accept ? "accept" : "veto"});
  r.add("reason", {dash(v.reason)});
  return pack_record(r);
}

Result<Vote> unpack_vote(std::string_view text, std::string_view what) {
  auto rec = unpack_record(text, "vote", kVoteFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  Vote v;
  v.version = rec->version;
  TRY_ASSIGN(v.host, rd.str("host"));
  TRY_ASSIGN(v.generation, rd.num("generation"));
  if (v.version >= 2) {
    TRY_ASSIGN(v.nonce, rd.str("nonce"));
    TRY_ASSIGN(v.target, rd.str("target"));
    if (v.nonce.empty()) return bad_value(what, "nonce", "must not be empty");
    if (auto e = check_version_name(v.target)) return bad_value(what, "target", *e);
  }
  std::string vote;
  TRY_ASSIGN(vote, rd.str("vote"));
  if (vote != "accept" && vote != "veto") return bad_value(what, "vote", "must be accept or veto");
  v.accept = vote == "accept";
  v.reason = undash(rd.str_or("reason", "-"));
  if (v.reason.size() > 1024) v.reason.resize(1024);
  if (auto e = check_host_name(v.host)) return bad_value(what, "host", *e);
  return v;
}

}  // namespace nfsup
