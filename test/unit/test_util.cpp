// util.h: name validation, version ordering, durations, small string helpers.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "util.h"

using namespace nfsup;

namespace {
std::string why(const std::optional<std::string>& e) { return e ? *e : "<accepted>"; }
}  // namespace

TEST_CASE("util: check_version_name accepts good names") {
  for (const char* v : {"1", "1.0", "2.0.3", "1.0-rc1", "1.0+build.5", "V2", "v2_0"}) {
    CAPTURE(v);
    CHECK_FALSE(check_version_name(v).has_value());
  }
  CHECK(why(check_version_name("v2~0")) == "version 'v2~0' contains '~' (allowed: letters, digits and ._+-)");
  CHECK_FALSE(check_version_name(std::string(64, 'a')).has_value());
}

TEST_CASE("util: check_version_name refuses hostile names") {
  CHECK(why(check_version_name("")) == "version is empty");
  CHECK(why(check_version_name(std::string(65, 'a'))) == "version is longer than 64 characters");
  CHECK(why(check_version_name("../x")) == "version '../x' must start with a letter or digit");
  CHECK(why(check_version_name("/abs")) == "version '/abs' must start with a letter or digit");
  CHECK(why(check_version_name(".staging-1")) == "version '.staging-1' must start with a letter or digit");
  CHECK(why(check_version_name("a/../b")) == "version 'a/../b' contains '/' (allowed: letters, digits and ._+-)");
  CHECK(why(check_version_name("a..b")) == "version 'a..b' contains '..'");
  CHECK(why(check_version_name("1.0 beta")) == "version '1.0 beta' contains ' ' (allowed: letters, digits and ._+-)");
  CHECK(why(check_version_name("1\n2")) == "version contains a control or non-ASCII character");
  CHECK(why(check_version_name(std::string("1\0", 2))) == "version contains a control or non-ASCII character");
  CHECK(why(check_version_name("1\x7f")) == "version contains a control or non-ASCII character");
  CHECK(why(check_version_name("1\xc3\xa9")) == "version contains a control or non-ASCII character");
}

TEST_CASE("util: check_host_name refuses hostile names") {
  CHECK_FALSE(check_host_name("web-01").has_value());
  CHECK_FALSE(check_host_name("web_01.example").has_value());
  CHECK_FALSE(check_host_name(std::string(64, 'h')).has_value());
  CHECK(why(check_host_name("")) == "host name is empty");
  CHECK(why(check_host_name(std::string(65, 'h'))) == "host name is longer than 64 characters");
  CHECK(why(check_host_name("../x")) == "host name '../x' must start with a letter or digit");
  CHECK(why(check_host_name("/abs")) == "host name '/abs' must start with a letter or digit");
  CHECK(why(check_host_name(".nfs0001")) == "host name '.nfs0001' must start with a letter or digit");
  CHECK(why(check_host_name("a/../b")) == "host name 'a/../b' contains '/' (allowed: letters, digits and ._-)");
  CHECK(why(check_host_name("web+1")) == "host name 'web+1' contains '+' (allowed: letters, digits and ._-)");
  CHECK(why(check_host_name("a..b")) == "host name 'a..b' contains '..'");
  CHECK(why(check_host_name("web\t1")) == "host name contains a control or non-ASCII character");
}

TEST_CASE("util: check_rel_path refuses escapes, absolute paths and control characters") {
  for (const char* p : {"bin/agent", "a", "a..b/c", "dir with space/x", ".hidden/f", "a/b/c/d", "\xc3\xa9t\xc3\xa9"}) {
    CAPTURE(p);
    CHECK_FALSE(check_rel_path(p).has_value());
  }
  CHECK(why(check_rel_path("")) == "empty path");
  CHECK(why(check_rel_path("/abs")) == "absolute path '/abs'");
  CHECK(why(check_rel_path("../x")) == "path '../x' contains '..'");
  CHECK(why(check_rel_path("a/../b")) == "path 'a/../b' contains '..'");
  CHECK(why(check_rel_path("a/..")) == "path 'a/..' contains '..'");
  CHECK(why(check_rel_path("a//b")) == "path 'a//b' has an empty or '.' component");
  CHECK(why(check_rel_path("./a")) == "path './a' has an empty or '.' component");
  CHECK(why(check_rel_path("a/")) == "path 'a/' has an empty or '.' component");
  CHECK(why(check_rel_path("a\nb")) == "path contains a control character");
  CHECK(why(check_rel_path("a\tb")) == "path contains a control character");
  CHECK(why(check_rel_path(std::string("a\0b", 3))) == "path contains a control character");
  CHECK(why(check_rel_path("a\x7f")) == "path contains a control character");
  CHECK(why(check_rel_path(std::string(4097, 'a'))) == "path longer than 4096 bytes");
  std::string long_comp = "d/" + std::string(256, 'c');
  CHECK(why(check_rel_path(long_comp)) == "path '" + long_comp + "' has a component over 255 bytes");
  CHECK_FALSE(check_rel_path("d/" + std::string(255, 'c')).has_value());
}

TEST_CASE("util: compare_versions orders numerically and segment by segment") {
  CHECK(compare_versions("1.9", "1.10") == -1);
  CHECK(compare_versions("1.10", "1.9") == 1);
  CHECK(compare_versions("1.0", "1.0.1") == -1);
  CHECK(compare_versions("1.0.1", "1.0") == 1);
  CHECK(compare_versions("2.0.3", "2.1.0") == -1);
  CHECK(compare_versions("2.1.0", "2.0.3") == 1);
  CHECK(compare_versions("1.2.3", "1.2.3") == 0);
  CHECK(compare_versions("", "") == 0);
  CHECK(compare_versions("10.0", "9.99") == 1);
  CHECK(compare_versions("1.0", "1.0a") == -1);
  CHECK(compare_versions("1.0a", "1.0b") == -1);
  CHECK(compare_versions("99999999999999999999.1", "99999999999999999999.2") == -1);  // no overflow

  // Sorting a shuffled list gives the expected order, and the relation is antisymmetric.
  std::vector<std::string> want = {"0.9", "1.0", "1.0.1", "1.2", "1.9", "1.10", "1.10.1", "2.0.3", "2.1.0", "10.0"};
  std::vector<std::string> v = {"1.10", "2.1.0", "1.0.1", "10.0", "0.9", "1.9", "2.0.3", "1.10.1", "1.0", "1.2"};
  std::sort(v.begin(), v.end(), [](const std::string& a, const std::string& b) { return compare_versions(a, b) < 0; });
  CHECK(v == want);
  for (const auto& a : want)
    for (const auto& b : want) {
      CAPTURE(a);
      CAPTURE(b);
      CHECK(compare_versions(a, b) == -compare_versions(b, a));
      CHECK((compare_versions(a, b) == 0) == (a == b));
    }
}

TEST_CASE("util: parse_duration_ms units, bare numbers and garbage") {
  CHECK(parse_duration_ms("250ms") == std::optional<int64_t>(250));
  CHECK(parse_duration_ms("2s") == std::optional<int64_t>(2000));
  CHECK(parse_duration_ms("5m") == std::optional<int64_t>(300000));
  CHECK(parse_duration_ms("5min") == std::optional<int64_t>(300000));
  CHECK(parse_duration_ms("1h") == std::optional<int64_t>(3600000));
  CHECK(parse_duration_ms("3") == std::optional<int64_t>(3000));
  CHECK(parse_duration_ms("0") == std::optional<int64_t>(0));
  CHECK(parse_duration_ms("1.5s") == std::optional<int64_t>(1500));
  CHECK(parse_duration_ms("0.25") == std::optional<int64_t>(250));
  for (const char* bad : {"", "fast", "ms", "s", "5x", "5 s", " 5s", "5s ", "2S", "-1", "-5s", "1..2s", ".", "1e3",
                          "1000000000h", "+5s"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration_ms(bad).has_value());
  }
}

TEST_CASE("util: format_duration_ms and string helpers") {
  CHECK(format_duration_ms(250) == "250ms");
  CHECK(format_duration_ms(2000) == "2s");
  CHECK(format_duration_ms(1500) == "1.5s");
  CHECK(split("a,,b", ',') == std::vector<std::string>{"a", "", "b"});
  CHECK(split("", ',') == std::vector<std::string>{""});
  CHECK(join({"a", "b", "c"}, ", ") == "a, b, c");
  CHECK(join({}, ",") == "");
  CHECK(starts_with("nfsup-share", "nfsup-"));
  CHECK_FALSE(starts_with("nfs", "nfsup"));
}
