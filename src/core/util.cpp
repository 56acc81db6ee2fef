// nfsup core: error values, name and version rules, durations.
#include "util.h"

#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <charconv>

namespace nfsup {

std::string errno_str(int e) {
  char buf[256];
  return std::string(strerror_r(e, buf, sizeof buf));
}

static std::optional<std::string> check_name(std::string_view what, std::string_view v,
                                             std::string_view extra) {
  if (v.empty()) return fmt::format("{} is empty", what);
  if (v.size() > 64) return fmt::format("{} is longer than 64 characters", what);
  if (!std::isalnum(static_cast<unsigned char>(v[0])))
    return fmt::format("{} '{}' must start with a letter or digit", what, v.substr(0, 64));
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (extra.find(c) != std::string_view::npos) continue;
    if (u < 0x20 || u >= 0x7f)
      return fmt::format("{} contains a control or non-ASCII character", what);
    return fmt::format("{} '{}' contains '{}' (allowed: letters, digits and {})", what, v, c, extra);
  }
  if (v.find("..") != std::string_view::npos)
    return fmt::format("{} '{}' contains '..'", what, v);
  return std::nullopt;
}

std::optional<std::string> check_version_name(std::string_view v) {
  return check_name("version", v, "._+-");
}

std::optional<std::string> check_host_name(std::string_view h) {
  return check_name("host name", h, "._-");
}

std::optional<std::string> check_rel_path(std::string_view p) {
  if (p.empty()) return std::string("empty path");
  if (p.size() > 4096) return std::string("path longer than 4096 bytes");
  if (p[0] == '/') return fmt::format("absolute path '{}'", p);
  for (char c : p) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return std::string("path contains a control character");
  }
  for (const auto& comp : split(p, '/')) {
    if (comp.empty() || comp == ".") return fmt::format("path '{}' has an empty or '.' component", p);
    if (comp == "..") return fmt::format("path '{}' contains '..'", p);
    if (comp.size() > 255) return fmt::format("path '{}' has a component over 255 bytes", p);
  }
  return std::nullopt;
}

int compare_versions(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i >= a.size()) return -1;
    if (j >= b.size()) return 1;
    bool da = std::isdigit(static_cast<unsigned char>(a[i]));
    bool db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && a[i2] == '0') ++i2;
      while (j2 < b.size() && b[j2] == '0') ++j2;
      size_t ie = i2, je = j2;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      if (ie - i2 != je - j2) return (ie - i2) < (je - j2) ? -1 : 1;
      int c = a.substr(i2, ie - i2).compare(b.substr(j2, je - j2));
      if (c != 0) return c < 0 ? -1 : 1;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) {
        // A separator sorts before anything else so "1.0" < "1.0a" and "1.0" < "1.0.1".
        return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]) ? -1 : 1;
      }
      ++i;
      ++j;
    }
  }
  return 0;
}

std::optional<int64_t> parse_duration_ms(std::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t n = 0;
  while (n < s.size() && (std::isdigit(static_cast<unsigned char>(s[n])) || s[n] == '.')) ++n;
  if (n == 0) return std::nullopt;
  std::string num(s.substr(0, n));
  std::string_view unit = s.substr(n);
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(num, &used);
    if (used != num.size()) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  double mult;
  if (unit.empty() || unit == "s") mult = 1000;
  else if (unit == "ms") mult = 1;
  else if (unit == "m" || unit == "min") mult = 60000;
  else if (unit == "h") mult = 3600000;
  else return std::nullopt;
  double ms = v * mult;
  if (ms < 0 || ms > 1e12) return std::nullopt;
  return static_cast<int64_t>(ms + 0.5);
}

std::string format_duration_ms(int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, p - start));
    start = p + 1;
  }
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace nfsup

namespace nfsup {

size_t utf8_at(std::string_view s, size_t i, uint32_t* cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t v = n == 1 ? c : c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

// Code points a terminal or a browser acts on instead of showing: C1 controls (U+009B is CSI
// on some terminals) and the bidi embeddings, overrides and isolates ("Trojan Source").
static bool hidden_control(uint32_t cp) {
  return (cp >= 0x80 && cp < 0xa0) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

std::string printable(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      o += static_cast<char>(c);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t n = c < 0x80 ? 0 : utf8_at(s, i, &cp);
    if (n > 0 && !hidden_control(cp)) o.append(s.substr(i, n));
    else if (n > 0) o += fmt::format("\\u{{{:04x}}}", cp);
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c == '\r') o += "\\r";
    else o += fmt::format("\\x{:02x}", c);
    i += n > 0 ? n : 1;
  }
  return o;
}

}  // namespace nfsup
