// nfsup os: small local channels of the tools: an append-only log file and a datagram socket.
#pragma once

#include <string>
#include <string_view>

namespace nfsup {

/// Opens (creating with `mode`) `path` for appending: 0 and *fd, or an errno.
int open_append(const std::string& path, unsigned mode, int* fd);
/// Writes all of `data` to fd; false if it could not (best-effort writers ignore it by name).
bool write_fd(int fd, std::string_view data);
/// Closes fd (a descriptor only this process uses; nothing to report).
void close_quietly(int fd);

/// A datagram to a local socket address (a path, or "@name" for the abstract namespace), the
/// way systemd's sd_notify talks to the service manager. Opened on first send.
class DatagramSender {
 public:
  DatagramSender() = default;
  ~DatagramSender();
  DatagramSender(const DatagramSender&) = delete;
  DatagramSender& operator=(const DatagramSender&) = delete;
  /// False (and nothing set) for an address that is neither "/path" nor "@name", or too long.
  bool set_address(const std::string& address);
  bool has_address() const { return len_ > 0; }
  /// Sends one datagram; true if all of it was sent.
  bool send(std::string_view msg);

 private:
  char addr_[128] = {};  ///< a sockaddr_un
  unsigned len_ = 0;
  int fd_ = -1;
};

}  // namespace nfsup
