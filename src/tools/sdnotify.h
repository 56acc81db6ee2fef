// nfsup tools: systemd's notify protocol (sd_notify) without libsystemd.
//
// systemd passes the socket in $NOTIFY_SOCKET: a filesystem path, or an abstract socket
// written with a leading '@'. A message is a single datagram of newline-separated
// KEY=VALUE assignments. The service watchdog passes $WATCHDOG_USEC, and also $WATCHDOG_PID
// when the watchdog is meant for a different process.
// Everything here is best effort. A missing socket or a failed send is never an error,
// because the watchdog works without systemd.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "os/clock.h"
#include "os/notify.h"
#include "os/self.h"

namespace nfsup::tools {

class SdNotifier {
 public:
  /// Reads the environment. It then removes the notify variables, so that the agent, our
  /// child, cannot talk to systemd as if it were the service's main process.
  SdNotifier() {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path && *path) sock_.set_address(path);
    const char* wpid = std::getenv("WATCHDOG_PID");
    bool for_us = !wpid || !*wpid || std::strtoll(wpid, nullptr, 10) == static_cast<long long>(self_pid());
    const char* wusec = std::getenv("WATCHDOG_USEC");
    if (for_us && wusec && *wusec) {
      char* end = nullptr;
      long long v = std::strtoll(wusec, &end, 10);
      if (end && *end == '\0' && v > 0) watchdog_usec_ = v;
    }
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  bool enabled() const { return sock_.has_address(); }
  /// The service watchdog timeout systemd gave us, in microseconds (0 = none).
  int64_t watchdog_usec() const { return watchdog_usec_; }

  /// Sends one datagram ("READY=1", "WATCHDOG=1\nSTATUS=..."). Returns false if it was not sent.
  bool notify(const std::string& msg) {
    return sock_.send(msg);
  }

  /// WATCHDOG=1, at most once per interval (monotonic clock). Returns true if sent.
  bool ping(int64_t interval_ms) {
    int64_t now = boot_ms();
    if (last_ping_ms_ >= 0 && now - last_ping_ms_ < interval_ms) return false;
    last_ping_ms_ = now;
    return notify("WATCHDOG=1");
  }

  /// How often to ping: a third of the timeout systemd gave us, at least every 5s, and no
  /// more often than every 200ms. Without a timeout, 5s. The ping costs one datagram.
  int64_t ping_interval_ms() const {
    if (watchdog_usec_ <= 0) return 5000;
    int64_t third = watchdog_usec_ / 3000;
    if (third > 5000) return 5000;
    return third < 200 ? 200 : third;
  }

 private:
  DatagramSender sock_;
  int64_t watchdog_usec_ = 0;
  int64_t last_ping_ms_ = -1;
};

}  // namespace nfsup::tools
