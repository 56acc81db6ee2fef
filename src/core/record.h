// nfsup core: the line-record format every file on the share uses (pure; no I/O).
//
// A record file is UTF-8-free ASCII text:
//   nfsup-<kind> <format-version>\n
//   <key> <arg> <arg> ...\n
// Tokens are separated by one space. A token percent-encodes every byte outside
// 0x21..0x7e and '%' itself, so names with spaces or newlines cannot break a line.
// Parsing is strict: unknown kinds or versions, bad escapes, missing final newline,
// NUL bytes and over-long input are errors that name the line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util.h"

namespace nfsup {

struct RecordLine {
  std::string key;
  std::vector<std::string> args;
  int lineno = 0;
};

struct Record {
  std::string kind;
  int version = 0;
  std::vector<RecordLine> lines;

  void add(std::string key, std::vector<std::string> args) {
    lines.push_back(RecordLine{std::move(key), std::move(args), 0});
  }
  /// The single-argument line `key`, if present exactly once.
  const RecordLine* find(std::string_view key) const;
};

std::string encode_token(std::string_view raw);
std::optional<std::string> decode_token(std::string_view tok);

std::string pack_record(const Record& r);
/// Parses `text`; `what` names the file in errors ("/share/MARKER"). Errors map to Exit::Integrity.
Result<Record> unpack_record(std::string_view text, std::string_view expect_kind, int max_version,
                             std::string_view what);

/// Typed field access with errors that name the file and line.
class RecordReader {
 public:
  RecordReader(const Record& r, std::string what) : r_(r), what_(std::move(what)) {}
  Result<std::string> str(std::string_view key) const;
  std::string str_or(std::string_view key, std::string def) const;
  Result<int64_t> num(std::string_view key) const;
  int64_t num_or(std::string_view key, int64_t def) const;
  Error bad(const RecordLine& l, std::string_view msg) const;
  const std::string& what() const { return what_; }

 private:
  const Record& r_;
  std::string what_;
};

std::optional<int64_t> parse_i64(std::string_view s);

}  // namespace nfsup
