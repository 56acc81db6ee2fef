// nfsup os: helpers shared by files.cpp and files_write.cpp (not for use outside src/os).
#pragma once

#include <sys/stat.h>

#include "files.h"

namespace nfsup {

/// The error of resolving a's directory, for operation `op` on `path`.
Error at_err(std::string_view op, const RealFs::At& a, const std::string& path);
/// The name of `full` (a sibling of a.name) as seen from a.fd.
std::string sibling(const RealFs::At& a, const std::string& full);
FileInfo to_info(const struct stat& st);

}  // namespace nfsup
