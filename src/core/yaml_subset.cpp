// nfsup core: the plain-YAML reader (see yaml_subset.h for what it accepts and why).
//
// Every rule below either matches what yaml-cpp does or declines: a decline costs one yaml-cpp
// parse, a wrong accept would change what a configuration means. So the rules are narrower
// than YAML: no tabs, no CR, no bytes outside printable ASCII, no multi-line scalars, no escapes,
// no anchors, tags, aliases, block scalars or complex keys, no duplicate keys.
#include "yaml_subset.h"
#include "util.h"

#include <string>
#include <vector>

namespace nfsup {

namespace {

struct Line {
  int indent;
  std::string_view text;  // without the indentation and trailing spaces; never empty
};

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '/' || c == '-';
}

bool key_start(char c) { return key_char(c) && c != '.' && c != '-'; }

// Characters that may not start a plain scalar (YAML's indicators).
bool indicator(char c) {
  switch (c) {
    case '-': case '?': case ':': case ',': case '[': case ']': case '{': case '}': case '#':
    case '&': case '*': case '!': case '|': case '>': case '\'': case '"': case '%': case '@': case '`':
      return true;
    default:
      return false;
  }
}

// Characters a plain scalar may contain after its first one. yaml-cpp reads more, but not
// always as the YAML spec does ('?' inside a flow scalar is an error to it): the rest is its job.
bool plain_char(char c, bool flow) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  std::string_view ok = flow ? " _./-+=~@%^$()<>;" : " _./-+=~@%^$()<>;,:#";
  return ok.find(c) != std::string_view::npos;
}

// May a plain scalar start at s[0]? Not at an indicator, except a '-' directly followed by
// something other than a space, a flow indicator or '#' ("--config", "-1").
bool plain_start(std::string_view s) {
  if (!indicator(s[0])) return s[0] != ' ' && plain_char(s[0], true);
  if (s[0] != '-' || s.size() < 2) return false;
  std::string_view bad = " ,[]{}#";
  return bad.find(s[1]) == std::string_view::npos;
}

bool null_word(std::string_view s) { return s == "~" || s == "null" || s == "Null" || s == "NULL"; }

LiteNode scalar_or_null(std::string_view s) {
  if (null_word(s)) return LiteNode(LiteNode::kNull);
  return LiteNode(std::string(s));
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

class Reader {
 public:
  explicit Reader(std::vector<Line> lines) : L_(std::move(lines)) {}

  std::optional<LiteNode> document() {
    if (L_.empty() || L_[0].indent != 0) return std::nullopt;
    auto root = block(0);
    if (!root || i_ != L_.size()) return std::nullopt;
    return root;
  }

 private:
  bool more_at(int indent) const { return i_ < L_.size() && L_[i_].indent == indent; }
  bool deeper_than(int indent) const { return i_ < L_.size() && L_[i_].indent > indent; }
  static bool seq_item(std::string_view t) { return t == "-" || t.substr(0, 2) == "- "; }

  std::optional<LiteNode> block(int indent) {
    return seq_item(L_[i_].text) ? sequence(indent) : mapping(indent);
  }

  std::optional<LiteNode> mapping(int indent) {
    LiteNode m(LiteNode::kMap);
    std::vector<std::string_view> keys;
    while (more_at(indent)) {
      std::string_view t = L_[i_].text;
      if (seq_item(t) || !key_start(t[0])) return std::nullopt;
      size_t j = 0;
      while (j < t.size() && key_char(t[j])) ++j;
      if (j == t.size() || t[j] != ':' || (j + 1 < t.size() && t[j + 1] != ' ')) return std::nullopt;
      std::string_view key = t.substr(0, j);
      if (null_word(key)) return std::nullopt;
      for (auto k : keys)
        if (k == key) return std::nullopt;  // yaml-cpp keeps both; lookups see the first
      keys.push_back(key);
      std::string_view rest = t.substr(j + 1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      ++i_;
      std::optional<LiteNode> v;
      if (rest.empty() || rest.front() == '#') {
        if (deeper_than(indent)) v = block(L_[i_].indent);
        else if (more_at(indent) && seq_item(L_[i_].text)) v = sequence(indent);  // "key:\n- a"
        else v = LiteNode(LiteNode::kNull);
      } else {
        v = inline_value(rest);
        if (deeper_than(indent)) return std::nullopt;  // a continuation line
      }
      if (!v) return std::nullopt;
      m.add(std::string(key), std::move(*v));
    }
    if (deeper_than(indent)) return std::nullopt;
    return m;
  }

  std::optional<LiteNode> sequence(int indent) {
    LiteNode s(LiteNode::kSequence);
    while (more_at(indent) && seq_item(L_[i_].text)) {
      std::string_view rest = L_[i_].text.substr(1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      ++i_;
      if (rest.empty() || rest.front() == '#') return std::nullopt;  // nested block or null item
      auto v = inline_value(rest);
      if (!v || deeper_than(indent)) return std::nullopt;
      s.push_back(std::move(*v));
    }
    if (deeper_than(indent)) return std::nullopt;
    return s;
  }

  // A value on the same line as its key or dash: s starts with a non-space, ends trimmed.
  static std::optional<LiteNode> inline_value(std::string_view s) {
    size_t p = 0;
    std::optional<LiteNode> v;
    if (s[0] == '"' || s[0] == '\'') {
      auto q = quoted(s, &p);
      if (!q) return std::nullopt;
      v = LiteNode(std::string(*q));
    } else if (s[0] == '[') {
      v = flow_sequence(s, &p);
    } else if (s[0] == '{') {
      v = flow_mapping(s, &p);
    } else {
      return block_plain(s);
    }
    if (!v || !rest_is_comment(s, p)) return std::nullopt;
    return v;
  }

  // After a closed value: nothing, or spaces and a comment.
  static bool rest_is_comment(std::string_view s, size_t p) {
    size_t spaces = 0;
    while (p < s.size() && s[p] == ' ') ++p, ++spaces;
    return p == s.size() || (spaces > 0 && s[p] == '#');
  }

  // '...' or "..." on one line, without escapes; *p ends after the closing quote.
  static std::optional<std::string_view> quoted(std::string_view s, size_t* p) {
    char q = s[*p];
    size_t end = s.find(q, *p + 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view body = s.substr(*p + 1, end - *p - 1);
    if (q == '"' && body.find('\\') != std::string_view::npos) return std::nullopt;
    if (q == '\'' && end + 1 < s.size() && s[end + 1] == '\'') return std::nullopt;  // '' escape
    *p = end + 1;
    return body;
  }

  static std::optional<LiteNode> block_plain(std::string_view s) {
    if (!plain_start(s)) return std::nullopt;
    size_t c = s.find(" #");
    std::string_view v = rtrim(c == std::string_view::npos ? s : s.substr(0, c));
    if (v.find(": ") != std::string_view::npos || v.back() == ':') return std::nullopt;
    for (char c : v.substr(1))
      if (!plain_char(c, false)) return std::nullopt;
    return scalar_or_null(v);
  }

  // One scalar inside [...] or {...}: quoted, or plain up to , ] } (no # or : inside).
  static std::optional<LiteNode> flow_scalar(std::string_view s, size_t* p) {
    if (*p >= s.size()) return std::nullopt;
    if (s[*p] == '"' || s[*p] == '\'') {
      auto q = quoted(s, p);
      if (!q) return std::nullopt;
      return LiteNode(std::string(*q));
    }
    if (!plain_start(s.substr(*p))) return std::nullopt;
    size_t b = *p;
    while (*p < s.size() && s[*p] != ',' && s[*p] != ']' && s[*p] != '}') {
      if (*p > b && !plain_char(s[*p], true)) return std::nullopt;
      ++*p;
    }
    std::string_view v = rtrim(s.substr(b, *p - b));
    if (v.empty()) return std::nullopt;
    return scalar_or_null(v);
  }

  static void skip_spaces(std::string_view s, size_t* p) {
    while (*p < s.size() && s[*p] == ' ') ++*p;
  }

  // At '[' or '{': steps past it; true when the collection is empty (its end consumed too).
  static bool open_flow(std::string_view s, size_t* p, char close) {
    ++*p;
    skip_spaces(s, p);
    if (*p < s.size() && s[*p] == close) {
      ++*p;
      return true;
    }
    return false;
  }

  // After an item: 1 = the collection ended, 0 = a comma (another item follows), -1 = neither.
  static int after_flow_item(std::string_view s, size_t* p, char close) {
    skip_spaces(s, p);
    if (*p >= s.size()) return -1;
    char c = s[(*p)++];
    return c == close ? 1 : c == ',' ? 0 : -1;
  }

  static std::optional<LiteNode> flow_sequence(std::string_view s, size_t* p) {
    LiteNode seq(LiteNode::kSequence);
    if (open_flow(s, p, ']')) return seq;
    for (;;) {
      skip_spaces(s, p);
      auto v = flow_scalar(s, p);
      if (!v) return std::nullopt;
      seq.push_back(std::move(*v));
      int next = after_flow_item(s, p, ']');
      if (next < 0) return std::nullopt;
      if (next > 0) return seq;
    }
  }

  static std::optional<LiteNode> flow_mapping(std::string_view s, size_t* p) {
    LiteNode m(LiteNode::kMap);
    std::vector<std::string_view> keys;
    if (open_flow(s, p, '}')) return m;
    for (;;) {
      skip_spaces(s, p);
      if (*p >= s.size() || !key_start(s[*p])) return std::nullopt;
      size_t b = *p;
      while (*p < s.size() && key_char(s[*p])) ++*p;
      std::string_view key = s.substr(b, *p - b);
      if (*p + 1 >= s.size() || s[*p] != ':' || s[*p + 1] != ' ' || null_word(key)) return std::nullopt;
      for (auto k : keys)
        if (k == key) return std::nullopt;
      keys.push_back(key);
      *p += 2;
      skip_spaces(s, p);
      auto v = flow_scalar(s, p);
      if (!v) return std::nullopt;
      m.add(std::string(key), std::move(*v));
      int next = after_flow_item(s, p, '}');
      if (next < 0) return std::nullopt;
      if (next > 0) return m;
    }
  }

  std::vector<Line> L_;
  size_t i_ = 0;
};

}  // namespace

NFSUP_HOT std::optional<LiteNode> load_yaml_subset(std::string_view text) {
  std::vector<Line> lines;
  bool first = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    for (char c : raw)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return std::nullopt;
    size_t ind = raw.find_first_not_of(' ');
    if (ind == std::string_view::npos) continue;
    std::string_view t = rtrim(raw.substr(ind));
    if (t[0] == '#') continue;
    if (first && ind == 0 && t == "---") {
      first = false;
      continue;
    }
    first = false;
    lines.push_back({static_cast<int>(ind), t});
  }
  return Reader(std::move(lines)).document();
}

bool same_tree(const LiteNode& a, const YAML::Node& b) {
  switch (a.kind()) {
    case LiteNode::kUndefined:
      return !b.IsDefined();
    case LiteNode::kNull:
      return b.IsNull();
    case LiteNode::kScalar:
      return b.IsScalar() && a.Scalar() == b.Scalar();
    case LiteNode::kSequence: {
      if (!b.IsSequence() || a.size() != b.size()) return false;
      size_t i = 0;
      for (const auto& e : a)
        if (!same_tree(e, b[i++])) return false;
      return true;
    }
    case LiteNode::kMap: {
      if (!b.IsMap() || a.size() != b.size()) return false;
      auto ib = b.begin();
      for (const auto& e : a) {
        if (ib == b.end() || !same_tree(e.first, ib->first) || !same_tree(e.second, ib->second)) return false;
        ++ib;
      }
      return ib == b.end();
    }
  }
  return false;
}

}  // namespace nfsup
