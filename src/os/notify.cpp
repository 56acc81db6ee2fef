// nfsup os: an append-only log file and a datagram socket.
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace nfsup {

static_assert(sizeof(sockaddr_un) <= 128, "DatagramSender::addr_ holds a sockaddr_un");

int open_append(const std::string& path, unsigned mode, int* fd) {
  *fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, mode);
  return *fd < 0 ? errno : 0;
}

bool write_fd(int fd, std::string_view data) {
  return ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
}

void close_quietly(int fd) {
  if (fd >= 0) ::close(fd);
}

DatagramSender::~DatagramSender() { close_quietly(fd_); }

bool DatagramSender::set_address(const std::string& path) {
  auto* a = reinterpret_cast<sockaddr_un*>(addr_);
  size_t len = path.size();
  if (path.empty() || (path[0] != '/' && path[0] != '@')) return false;  // systemd only uses these two forms
  if (len >= sizeof(a->sun_path)) return false;
  std::memset(addr_, 0, sizeof addr_);
  a->sun_family = AF_UNIX;
  std::memcpy(a->sun_path, path.data(), len);
  if (path[0] == '@') a->sun_path[0] = '\0';  // abstract: no trailing NUL in the length
  len_ = static_cast<unsigned>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
  return true;
}

bool DatagramSender::send(std::string_view msg) {
  if (!has_address()) return false;
  if (fd_ < 0) fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  ssize_t n;
  do {
    n = ::sendto(fd_, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(addr_),
                 static_cast<socklen_t>(len_));
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(msg.size());
}

}  // namespace nfsup
