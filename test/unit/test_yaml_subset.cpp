// yaml_subset.h: the plain-YAML reader either declines or gives yaml-cpp's tree.
#include <doctest/doctest.h>

#include <random>

#include "yaml_subset.h"

using namespace nfsup;

namespace {

// Accepted by the reader, and the same tree as yaml-cpp's.
void same_as_yaml_cpp(const std::string& text) {
  CAPTURE(text);
  auto fast = load_yaml_subset(text);
  REQUIRE(fast.has_value());
  YAML::Node slow;
  REQUIRE_NOTHROW(slow = YAML::Load(text));
  CHECK(same_tree(*fast, slow));
}

void declined(const std::string& text) {
  CAPTURE(text);
  CHECK_FALSE(load_yaml_subset(text).has_value());
}

}  // namespace

TEST_CASE("yaml subset: the files people write are read, as yaml-cpp reads them") {
  same_as_yaml_cpp("share: /mnt/nfsup\nhost: web-01\n");
  same_as_yaml_cpp("---\n# comment\nshare: /mnt/nfsup   # trailing comment\n\nhost: web-01\n");
  same_as_yaml_cpp("agent:\n  command: [bin/agent, --config, \"{config}\"]\n  config: /etc/a.conf\n"
                   "  stop_timeout: 10s\nstate_dir: /var/lib/x\n");
  same_as_yaml_cpp("traits: {arch: aarch64, role: edge}\ndrain: {signal: USR1, timeout: 60s}\n");
  same_as_yaml_cpp("trusted_keys:\n  - /etc/nfsup/a.pub\n  - '/etc/nfsup/b c.pub'\n");
  same_as_yaml_cpp("trusted_keys:\n- /etc/nfsup/a.pub\n- /etc/nfsup/b.pub\nhost: x\n");  // compact list
  same_as_yaml_cpp("a:\n  b:\n    c: d\n  e: f\ng: h\n");
  same_as_yaml_cpp("empty:\nnull1: ~\nnull2: null\nquoted_null: 'null'\nq2: \"~\"\n");
  same_as_yaml_cpp("list: []\nmap: {}\nflow_nulls: [~, null, x]\n");
  same_as_yaml_cpp("url: http://example.org/x\nhash: a#b\nyes_: yes\nnum: 0x1F\nneg: a-b\n");
  same_as_yaml_cpp("s: '  padded  '\nd: \"it's\"\ne: 'say \"hi\"'\n");
  same_as_yaml_cpp("- a\n- b\n- [c, d]\n");
  same_as_yaml_cpp("neg: -1\nflag: --verbose\nargv: [--config, -x, \"{config}\"]\n");
  same_as_yaml_cpp("k: v\n    # an indented comment\nk2: v2\n");
}

TEST_CASE("yaml subset: anything beyond the plain subset is declined, not guessed") {
  declined("");
  declined("# only a comment\n");
  declined("a: 1\na: 2\n");                      // duplicate key
  declined("a: x\n  continued\n");               // multi-line plain scalar
  declined("a: |\n  block\n");                   // block scalar
  declined("a: >-\n  folded\n");
  declined("a: &anchor x\nb: *anchor\n");        // anchors and aliases
  declined("a: !!str 1\n");                      // tags
  declined("a: \"esc\\n\"\n");                   // escapes
  declined("a: 'it''s'\n");                      // '' escape
  declined("a:\tb\n");                           // tab
  declined("a: b\r\n");                          // CR
  declined("a: caf\xc3\xa9\n");                  // non-ASCII
  declined("? complex\n: key\n");
  declined("a: b: c\n");                         // yaml-cpp: an error
  declined("a: [b, [c]]\n");                     // nested flow
  declined("a: [b,\n  c]\n");                    // flow over lines
  declined("a: [b, ]\n");
  declined("a: {b:c}\n");
  declined("a: \"x\" y\n");                      // text after a quoted scalar
  declined("- a\nb: c\n");                       // sequence then mapping at one level
  declined("a: b\n---\nc: d\n");                 // second document
  declined("%YAML 1.2\n---\na: b\n");
  declined("  a: b\n");                          // indented root
  declined("a:\n  - b\n   - c\n");               // ragged sequence
  declined("a:\n    b: c\n  d: e\n");            // dedent to a level that was never opened
  declined("a:\n  -\n    b: c\n");               // nested block in a sequence
  declined("a:\n  - b: c\n");                    // mapping in a sequence
  declined("null: x\n");                         // a null key
  declined("plain scalar document\n");
  declined("a : b\n");
  declined("a: - b\n");
  declined("a: [- b]\n");
}

TEST_CASE("yaml subset: random documents: every accepted one equals yaml-cpp's tree") {
  // Lines built from fragments that sit on both sides of the subset's edges; each generated
  // document the reader accepts must parse in yaml-cpp to the same tree.
  const char* keys[] = {"a", "b", "share", "k_1", "x.y", "p/q", "n-m", "null", "-a", ".a", "a b", "'q'", "\"q\"", "?"};
  const char* values[] = {"", " v", " /mnt/x", " ~", " null", " NULL", " 'null'", " \"x y\"", " 'a''b'", " \"a\\tb\"",
                          " [a, b]", " [a,b]", " []", " [ ]", " [a, ]", " [a, [b]]", " {k: v}", " {k: v, k2: w}",
                          " {k:v}", " {}", " {k: [v]}", " x #c", " x#c", " x # c", " a: b", " a:", " a :b", " http://h",
                          " &a x", " *a", " !t x", " |", " >", " -x", " - x", " ?x", " %x", " @x", " `x`", " 'x",
                          " \"x", " x'y", " x\"y", " yes", " 1.5", " [~, null]", " {k: ~}", " [\"a,b\", 'c]']",
                          " a, b", " a]", " {a: b}c", "  spaced", "#c", " #c", "\t", " x\t", " [a, 'b' ]", " {k: 'v' }"};
  const char* good_keys[] = {"a", "b", "share", "k_1", "agent", "x.y", "p/q", "n-m", "1"};
  const char* good_values[] = {"", " v", " /mnt/x y", " ~", " 'q r'", " \"s\"", " [a, 'b c', \"d\"]", " {k: v, n: ~}",
                               " -1", " --flag", " [--c, -d]", " x #c", " 10s", " {config}"};
  const char* items[] = {"- a", "- 'b'", "- [c]", "- ", "-", "- a: b", "- - a", "-a", "- ~", "- x #c", "- {k: v}"};
  std::mt19937 rng(20261123);
  auto pick = [&](auto& arr) { return arr[rng() % (sizeof arr / sizeof arr[0])]; };
  int accepted = 0, total = 0;
  for (int doc = 0; doc < 20000; ++doc) {
    std::string text;
    if (rng() % 8 == 0) text += "---\n";
    int lines = 1 + static_cast<int>(rng() % 6);
    for (int l = 0; l < lines; ++l) {
      int indent = (rng() % 3 == 0) ? static_cast<int>(rng() % 5) : 0;
      if (l > 0 && rng() % 3 == 0) indent = 2;
      text.append(static_cast<size_t>(indent), ' ');
      unsigned kind = rng() % 10;
      if (kind < 3) text += std::string(pick(keys)) + ":" + pick(values);
      else if (kind < 6) text += std::string(pick(good_keys)) + ":" + pick(good_values);
      else if (kind < 8) text += pick(items);
      else if (kind == 8) text += "# comment";
      text += (rng() % 20 == 0) ? "" : "\n";
    }
    ++total;
    auto fast = load_yaml_subset(text);
    if (!fast) continue;
    ++accepted;
    CAPTURE(text);
    YAML::Node slow;
    REQUIRE_NOTHROW(slow = YAML::Load(text));
    REQUIRE(same_tree(*fast, slow));
  }
  MESSAGE(accepted << " of " << total << " random documents accepted and matched");
  CHECK(accepted > total / 20);  // the generator keeps reaching the accepting side
  CHECK(accepted < total);       // and the declining side
}
