// nfsup-install --log FILE: the master's own log of what it did, on local disk, beside the
// audit trail on the share (which records switches, not who ran what or how it ended).
//
// One line per event, each appended with a single write(2) to an O_APPEND descriptor, so
// several masters can share a file without tearing lines:
//   <UTC time> <host> pid <pid> <subcommand>: start: <command line>
//   <UTC time> <host> pid <pid> <subcommand>: [warning: |error: ]<what it reported>
//   <UTC time> <host> pid <pid> <subcommand>: exit <code> (<meaning>) after <seconds>s
// Text from the share goes through printable(), like everything the tools print.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "os/notify.h"
#include "util.h"

namespace nfsup::tools {

class MasterLog {
 public:
  static MasterLog& get() {
    static MasterLog log;
    return log;
  }
  bool on() const { return fd_ >= 0; }

  /// Opens (creates, mode 0640) `path` for appending and writes the start line. The error
  /// names the path as the user gave it (exit 2: nothing has been done yet).
  Status open(const std::string& path, std::string_view subcommand, int argc, char** argv) {
    if (int e = open_append(path, 0640, &fd_); e != 0)
      return err(Exit::Usage, fmt::format("--log {}: {}", path, std::strerror(e)));
    sub_ = subcommand;
    t0_ = boot_ms();
    std::string cmd;
    for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
    line("start: " + cmd);
    return ok_status();
  }

  void line(std::string_view what) {
    if (fd_ < 0) return;
    std::string l = fmt::format("{} {} pid {} {}: {}\n", utc_now_iso_ms(), short_hostname(), self_pid(), sub_,
                                printable(std::string(what)));
    // Best effort: the log must never change what the command does or how it ends.
    (void)write_fd(fd_, l);
  }

  void end(int code) {
    if (fd_ < 0) return;
    line(fmt::format("exit {} ({}) after {:.1f}s", code, meaning(code), static_cast<double>(boot_ms() - t0_) / 1000.0));
    close_quietly(fd_);
    fd_ = -1;
  }

 private:
  // The exit codes of nfsup-install(1), EXIT STATUS (Exit in util.h).
  static const char* meaning(int code) {
    switch (code) {
      case 0: return "ok";
      case 1: return "failed";
      case 2: return "usage";
      case 3: return "share unreachable";
      case 4: return "busy";
      case 5: return "vetoed";
      case 6: return "integrity";
      case 70: return "internal error";
      case 130: return "interrupted";
      default: return "other";
    }
  }
  int fd_ = -1;
  std::string sub_;
  int64_t t0_ = 0;
};

}  // namespace nfsup::tools
