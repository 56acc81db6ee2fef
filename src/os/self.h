// nfsup os: this process and the machine it runs on.
#pragma once

#include <sys/types.h>

#include <string>

namespace nfsup {

/// The host name up to its first dot ("localhost" when it cannot be read).
std::string short_hostname();
/// This process's id.
pid_t self_pid();
/// The name of the real user (its uid in decimal when it has no passwd entry).
std::string self_user();
/// True if descriptor fd is a terminal.
bool is_terminal(int fd);

}  // namespace nfsup
