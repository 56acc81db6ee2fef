// nfsup core: which file system holds a path.
#include "mounts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include "os/files.h"
#include <sstream>
#include <vector>

namespace nfsup {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      o += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      o += s[i];
    }
  }
  return o;
}

bool under(const std::string& path, const std::string& mp) {
  if (mp == "/") return true;
  return path == mp || (path.size() > mp.size() && path.compare(0, mp.size(), mp) == 0 && path[mp.size()] == '/');
}

}  // namespace

std::optional<MountInfo> mount_holding(std::string_view mountinfo, const std::string& abs_path) {
  std::optional<MountInfo> best;
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional fields...] - fstype source super-options
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 1 == f.end()) continue;
    MountInfo m{unescape_octal(f[4]), *(dash + 1)};
    if (!under(abs_path, m.mount_point)) continue;
    if (!best || m.mount_point.size() >= best->mount_point.size()) best = m;
  }
  return best;
}

bool is_network_fs(std::string_view t) {
  static const std::string_view kNetwork[] = {"nfs",        "nfs4",           "cifs",    "smb3",   "smbfs",
                                              "ceph",       "fuse.ceph",      "glusterfs", "fuse.glusterfs",
                                              "lustre",     "gpfs",           "afs",     "beegfs", "9p",
                                              "fuse.sshfs", "fuse.cephfs",    "ocfs2",   "gfs2"};
  return std::find(std::begin(kNetwork), std::end(kNetwork), t) != std::end(kNetwork);
}

Result<MountInfo> mount_of_path(const std::string& path) {
  std::string p = path.empty() ? "." : path;
  std::string buf;
  // The nearest existing parent: the share directory may not exist yet.
  while (int e = real_path(p, &buf)) {
    if (e != ENOENT && e != ENOTDIR) return err(Exit::Usage, fmt::format("{}: {}", p, errno_str(e)));
    auto slash = p.find_last_of('/');
    if (slash == std::string::npos) p = ".";
    else if (slash == 0) p = "/";
    else p = p.substr(0, slash);
  }
  std::string info;
  if (read_all("/proc/self/mountinfo", 16 * 1024 * 1024, &info) != 0)
    return err(Exit::Failed, "/proc/self/mountinfo: cannot read it (is /proc mounted?)");
  auto m = mount_holding(info, buf);
  if (!m) return err(Exit::Failed, fmt::format("{}: no mount in /proc/self/mountinfo holds it", buf));
  return *m;
}

}  // namespace nfsup
