// nfsup core: error values, exit codes, name and version rules, durations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

// On the idle cron tick's path: placed together in .text.hot, so that the tick faults in fewer
// 64 KiB windows of a 5.7 MB static binary (each fault costs several microseconds here).
#define NFSUP_HOT __attribute__((hot))

namespace nfsup {

/// Exit codes shared by all three binaries (documented in README and man pages).
enum class Exit : int {
  Ok = 0,
  Failed = 1,       ///< the operation ran and did not succeed (a host failed, a script failed)
  Usage = 2,        ///< bad flags, bad config, bad input given by the user
  Share = 3,        ///< the share is unreachable, hung, or not an nfsup share
  Busy = 4,         ///< another push holds the marker, or a previous cron run is alive
  Vetoed = 5,       ///< a host vetoed (reserved for votes)
  Integrity = 6,    ///< a file on the share is corrupt, malformed or fails its hash
  Interrupted = 130,  ///< SIGINT, SIGTERM or SIGHUP: the master backed out (as a shell reports Ctrl-C)
  Internal = 70,    ///< a bug in nfsup
};

/// An error travels up unchanged as a value: what failed, and which exit code it maps to.
struct Error {
  Exit code = Exit::Failed;
  std::string msg;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

inline Error err(Exit code, std::string msg) { return Error{code, std::move(msg)}; }

/// "strerror" for errno values, thread safe.
std::string errno_str(int e);

/// Validates a release version name: 1..64 chars of [0-9A-Za-z._+-], starting with an alnum, no "..".
std::optional<std::string> check_version_name(std::string_view v);
/// Validates a host name: 1..64 chars of [0-9A-Za-z._-], starting with an alnum, no "..".
std::optional<std::string> check_host_name(std::string_view h);
/// Validates a relative path inside a release: no "..", no absolute path, no empty or "."
/// components, no control characters, at most 4096 bytes.
std::optional<std::string> check_rel_path(std::string_view p);

/// Orders versions: dotted numeric segments compare numerically, others lexically;
/// "1.10" > "1.9", "2.0" > "2.0-rc1" is NOT assumed (pre-release suffixes compare lexically).
int compare_versions(std::string_view a, std::string_view b);

/// Parses "250ms", "2s", "5m", "1h", or a bare number of seconds. Returns milliseconds.
std::optional<int64_t> parse_duration_ms(std::string_view s);
std::string format_duration_ms(int64_t ms);

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& v, std::string_view sep);
bool starts_with(std::string_view s, std::string_view p);

/// Text from the share (anything a host wrote: a reason, an audit detail, a vote) made safe to
/// print on a terminal or in a report: every C0 control character and DEL becomes \n, \t, \r
/// or \xNN, a byte that is not valid UTF-8 becomes \xNN, and C1 controls and Unicode bidi
/// overrides become \u{XXXX}. Valid printable UTF-8 is kept. One line in, one line out.
std::string printable(std::string_view s);
/// Decodes the UTF-8 sequence at s[i]: its length and code point, or 0 when it is not valid
/// (truncated, overlong, a surrogate, above U+10FFFF).
size_t utf8_at(std::string_view s, size_t i, uint32_t* cp);

}  // namespace nfsup

// The clock and this process's identity moved to src/os (the only code that makes system calls).
#include "os/clock.h"
#include "os/self.h"
