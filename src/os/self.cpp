// nfsup os: this process and the machine it runs on.
#include "self.h"

#include <pwd.h>
#include <unistd.h>

namespace nfsup {

std::string short_hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  auto dot = h.find('.');
  if (dot != std::string::npos) h.resize(dot);
  return h.empty() ? "localhost" : h;
}

pid_t self_pid() { return ::getpid(); }

std::string self_user() {
  std::string user = std::to_string(::getuid());
  if (const passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
  return user;
}

bool is_terminal(int fd) { return ::isatty(fd) != 0; }

}  // namespace nfsup
