// record.h: token encoding and the strict line-record parser.
#include <doctest/doctest.h>

#include <random>

#include "record.h"

using namespace nfsup;

namespace {

std::string all_bytes() {
  std::string s;
  for (int c = 0; c < 256; ++c) s += static_cast<char>(c);
  return s;
}

bool only_printable_ascii(const std::string& tok) {
  for (unsigned char c : tok)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

// The error text of a failed unpack, or "" when it unexpectedly succeeded.
std::string unpack_error(std::string_view text, std::string_view kind = "marker", int max_version = 1) {
  auto r = unpack_record(text, kind, max_version, "/share/MARKER");
  if (r) return "";
  CHECK(r.error().code == Exit::Integrity);
  return r.error().msg;
}

}  // namespace

TEST_CASE("record: encode_token/decode_token round-trip arbitrary bytes") {
  const std::string samples[] = {
      "",
      "plain",
      "two words",
      "line\nbreak",
      "100%",
      "%",
      "%%",
      "%41",
      std::string("nul\0inside", 10),
      std::string(1, '\0'),
      "\x7f\x80\xfe\xff",
      " leading and trailing ",
      "tab\there\r\n",
      all_bytes(),
  };
  for (const auto& raw : samples) {
    CAPTURE(raw);
    std::string tok = encode_token(raw);
    CHECK_FALSE(tok.empty());
    CHECK(only_printable_ascii(tok));
    auto back = decode_token(tok);
    REQUIRE(back.has_value());
    CHECK(*back == raw);
  }

  std::mt19937 rng(12345);
  for (int i = 0; i < 500; ++i) {
    std::string raw(rng() % 40, '\0');
    for (auto& c : raw) c = static_cast<char>(rng() & 0xff);
    std::string tok = encode_token(raw);
    CHECK(only_printable_ascii(tok));
    auto back = decode_token(tok);
    REQUIRE(back.has_value());
    CHECK(*back == raw);
  }
}

TEST_CASE("record: encode_token exact escapes") {
  CHECK(encode_token("") == "%");
  CHECK(encode_token("a b") == "a%20b");
  CHECK(encode_token("a\nb") == "a%0Ab");
  CHECK(encode_token("%") == "%25");
  CHECK(encode_token(std::string("\0", 1)) == "%00");
  CHECK(encode_token("\xff") == "%FF");
  CHECK(encode_token("~!") == "~!");
  CHECK(decode_token("%4a%4A") == std::optional<std::string>("JJ"));
}

TEST_CASE("record: decode_token rejects bad escapes and raw unsafe bytes") {
  CHECK(decode_token("%") == std::optional<std::string>(""));  // a lone '%' is the empty string
  CHECK_FALSE(decode_token("%%").has_value());
  CHECK_FALSE(decode_token("%4").has_value());
  CHECK_FALSE(decode_token("a%").has_value());
  CHECK_FALSE(decode_token("%zz").has_value());
  CHECK_FALSE(decode_token("%g0").has_value());
  CHECK_FALSE(decode_token("a b").has_value());
  CHECK_FALSE(decode_token("a\nb").has_value());
  CHECK_FALSE(decode_token(std::string("a\0b", 3)).has_value());
  CHECK_FALSE(decode_token("\xc3\xa9").has_value());
  CHECK_FALSE(decode_token("\x7f").has_value());
}

TEST_CASE("record: pack/unpack round-trip keeps keys, args, order and line numbers") {
  Record r{"marker", 1, {}};
  r.add("generation", {"7"});
  r.add("weird key", {"", "a b", "x\ny", all_bytes()});
  r.add("noargs", {});
  std::string text = pack_record(r);
  CHECK(text.rfind("nfsup-marker 1\ngeneration 7\nweird%20key % a%20b x%0Ay ", 0) == 0);
  CHECK(text.back() == '\n');

  auto back = unpack_record(text, "marker", 1, "/share/MARKER");
  REQUIRE(back.ok());
  CHECK(back->kind == "marker");
  CHECK(back->version == 1);
  REQUIRE(back->lines.size() == 3);
  CHECK(back->lines[0].key == "generation");
  CHECK(back->lines[0].args == std::vector<std::string>{"7"});
  CHECK(back->lines[0].lineno == 2);
  CHECK(back->lines[1].key == "weird key");
  CHECK(back->lines[1].args == std::vector<std::string>{"", "a b", "x\ny", all_bytes()});
  CHECK(back->lines[1].lineno == 3);
  CHECK(back->lines[2].key == "noargs");
  CHECK(back->lines[2].args.empty());
  CHECK(back->lines[2].lineno == 4);
}

TEST_CASE("record: strict parser errors name the file and line") {
  CHECK(unpack_error("") == "/share/MARKER: file is empty");
  CHECK(unpack_error("nfsup-marker 1\ngeneration 1") == "/share/MARKER: file is truncated (no final newline)");
  CHECK(unpack_error("nfsup-current 1\n") ==
        "/share/MARKER:1: not an nfsup marker file (first line must be 'nfsup-marker <version>')");
  CHECK(unpack_error("nfsup-marker\n") ==
        "/share/MARKER:1: not an nfsup marker file (first line must be 'nfsup-marker <version>')");
  CHECK(unpack_error("nfsup-marker 2\n") ==
        "/share/MARKER:1: format version 2 is newer than this nfsup understands (1)");
  CHECK(unpack_error("nfsup-marker 0\n") == "/share/MARKER:1: bad format version");
  CHECK(unpack_error("nfsup-marker x\n") == "/share/MARKER:1: bad format version");
  CHECK(unpack_error("nfsup-marker 1\na 1\nb  2\n") ==
        "/share/MARKER:3: two spaces in a row or a space at the end of the line");
  CHECK(unpack_error("nfsup-marker 1\na 1 \n") ==
        "/share/MARKER:2: two spaces in a row or a space at the end of the line");
  CHECK(unpack_error("nfsup-marker  1\n") ==
        "/share/MARKER:1: two spaces in a row or a space at the end of the line");
  CHECK(unpack_error("nfsup-marker 1\na 1\n\nb 2\n") == "/share/MARKER:3: empty line");
  CHECK(unpack_error("nfsup-marker 1\na 1\nb 2\nc %zz\n") == "/share/MARKER:4: bad escape in value 1");
  CHECK(unpack_error("nfsup-marker 1\nc ok %4\n") == "/share/MARKER:2: bad escape in value 2");
  CHECK(unpack_error("nfsup-marker 1\nc a\r\n") == "/share/MARKER:2: bad escape in value 1");
  CHECK(unpack_error(std::string("nfsup-marker 1\nc a\0b\n", 21)) == "/share/MARKER:2: bad escape in value 1");
  CHECK(unpack_error("nfsup-marker 1\nc \xff\n") == "/share/MARKER:2: bad escape in value 1");
  CHECK(unpack_error("nfsup-marker 1\n%zz 1\n") == "/share/MARKER:2: bad key");
  CHECK(unpack_error("nfsup-marker 1\n% 1\n") == "/share/MARKER:2: bad key");
  // A newer version is fine when the caller understands it.
  CHECK(unpack_error("nfsup-marker 2\n", "marker", 2) == "");
}

TEST_CASE("record: RecordReader typed access names file and line") {
  auto r = unpack_record("nfsup-marker 1\ngeneration x\ntwice 1\ntwice 2\nmulti a b\nname %\n", "marker", 1,
                         "/share/MARKER");
  REQUIRE(r.ok());
  RecordReader rd(*r, "/share/MARKER");
  auto g = rd.num("generation");
  REQUIRE_FALSE(g.ok());
  CHECK(g.error().code == Exit::Integrity);
  CHECK(g.error().msg == "/share/MARKER:2: key 'generation' is not an integer");
  auto t = rd.str("twice");
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().msg == "/share/MARKER:4: key 'twice' appears more than once");
  auto m = rd.str("multi");
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().msg == "/share/MARKER:5: key 'multi' needs exactly one value");
  auto missing = rd.str("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().msg == "/share/MARKER: missing key 'nope'");
  CHECK(rd.str_or("nope", "dflt") == "dflt");
  CHECK(rd.num_or("generation", 42) == 42);
  auto name = rd.str("name");
  REQUIRE(name.ok());
  CHECK(*name == "");
  CHECK(r->find("twice") == nullptr);
  REQUIRE(r->find("multi") != nullptr);
  CHECK(r->find("multi")->lineno == 5);
}

TEST_CASE("record: parse_i64 accepts only whole signed integers") {
  CHECK(parse_i64("0") == std::optional<int64_t>(0));
  CHECK(parse_i64("-12") == std::optional<int64_t>(-12));
  CHECK(parse_i64("9223372036854775807") == std::optional<int64_t>(INT64_MAX));
  CHECK_FALSE(parse_i64("").has_value());
  CHECK_FALSE(parse_i64("12a").has_value());
  CHECK_FALSE(parse_i64(" 1").has_value());
  CHECK_FALSE(parse_i64("+1").has_value());
  CHECK_FALSE(parse_i64("9223372036854775808").has_value());
  CHECK_FALSE(parse_i64("1.5").has_value());
}
