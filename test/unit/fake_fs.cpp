// In-memory FileSystem for unit tests (see fake_fs.h).
#include "fake_fs.h"

#include <errno.h>
#include <fmt/format.h>

#include <algorithm>

namespace nfsup::test {

FakeFs::FakeFs() {
  Node root;
  root.type = FileInfo::Dir;
  root.mode = 0755;
  root.mtime_ms = now_ms_;
  root.ino = next_ino_++;
  nodes_["/"] = root;
}

std::string FakeFs::normalize(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

Error FakeFs::sys_err(const std::string& op, const std::string& path, int e) {
  return err(Exit::Share, fmt::format("{}({}): {}", op, path, errno_str(e)));
}

void FakeFs::enter(const std::string& op, const std::string& path) {
  {
    std::lock_guard<std::mutex> l(mu_);
    calls_.push_back(Call{op, path});
  }
  if (on_call) on_call(op, path);
}

static bool path_matches(const std::string& rule, const std::string& path) {
  if (rule == "*" || rule == path) return true;
  if (rule.size() >= 2 && rule.compare(rule.size() - 2, 2, "/*") == 0) {
    std::string prefix = rule.substr(0, rule.size() - 1);  // keeps the '/'
    return path.compare(0, prefix.size(), prefix) == 0;
  }
  return false;
}

int FakeFs::injected(const std::string& op, const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->op != "*" && it->op != op) continue;
    bool hit = std::any_of(paths.begin(), paths.end(), [&](const std::string& p) { return path_matches(it->path, p); });
    if (!hit) continue;
    int e = it->errnum;
    if (it->times > 0 && --it->times == 0) rules_.erase(it);
    return e;
  }
  return 0;
}

int FakeFs::parent_state(const std::string& path) const {
  // Walk the ancestors top-down like the kernel's lookup: a missing one is ENOENT, a non-directory ENOTDIR.
  for (size_t s = path.find('/', 1); s != std::string::npos; s = path.find('/', s + 1)) {
    auto it = nodes_.find(path.substr(0, s));
    if (it == nodes_.end()) return ENOENT;
    if (it->second.type != FileInfo::Dir) return ENOTDIR;
  }
  return 0;
}

void FakeFs::touch_parent(const std::string& path) {
  auto it = nodes_.find(dirname_of(path));
  if (it != nodes_.end()) it->second.mtime_ms = now_ms_;
}

FakeFs::Node& FakeFs::put(const std::string& path, Node n) {
  n.mtime_ms = now_ms_;
  n.ino = next_ino_++;
  touch_parent(path);
  return nodes_[path] = std::move(n);
}

bool FakeFs::has_children(const std::string& path) const {
  if (path == "/") return nodes_.size() > 1;
  std::string prefix = path + "/";
  auto it = nodes_.lower_bound(prefix);
  return it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------- FileSystem

Result<std::optional<std::string>> FakeFs::read_file(const std::string& path0, size_t max_bytes) {
  std::string path = normalize(path0);
  enter("read_file", path);
  if (int e = injected("read_file", {path})) return sys_err("read_file", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) {
    if (e == ENOENT) return std::optional<std::string>();
    return sys_err("read_file", path, e);
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return std::optional<std::string>();
  // As RealFs: O_NOFOLLOW, and only a regular file is read (fstat after the open).
  if (it->second.type == FileInfo::Symlink)
    return err(Exit::Integrity, fmt::format("{}: a symlink, not a regular file", path));
  if (it->second.type != FileInfo::File) return err(Exit::Integrity, fmt::format("{}: not a regular file", path));
  if (it->second.data.size() > max_bytes)
    return err(Exit::Integrity, fmt::format("{}: file is larger than the {} byte limit", path, max_bytes));
  return std::optional<std::string>(it->second.data);
}

Status FakeFs::write_atomic(const std::string& path0, std::string_view data, uint32_t mode) {
  std::string path = normalize(path0);
  enter("write_atomic", path);
  if (int e = injected("write_atomic", {path})) return sys_err("write_atomic", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) return sys_err("write_atomic", path, e);
  auto it = nodes_.find(path);
  if (it != nodes_.end() && it->second.type == FileInfo::Dir) return sys_err("write_atomic", path, EISDIR);
  Node n;
  n.type = FileInfo::File;
  n.data = std::string(data);
  n.mode = mode & 07777;
  put(path, std::move(n));
  return ok_status();
}

Result<bool> FakeFs::publish_new(const std::string& path0, std::string_view data, uint32_t mode) {
  std::string path = normalize(path0);
  enter("publish_new", path);
  if (int e = injected("publish_new", {path})) return sys_err("publish_new", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) return sys_err("publish_new", path, e);
  if (nodes_.count(path)) return false;
  Node n;
  n.type = FileInfo::File;
  n.data = std::string(data);
  n.mode = mode & 07777;
  put(path, std::move(n));
  return true;
}

Result<std::optional<FileInfo>> FakeFs::stat(const std::string& path0) {
  std::string path = normalize(path0);
  enter("stat", path);
  if (int e = injected("stat", {path})) return sys_err("stat", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) {
    if (e == ENOENT) return std::optional<FileInfo>();
    return sys_err("stat", path, e);
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return std::optional<FileInfo>();
  FileInfo fi;
  fi.type = it->second.type;
  fi.size = it->second.data.size();
  fi.mode = it->second.mode;
  fi.mtime_ms = it->second.mtime_ms;
  fi.nlink = it->second.type == FileInfo::Dir ? 2 : 1;
  fi.ino = it->second.ino;
  return std::optional<FileInfo>(fi);
}

Result<std::vector<DirEntry>> FakeFs::list_dir(const std::string& path0) {
  std::string path = normalize(path0);
  enter("list_dir", path);
  if (int e = injected("list_dir", {path})) return sys_err("list_dir", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) return sys_err("list_dir", path, e);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return sys_err("list_dir", path, ENOENT);
  if (it->second.type != FileInfo::Dir) return sys_err("list_dir", path, ENOTDIR);
  std::vector<DirEntry> out;
  std::string prefix = path == "/" ? "/" : path + "/";
  for (const auto& [p, n] : nodes_) {
    if (p == path || p.compare(0, prefix.size(), prefix) != 0) continue;
    std::string rest = p.substr(prefix.size());
    if (rest.empty() || rest.find('/') != std::string::npos) continue;
    out.push_back(DirEntry{rest, n.type});
  }
  return out;
}

Status FakeFs::mkdir(const std::string& path0, uint32_t mode) {
  std::string path = normalize(path0);
  enter("mkdir", path);
  if (int e = injected("mkdir", {path})) return sys_err("mkdir", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (nodes_.count(path)) return ok_status();  // EEXIST is fine (RealFs does not check the type)
  if (int e = parent_state(path)) return sys_err("mkdir", path, e);
  Node n;
  n.type = FileInfo::Dir;
  n.mode = mode & 07777;
  put(path, std::move(n));
  return ok_status();
}

Status FakeFs::rename(const std::string& from0, const std::string& to0) {
  std::string from = normalize(from0), to = normalize(to0);
  std::string both = from + " -> " + to;
  enter("rename", both);
  if (int e = injected("rename", {from, to, both})) return sys_err("rename", both, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(from)) return sys_err("rename", both, e);
  if (int e = parent_state(to)) return sys_err("rename", both, e);
  auto src = nodes_.find(from);
  if (src == nodes_.end()) return sys_err("rename", both, ENOENT);
  if (from == to) return ok_status();
  bool src_dir = src->second.type == FileInfo::Dir;
  if (src_dir && to.compare(0, from.size() + 1, from + "/") == 0) return sys_err("rename", both, EINVAL);
  auto dst = nodes_.find(to);
  if (dst != nodes_.end()) {
    bool dst_dir = dst->second.type == FileInfo::Dir;
    if (dst_dir && !src_dir) return sys_err("rename", both, EISDIR);
    if (!dst_dir && src_dir) return sys_err("rename", both, ENOTDIR);
    if (dst_dir && has_children(to)) return sys_err("rename", both, ENOTEMPTY);
    nodes_.erase(dst);
  }
  // Move the node and, for a directory, everything below it.
  std::vector<std::pair<std::string, Node>> moved;
  std::string prefix = from + "/";
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->first == from || it->first.compare(0, prefix.size(), prefix) == 0) {
      moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [p, n] : moved) nodes_[p] = std::move(n);  // rename keeps inode and mtime
  touch_parent(from);
  touch_parent(to);
  return ok_status();
}

Result<bool> FakeFs::unlink(const std::string& path0) {
  std::string path = normalize(path0);
  enter("unlink", path);
  if (int e = injected("unlink", {path})) return sys_err("unlink", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) {
    if (e == ENOENT) return false;
    return sys_err("unlink", path, e);
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return false;
  if (it->second.type == FileInfo::Dir) return sys_err("unlink", path, EISDIR);
  nodes_.erase(it);
  touch_parent(path);
  return true;
}

Status FakeFs::rmdir(const std::string& path0) {
  std::string path = normalize(path0);
  enter("rmdir", path);
  if (int e = injected("rmdir", {path})) return sys_err("rmdir", path, e);
  std::lock_guard<std::mutex> l(mu_);
  if (int e = parent_state(path)) {
    if (e == ENOENT) return ok_status();
    return sys_err("rmdir", path, e);
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return ok_status();
  if (it->second.type != FileInfo::Dir) return sys_err("rmdir", path, ENOTDIR);
  if (path == "/") return sys_err("rmdir", path, EBUSY);
  if (has_children(path)) return sys_err("rmdir", path, ENOTEMPTY);
  nodes_.erase(it);
  touch_parent(path);
  return ok_status();
}

Result<std::optional<std::string>> FakeFs::probe(const std::string& dir0, const std::string& name,
                                                 size_t max_bytes) {
  std::string dir = normalize(dir0);
  std::string path = normalize(path_join(dir, name));
  enter("probe", path);
  if (int e = injected("probe", {dir})) return sys_err("probe", dir, e);
  if (int e = injected("probe", {path})) return sys_err("probe", path, e);
  std::lock_guard<std::mutex> l(mu_);
  // open(dir): the directory itself must exist.
  if (int e = parent_state(dir)) return sys_err("probe", dir, e);
  auto d = nodes_.find(dir);
  if (d == nodes_.end()) return sys_err("probe", dir, ENOENT);
  if (d->second.type != FileInfo::Dir) return sys_err("probe", dir, ENOTDIR);
  // openat(name) + read
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return std::optional<std::string>();
  if (it->second.type == FileInfo::Symlink)
    return err(Exit::Integrity, fmt::format("{}: a symlink, not a regular file", path));
  if (it->second.type != FileInfo::File) return err(Exit::Integrity, fmt::format("{}: not a regular file", path));
  if (it->second.data.size() > max_bytes)
    return err(Exit::Integrity, fmt::format("{}: file is larger than the {} byte limit", path, max_bytes));
  return std::optional<std::string>(it->second.data);
}

// ---------------------------------------------------------------- setup and inspection

void FakeFs::add_dir_locked(const std::string& path, uint32_t mode) {
  if (path == "/" || path.empty()) return;
  add_dir_locked(dirname_of(path), 0755);
  auto it = nodes_.find(path);
  if (it != nodes_.end() && it->second.type == FileInfo::Dir) return;
  Node n;
  n.type = FileInfo::Dir;
  n.mode = mode & 07777;
  put(path, std::move(n));
}

void FakeFs::add_dir(const std::string& path, uint32_t mode) {
  std::lock_guard<std::mutex> l(mu_);
  add_dir_locked(normalize(path), mode);
}

void FakeFs::add_file(const std::string& path0, std::string data, uint32_t mode) {
  std::string path = normalize(path0);
  std::lock_guard<std::mutex> l(mu_);
  add_dir_locked(dirname_of(path), 0755);
  Node n;
  n.type = FileInfo::File;
  n.data = std::move(data);
  n.mode = mode & 07777;
  put(path, std::move(n));
}

void FakeFs::add_symlink(const std::string& path0, std::string target) {
  std::string path = normalize(path0);
  std::lock_guard<std::mutex> l(mu_);
  add_dir_locked(dirname_of(path), 0755);
  Node n;
  n.type = FileInfo::Symlink;
  n.data = std::move(target);
  n.mode = 0777;
  put(path, std::move(n));
}

void FakeFs::remove(const std::string& path0) {
  std::string path = normalize(path0);
  std::lock_guard<std::mutex> l(mu_);
  std::string prefix = path + "/";
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->first != "/" && (it->first == path || it->first.compare(0, prefix.size(), prefix) == 0))
      it = nodes_.erase(it);
    else
      ++it;
  }
}

bool FakeFs::exists(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_.count(normalize(path)) != 0;
}

std::optional<std::string> FakeFs::content(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(normalize(path));
  if (it == nodes_.end() || it->second.type != FileInfo::File) return std::nullopt;
  return it->second.data;
}

std::optional<FileInfo> FakeFs::info(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(normalize(path));
  if (it == nodes_.end()) return std::nullopt;
  FileInfo fi;
  fi.type = it->second.type;
  fi.size = it->second.data.size();
  fi.mode = it->second.mode;
  fi.mtime_ms = it->second.mtime_ms;
  fi.nlink = it->second.type == FileInfo::Dir ? 2 : 1;
  fi.ino = it->second.ino;
  return fi;
}

std::vector<std::string> FakeFs::paths() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [p, n] : nodes_)
    if (p != "/") out.push_back(p);
  return out;
}

void FakeFs::set_now_ms(int64_t ms) {
  std::lock_guard<std::mutex> l(mu_);
  now_ms_ = ms;
}

void FakeFs::advance_ms(int64_t ms) {
  std::lock_guard<std::mutex> l(mu_);
  now_ms_ += ms;
}

int64_t FakeFs::now_ms() const {
  std::lock_guard<std::mutex> l(mu_);
  return now_ms_;
}

void FakeFs::fail(const std::string& op, const std::string& path, int errnum, int times) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(Rule{op, path == "*" ? path : normalize(path), errnum, times});
}

void FakeFs::clear_failures() {
  std::lock_guard<std::mutex> l(mu_);
  rules_.clear();
}

std::vector<FakeFs::Call> FakeFs::calls() const {
  std::lock_guard<std::mutex> l(mu_);
  return calls_;
}

size_t FakeFs::count(const std::string& op, const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  std::string np = path.empty() ? "" : normalize(path);
  return static_cast<size_t>(std::count_if(calls_.begin(), calls_.end(), [&](const Call& c) {
    return (op == "*" || c.op == op) && (np.empty() || c.path == np);
  }));
}

void FakeFs::clear_calls() {
  std::lock_guard<std::mutex> l(mu_);
  calls_.clear();
}

}  // namespace nfsup::test
