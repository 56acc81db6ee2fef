// nfsup core: the line-record format (pure).
#include "record.h"

#include <fmt/format.h>

#include <charconv>

namespace nfsup {

static bool plain_byte(unsigned char c) { return c > 0x20 && c < 0x7f && c != '%'; }

std::string encode_token(std::string_view raw) {
  if (raw.empty()) return "%";  // the empty string is a lone '%'
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (plain_byte(c)) {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> decode_token(std::string_view tok) {
  if (tok == "%") return std::string();
  std::string out;
  out.reserve(tok.size());
  for (size_t i = 0; i < tok.size(); ++i) {
    auto c = static_cast<unsigned char>(tok[i]);
    if (c == '%') {
      if (i + 2 >= tok.size()) return std::nullopt;
      int h = hexval(tok[i + 1]), l = hexval(tok[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

const RecordLine* Record::find(std::string_view key) const {
  const RecordLine* found = nullptr;
  for (const auto& l : lines) {
    if (l.key == key) {
      if (found) return nullptr;
      found = &l;
    }
  }
  return found;
}

std::string pack_record(const Record& r) {
  std::string out = fmt::format("nfsup-{} {}\n", r.kind, r.version);
  for (const auto& l : r.lines) {
    out += encode_token(l.key);
    for (const auto& a : l.args) {
      out += ' ';
      out += encode_token(a);
    }
    out += '\n';
  }
  return out;
}

std::optional<int64_t> parse_i64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<Record> unpack_record(std::string_view text, std::string_view expect_kind, int max_version,
                             std::string_view what) {
  auto fail = [&](int line, std::string_view msg) {
    return err(Exit::Integrity, line > 0 ? fmt::format("{}:{}: {}", what, line, msg)
                                         : fmt::format("{}: {}", what, msg));
  };
  if (text.empty()) return fail(0, "file is empty");
  if (text.back() != '\n') return fail(0, "file is truncated (no final newline)");
  Record r;
  int lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) return fail(lineno, "empty line");
    auto toks = split(line, ' ');
    for (const auto& t : toks)
      if (t.empty()) return fail(lineno, "two spaces in a row or a space at the end of the line");
    if (lineno == 1) {
      std::string want = fmt::format("nfsup-{}", expect_kind);
      if (toks.size() != 2 || toks[0] != want)
        return fail(1, fmt::format("not an nfsup {} file (first line must be '{} <version>')",
                                   expect_kind, want));
      auto v = parse_i64(toks[1]);
      if (!v || *v < 1) return fail(1, "bad format version");
      if (*v > max_version)
        return fail(1, fmt::format("format version {} is newer than this nfsup understands ({})",
                                   *v, max_version));
      r.kind = std::string(expect_kind);
      r.version = static_cast<int>(*v);
      continue;
    }
    RecordLine l;
    l.lineno = lineno;
    auto k = decode_token(toks[0]);
    if (!k || k->empty()) return fail(lineno, "bad key");
    l.key = *k;
    for (size_t i = 1; i < toks.size(); ++i) {
      auto a = decode_token(toks[i]);
      if (!a) return fail(lineno, fmt::format("bad escape in value {}", i));
      l.args.push_back(std::move(*a));
    }
    r.lines.push_back(std::move(l));
  }
  return r;
}

Error RecordReader::bad(const RecordLine& l, std::string_view msg) const {
  return err(Exit::Integrity, fmt::format("{}:{}: {}", what_, l.lineno, msg));
}

Result<std::string> RecordReader::str(std::string_view key) const {
  int count = 0;
  const RecordLine* line = nullptr;
  for (const auto& l : r_.lines)
    if (l.key == key) {
      ++count;
      line = &l;
    }
  if (count == 0) return err(Exit::Integrity, fmt::format("{}: missing key '{}'", what_, key));
  if (count > 1) return bad(*line, fmt::format("key '{}' appears more than once", key));
  if (line->args.size() != 1) return bad(*line, fmt::format("key '{}' needs exactly one value", key));
  return line->args[0];
}

std::string RecordReader::str_or(std::string_view key, std::string def) const {
  auto v = str(key);
  return v ? *v : def;
}

Result<int64_t> RecordReader::num(std::string_view key) const {
  auto s = str(key);
  if (!s) return s.error();
  auto v = parse_i64(*s);
  if (!v) {
    const RecordLine* line = r_.find(key);
    return bad(*line, fmt::format("key '{}' is not an integer", key));
  }
  return *v;
}

int64_t RecordReader::num_or(std::string_view key, int64_t def) const {
  auto v = num(key);
  return v ? *v : def;
}

}  // namespace nfsup
