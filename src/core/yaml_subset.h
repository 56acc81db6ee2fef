// nfsup core: a reader for the plain subset of YAML that configuration files are written in.
//
// Why: yaml-cpp spends ~170 us on the first 350-byte document a process parses (its scanner
// builds its regular expressions on first use), which was a fifth of an idle cron tick. This
// reader handles the block style people write by hand and returns nullopt for anything else,
// so the caller falls back to yaml-cpp; it never guesses. When it accepts a text, yaml-cpp
// yields the same tree (node kinds, key order, scalar values); the unit tests and the config
// fuzz target check that on every input they try.
//
// Accepted: block mappings and block sequences indented with spaces, `---` first, comments,
// keys made of letters, digits and `_ . / -`, values that are plain scalars, '...' or "..."
// (no escapes), flow sequences [a, "b"] and flow mappings {k: v} of such scalars. `~`, `null`,
// `Null`, `NULL` and empty values are null, as in yaml-cpp. Nodes carry no marks (line and
// column): report errors from a yaml-cpp parse of the same text. The tree is its own (no
// YAML::Node: building one node costs yaml-cpp a memory pool and a merge).
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nfsup {

struct LiteEntry;

/// A node of the subset's tree, with the part of YAML::Node's interface that config.cpp uses
/// (so one template reads either tree). Iterating a map yields entries with .first and
/// .second; iterating a sequence yields the elements.
class LiteNode {
 public:
  enum Kind { kUndefined, kNull, kScalar, kSequence, kMap };
  // (defined below LiteEntry: a vector's members need its element type complete)
  LiteNode();
  explicit LiteNode(Kind k);
  explicit LiteNode(std::string s);
  LiteNode(const LiteNode&);
  LiteNode(LiteNode&&) noexcept;
  LiteNode& operator=(const LiteNode&);
  LiteNode& operator=(LiteNode&&) noexcept;
  ~LiteNode();

  bool IsDefined() const { return kind_ != kUndefined; }
  bool IsNull() const { return kind_ == kNull; }
  bool IsScalar() const { return kind_ == kScalar; }
  bool IsSequence() const { return kind_ == kSequence; }
  bool IsMap() const { return kind_ == kMap; }
  explicit operator bool() const { return IsDefined(); }
  const std::string& Scalar() const { return scalar_; }
  YAML::Mark Mark() const { return YAML::Mark::null_mark(); }
  size_t size() const;
  std::vector<LiteEntry>::const_iterator begin() const;
  std::vector<LiteEntry>::const_iterator end() const;
  Kind kind() const { return kind_; }

  void push_back(LiteNode n);
  void add(std::string key, LiteNode value);

 private:
  Kind kind_ = kUndefined;
  std::string scalar_;
  std::vector<LiteEntry> items_;
};

struct LiteEntry : LiteNode {  // a sequence element (the node itself), or a map's key and value
  LiteEntry() = default;
  explicit LiteEntry(LiteNode n) : LiteNode(std::move(n)) {}
  LiteEntry(LiteNode k, LiteNode v) : first(std::move(k)), second(std::move(v)) {}
  LiteNode first, second;
};

inline LiteNode::LiteNode() = default;
inline LiteNode::LiteNode(Kind k) : kind_(k) {}
inline LiteNode::LiteNode(std::string s) : kind_(kScalar), scalar_(std::move(s)) {}
inline LiteNode::LiteNode(const LiteNode&) = default;
inline LiteNode::LiteNode(LiteNode&&) noexcept = default;
inline LiteNode& LiteNode::operator=(const LiteNode&) = default;
inline LiteNode& LiteNode::operator=(LiteNode&&) noexcept = default;
inline LiteNode::~LiteNode() = default;
inline size_t LiteNode::size() const { return items_.size(); }
inline std::vector<LiteEntry>::const_iterator LiteNode::begin() const { return items_.begin(); }
inline std::vector<LiteEntry>::const_iterator LiteNode::end() const { return items_.end(); }
inline void LiteNode::push_back(LiteNode n) { items_.emplace_back(std::move(n)); }
inline void LiteNode::add(std::string key, LiteNode value) {
  items_.emplace_back(LiteNode(std::move(key)), std::move(value));
}

std::optional<LiteNode> load_yaml_subset(std::string_view text);

// Same kinds, same scalars, same keys in the same order (the property above; for tests).
bool same_tree(const LiteNode& a, const YAML::Node& b);

}  // namespace nfsup
