// nfsup core: which file system holds a path (from /proc/self/mountinfo), and whether it is a
// network file system that other hosts can mount too.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "util.h"

namespace nfsup {

struct MountInfo {
  std::string mount_point;  ///< where it is mounted
  std::string fstype;       ///< as mountinfo names it: nfs4, ext4, fuse.sshfs, ...
};

/// The mount holding `abs_path` (an absolute path without symlinks): the one with the longest
/// mount point that is `abs_path` or one of its parents; the last such line wins (a later mount
/// on the same point hides the earlier one). Pure: `mountinfo` is the text of the proc file.
std::optional<MountInfo> mount_holding(std::string_view mountinfo, const std::string& abs_path);

/// NFS, SMB/CIFS, and the cluster and FUSE file systems that hosts share (sshfs included).
bool is_network_fs(std::string_view fstype);

/// The mount holding `path`, or its nearest existing parent when `path` does not exist yet.
Result<MountInfo> mount_of_path(const std::string& path);

}  // namespace nfsup
