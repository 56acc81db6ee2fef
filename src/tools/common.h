// nfsup tools: the reporting helpers shared by the three thin mains.
#pragma once

#include <fmt/format.h>
#include <syslog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "nfsup_version.h"
#include "util.h"
#include "watchdog.h"

namespace nfsup::tools {

inline const char*& program() {
  static const char* p = "nfsup";
  return p;
}

inline int verbosity = 0;  // -1 quiet, 0 normal, 1 verbose
inline bool use_syslog = false;

/// Where nfsup-install --log copies what the tool reports (null: nowhere).
inline void (*report_tap)(LogLevel, const std::string&) = nullptr;

/// `nfsup-X: error: <message>` on stderr; returns the exit code.
inline int fail(const Error& e) {
  if (report_tap) report_tap(LogLevel::Error, e.msg);
  fmt::print(stderr, "{}: error: {}\n", program(), e.msg);
  return static_cast<int>(e.code);
}

/// One line of output built from text read on the share: printed through printable(), so a
/// newline or an escape sequence a host wrote can neither forge a line nor reach the terminal.
inline void print_line(const std::string& s) { fmt::print("{}\n", printable(s)); }

inline void say(const std::string& s) {
  if (report_tap) report_tap(LogLevel::Info, s);
  if (verbosity >= 0) fmt::print("{}\n", s);
}

inline void log_line(LogLevel l, const std::string& msg) {
  if (report_tap && l != LogLevel::Debug) report_tap(l, msg);
  if (l == LogLevel::Debug && verbosity < 1) return;
  if (l == LogLevel::Info && verbosity < 0) return;
  if (use_syslog) {
    int pri = l == LogLevel::Error ? LOG_ERR : l == LogLevel::Warn ? LOG_WARNING : l == LogLevel::Info ? LOG_INFO : LOG_DEBUG;
    syslog(pri, "%s", msg.c_str());
    return;
  }
  const char* tag = l == LogLevel::Error ? "error: " : l == LogLevel::Warn ? "warning: " : "";
  fmt::print(stderr, "{} {}: {}{}\n", utc_now_iso_ms(), program(), tag, msg);
  std::fflush(stderr);
}

/// A JSON string of `s`: control characters escaped, and each byte that is not valid UTF-8
/// replaced by U+FFFD, so that the document stays valid JSON whatever a host wrote.
inline std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      uint32_t cp = 0;
      size_t n = utf8_at(s, i, &cp);
      if (n == 0) o += "\\ufffd";
      else o.append(s, i, n);
      if (n > 1) i += n - 1;
      continue;
    }
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) o += fmt::format("\\u{:04x}", c);
        else o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

/// `--version` prints "nfsup-X 0.1.0" and exits 0 (nfsup-install also keeps its older `--version-info`).
inline void add_version_flag(CLI::App& app, bool old_spelling = false) {
  app.set_version_flag(old_spelling ? "--version,--version-info" : "--version", std::string(program()) + " " + NFSUP_VERSION,
                       "print the program's version and exit");
}

/// The first word on the command line, if it is not an option and names no subcommand of `app`
/// (CLI11 would only say "A subcommand is required"). The value of a global option that takes
/// one (`--log FILE`) is skipped.
inline std::optional<std::string> unknown_subcommand(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") return std::nullopt;
    if (!a.empty() && a[0] == '-') {
      const CLI::Option* opt = app.get_option_no_throw(a);
      if (opt && opt->get_expected_min() > 0 && a.find('=') == std::string::npos) ++i;
      continue;
    }
    if (a.empty()) continue;
    for (auto* c : app.get_subcommands([](CLI::App*) { return true; }))
      if (c->check_name(a)) return std::nullopt;
    return a;
  }
  return std::nullopt;
}

/// Runs a CLI11 parse and maps its errors to our usage code (2) with one line.
inline int parse_or_exit(CLI::App& app, int argc, char** argv, bool* done) {
  *done = false;
  if (!app.get_subcommands([](CLI::App*) { return true; }).empty()) {
    if (auto u = unknown_subcommand(app, argc, argv)) {
      *done = true;
      std::vector<std::string> names;
      for (auto* c : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(c->get_name());
      fmt::print(stderr, "{}: error: unknown command '{}' (commands: {}; see --help)\n", program(), *u, join(names, ", "));
      return static_cast<int>(Exit::Usage);
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    *done = true;
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    *done = true;
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    *done = true;
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    *done = true;
    fmt::print(stderr, "{}: error: {} (see --help)\n", program(), e.what());
    return static_cast<int>(Exit::Usage);
  }
  return 0;
}

inline Result<int64_t> duration_flag(const std::string& flag, const std::string& v) {
  auto d = parse_duration_ms(v);
  if (!d) return err(Exit::Usage, fmt::format("{} '{}': not a duration (use 250ms, 2s, 5m)", flag, v));
  return *d;
}

}  // namespace nfsup::tools
