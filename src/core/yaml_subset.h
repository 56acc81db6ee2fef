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
// column): report errors from a yaml-cpp parse of the same text.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string_view>

namespace nfsup {

std::optional<YAML::Node> load_yaml_subset(std::string_view text);

// Same kinds, same scalars, same keys in the same order (the property above; for tests).
bool yaml_trees_equal(const YAML::Node& a, const YAML::Node& b);

}  // namespace nfsup
