// nfsup core: watchdog configuration parser.
#include "config.h"

#include <fmt/format.h>
#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "fs.h"
#include "yaml_subset.h"

namespace nfsup {

namespace {

// What is wrong with a metrics_file value, if anything: it is written at every status write,
// so it must be on local disk (never the share) and name a file.
std::optional<std::string> metrics_file_problem(const std::string& f, const std::string& share) {
  if (f.empty() || f[0] != '/' || f.back() == '/') return "'metrics_file' must be the absolute path of a file on local disk";
  if (starts_with(f, share + "/")) return "'metrics_file' must be local, not inside the share";
  return std::nullopt;
}

struct Ctx {
  std::string path;
  template <typename N>
  Error at(const N& n, const std::string& msg) const {
    auto m = n.Mark();
    if (m.is_null()) return err(Exit::Usage, fmt::format("{}: {}", path, msg));
    return err(Exit::Usage, fmt::format("{}:{}:{}: {}", path, m.line + 1, m.column + 1, msg));
  }
};

template <typename N>
Result<std::string> get_str(const Ctx& c, const N& n, const std::string& key) {
  if (!n.IsScalar()) return c.at(n, fmt::format("'{}' must be a string", key));
  return n.Scalar();
}

template <typename N>
Result<int64_t> get_dur(const Ctx& c, const N& n, const std::string& key) {
  if (!n.IsScalar()) return c.at(n, fmt::format("'{}' must be a duration like 250ms, 2s, 5m", key));
  auto v = parse_duration_ms(n.Scalar());
  if (!v) return c.at(n, fmt::format("'{}': '{}' is not a duration (use 250ms, 2s, 5m)", key, n.Scalar()));
  return *v;
}

template <typename N>
Result<std::vector<std::string>> get_argv(const Ctx& c, const N& n, const std::string& key) {
  if (!n.IsSequence() || n.size() == 0)
    return c.at(n, fmt::format("'{}' must be a non-empty list like [bin/agent, --flag]", key));
  std::vector<std::string> out;
  for (const auto& e : n) {
    if (!e.IsScalar()) return c.at(e, fmt::format("'{}' elements must be strings", key));
    out.push_back(e.Scalar());
  }
  return out;
}

template <typename N>
Result<bool> get_bool(const Ctx& c, const N& n, const std::string& key) {
  if (n.IsScalar()) {
    const auto& s = n.Scalar();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  return c.at(n, fmt::format("'{}' must be true or false", key));
}

// yaml-cpp keeps every duplicated key and a lookup finds the first; a line appended to override
// an earlier one would be ignored without a word. Refused at the second one.
template <typename N>
Status check_unique_keys(const Ctx& c, const N& map, const std::string& where) {
  std::vector<std::pair<std::string, YAML::Mark>> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) continue;
    const std::string& k = kv.first.Scalar();
    for (const auto& [sk, sm] : seen)
      if (sk == k)
        return c.at(kv.first, fmt::format("duplicate key '{}'{}{}", k, where,
                                          sm.is_null() ? "" : fmt::format(" (first at line {})", sm.line + 1)));
    seen.emplace_back(k, kv.first.Mark());
  }
  return ok_status();
}

template <typename N>
Status check_keys(const Ctx& c, const N& map, std::initializer_list<std::string_view> allowed,
                  const std::string& where) {
  if (auto s = check_unique_keys(c, map, where); !s) return s;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) return c.at(kv.first, "keys must be strings");
    if (std::find(allowed.begin(), allowed.end(), std::string_view(kv.first.Scalar())) == allowed.end())
      return c.at(kv.first, fmt::format("unknown key '{}'{}", kv.first.Scalar(), where));
  }
  return ok_status();
}

// A mapping's keys, indexed once. yaml-cpp looks a key up by converting every key of the map
// to the key's type and comparing, once per lookup; a config asks for some 70 keys, and that
// was most of a cron tick's parse time. Duplicated keys never get here: check_keys() refuses them.
// "No such key": yaml-cpp's default Node is a null (defined) node, not an undefined one.
inline YAML::Node undefined_node(const YAML::Node*) { return YAML::Node(YAML::NodeType::Undefined); }
inline LiteNode undefined_node(const LiteNode*) { return LiteNode(); }

template <typename N>
class Map {
 public:
  explicit Map(const N& n) {
    if (n.IsMap())
      for (const auto& kv : n)
        if (kv.first.IsScalar()) keys_.emplace_back(kv.first.Scalar(), kv.second);
  }
  N operator[](std::string_view k) const {
    for (const auto& [key, v] : keys_)
      if (key == k) return v;  // the first of duplicated keys
    return undefined_node(static_cast<const N*>(nullptr));
  }

 private:
  std::vector<std::pair<std::string, N>> keys_;  // a config's mappings are small: a scan beats a tree
};

#define TAKE(dst, expr)          \
  do {                           \
    auto _r = (expr);            \
    if (!_r) return _r.error();  \
    dst = std::move(*_r);        \
  } while (0)

}  // namespace

int parse_signal(std::string_view s) {
  std::string n(s);
  if (starts_with(n, "SIG")) n = n.substr(3);
  static const std::pair<const char*, int> table[] = {
      {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"WINCH", SIGWINCH}};
  for (auto& [name, sig] : table)
    if (n == name) return sig;
  auto v = parse_duration_ms(n);  // plain digits
  if (!n.empty() && n.size() <= 2 && n.find_first_not_of("0123456789") == std::string::npos) {
    int x = std::stoi(n);
    if (x > 0 && x < 65) return x;
  }
  (void)v;
  return 0;
}

std::string signal_name(int sig) {
  const char* a = sigabbrev_np(sig);
  return a ? fmt::format("SIG{}", a) : std::to_string(sig);
}

namespace {

template <typename N>
Result<WatchdogConfig> build_watchdog_config(const N& root, const std::string& path);

}  // namespace

NFSUP_HOT Result<WatchdogConfig> parse_watchdog_config(std::string_view yaml, const std::string& path) {
  // The common plain file is read without yaml-cpp (yaml_subset.h: the same tree, built in a
  // fraction of the time). Anything else, and every error, goes through yaml-cpp, whose nodes know
  // their line and column for the message.
  if (auto fast = load_yaml_subset(yaml))
    if (auto cfg = build_watchdog_config(*fast, path)) return cfg;
  return parse_watchdog_config_with_yaml_cpp(yaml, path);
}

Result<WatchdogConfig> parse_watchdog_config_with_yaml_cpp(std::string_view yaml, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return err(Exit::Usage, fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1,
                                        e.mark.column + 1, e.msg));
  }
  return build_watchdog_config(root, path);
}

namespace {

// The host's identity and where things are: share, host, group, class, traits, checks_dir.
template <typename N>
Status parse_identity(const Ctx& c, const N& root, const Map<N>& R, const std::string& path, WatchdogConfig& cfg) {
  if (!R["share"]) return err(Exit::Usage, fmt::format("{}: missing required key 'share'", path));
  TAKE(cfg.share, get_str(c, R["share"], "share"));
  if (cfg.share.empty() || cfg.share[0] != '/') return c.at(R["share"], "'share' must be an absolute path");
  while (cfg.share.size() > 1 && cfg.share.back() == '/') cfg.share.pop_back();
  cfg.host = short_hostname();
  if (R["host"]) TAKE(cfg.host, get_str(c, R["host"], "host"));
  if (auto e = check_host_name(cfg.host)) return c.at(R["host"] ? R["host"] : root, "'host': " + *e);
  if (R["group"]) {
    TAKE(cfg.group, get_str(c, R["group"], "group"));
    if (auto e = check_host_name(cfg.group)) return c.at(R["group"], "'group': " + *e);
  }
  if (R["class"]) {
    TAKE(cfg.cls, get_str(c, R["class"], "class"));
    if (auto e = check_host_name(cfg.cls)) return c.at(R["class"], "'class': " + *e);
  }
  if (R["traits"]) {
    const auto& t = R["traits"];
    if (!t.IsMap()) return c.at(t, "'traits' must be a mapping like {arch: aarch64, role: edge}");
    if (auto s = check_unique_keys(c, t, " in 'traits'"); !s) return s.error();
    for (const auto& kv : t) {
      if (!kv.first.IsScalar() || !kv.second.IsScalar()) return c.at(kv.first, "'traits' values must be strings");
      cfg.traits[kv.first.Scalar()] = kv.second.Scalar();
    }
  }
  if (R["checks_dir"]) {
    TAKE(cfg.checks_dir, get_str(c, R["checks_dir"], "checks_dir"));
    if (cfg.checks_dir.empty() || cfg.checks_dir[0] != '/') return c.at(R["checks_dir"], "'checks_dir' must be an absolute path");
  }
  return ok_status();
}

// Timers and the state directory.
template <typename N>
Status parse_timing(const Ctx& c, const N& root, const Map<N>& R, WatchdogConfig& cfg) {
  if (R["poll_interval"]) TAKE(cfg.poll_interval_ms, get_dur(c, R["poll_interval"], "poll_interval"));
  if (R["heartbeat_interval"])
    TAKE(cfg.heartbeat_interval_ms, get_dur(c, R["heartbeat_interval"], "heartbeat_interval"));
  if (R["share_timeout"]) TAKE(cfg.share_timeout_ms, get_dur(c, R["share_timeout"], "share_timeout"));
  if (R["state_dir"]) TAKE(cfg.state_dir, get_str(c, R["state_dir"], "state_dir"));
  if (R["verify_before_start"])
    TAKE(cfg.verify_before_start, get_bool(c, R["verify_before_start"], "verify_before_start"));
  auto node = [&](const char* k) { return R[k] ? R[k] : root; };
  if (cfg.state_dir.empty() || cfg.state_dir[0] != '/')
    return c.at(node("state_dir"), "'state_dir' must be an absolute path on local disk");
  if (starts_with(cfg.state_dir + "/", cfg.share + "/"))
    return c.at(node("state_dir"), "'state_dir' must be local, not inside the share");
  if (R["metrics_file"]) {
    TAKE(cfg.metrics_file, get_str(c, R["metrics_file"], "metrics_file"));
    if (auto e = metrics_file_problem(cfg.metrics_file, cfg.share)) return c.at(R["metrics_file"], *e);
  }
  if (cfg.poll_interval_ms < 50) return c.at(node("poll_interval"), "'poll_interval' must be at least 50ms");
  if (cfg.share_timeout_ms < 100) return c.at(node("share_timeout"), "'share_timeout' must be at least 100ms");
  if (cfg.heartbeat_interval_ms < cfg.poll_interval_ms) cfg.heartbeat_interval_ms = cfg.poll_interval_ms;
  return ok_status();
}

// Signatures: trusted keys are loaded now so a bad key file is a config error.
template <typename N>
Status parse_trust(const Ctx& c, const Map<N>& R, WatchdogConfig& cfg) {
  if (R["trusted_keys"]) {
    const auto& tk = R["trusted_keys"];
    if (!tk.IsSequence()) return c.at(tk, "'trusted_keys' must be a list of public key files");
    for (const auto& k : tk) {
      if (!k.IsScalar()) return c.at(k, "'trusted_keys' entries must be file paths");
      auto pk = load_public_key(k.Scalar());
      if (!pk) return c.at(k, "trusted_keys: " + pk.error().msg);
      cfg.trust.trusted.push_back(*pk);
      cfg.trusted_key_paths.push_back(k.Scalar());
    }
  }
  if (R["revoked_keys"]) {
    const auto& rk = R["revoked_keys"];
    if (!rk.IsSequence()) return c.at(rk, "'revoked_keys' must be a list of key ids or public key files");
    for (const auto& k : rk) {
      if (!k.IsScalar()) return c.at(k, "'revoked_keys' entries must be key ids or file paths");
      const std::string& v = k.Scalar();
      if (v.size() == 16 && v.find_first_not_of("0123456789abcdef") == std::string::npos) {
        cfg.trust.revoked.insert(v);
      } else {
        auto pk = load_public_key(v);
        if (!pk) return c.at(k, "revoked_keys: " + pk.error().msg);
        cfg.trust.revoked.insert(pk->id);
      }
    }
  }
  cfg.trust.allow_unsigned = cfg.trust.trusted.empty();
  if (R["allow_unsigned"]) TAKE(cfg.trust.allow_unsigned, get_bool(c, R["allow_unsigned"], "allow_unsigned"));
  if (!cfg.trust.allow_unsigned && cfg.trust.trusted.empty())
    return c.at(R["allow_unsigned"], "allow_unsigned: false needs at least one key in 'trusted_keys'");
  return ok_status();
}

// Where the agent runs from, and how many local releases are kept.
template <typename N>
Status parse_store(const Ctx& c, const Map<N>& R, WatchdogConfig& cfg) {
  if (R["run_from"]) {
    std::string v;
    TAKE(v, get_str(c, R["run_from"], "run_from"));
    if (v != "local" && v != "share") return c.at(R["run_from"], "'run_from' must be local or share");
    cfg.run_from_share = v == "share";
    if (cfg.run_from_share && cfg.trust.signed_mode())
      return c.at(R["run_from"], "'run_from: share' is refused in signed mode (trusted_keys): a signed host runs "
                                 "only the local copy it verified; use run_from: local");
  }
  if (R["keep_releases"]) {
    std::string v;
    TAKE(v, get_str(c, R["keep_releases"], "keep_releases"));
    if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos)
      return c.at(R["keep_releases"], "'keep_releases' must be a whole number from 0 to 9999");
    cfg.keep_releases = std::stoi(v);
  }
  return ok_status();
}

template <typename N>
Result<int> signal_of(const Ctx& c, const N& n, const std::string& key) {
  std::string s;
  TAKE(s, get_str(c, n, key));
  int v = parse_signal(s);
  if (v == 0) return c.at(n, fmt::format("'{}': unknown signal '{}'", key, s));
  return v;
}

// k: the service's key in messages, "agent" or "services.<name>".
template <typename N>
Status parse_drain(const Ctx& c, const N& d, const std::string& k, AgentConfig& ag) {
  if (!d.IsMap())
    return c.at(d, fmt::format("'{}.drain' must be a mapping: {{signal: USR1, timeout: 60s}} or {{command: [...]}}", k));
  const Map<N> D(d);
  if (auto s = check_keys(c, d, {"signal", "command", "timeout"}, fmt::format(" in '{}.drain'", k)); !s) return s.error();
  if (D["signal"]) TAKE(ag.drain_signal, signal_of(c, D["signal"], k + ".drain.signal"));
  if (D["command"]) TAKE(ag.drain_command, get_argv(c, D["command"], k + ".drain.command"));
  if ((ag.drain_signal != 0) == !ag.drain_command.empty())
    return c.at(d, fmt::format("'{}.drain' needs exactly one of 'signal' or 'command'", k));
  if (D["timeout"]) TAKE(ag.drain_timeout_ms, get_dur(c, D["timeout"], k + ".drain.timeout"));
  return ok_status();
}

template <typename N>
Status parse_health(const Ctx& c, const N& h, const std::string& k, AgentConfig& ag) {
  if (!h.IsMap())
    return c.at(h, fmt::format("'{}.health' must be a mapping: {{command: [bin/healthcheck], timeout: 20s}}", k));
  const Map<N> H(h);
  if (auto s = check_keys(c, h, {"command", "timeout"}, fmt::format(" in '{}.health'", k)); !s) return s.error();
  if (!H["command"]) return c.at(h, fmt::format("'{}.health' needs a 'command'", k));
  TAKE(ag.health_command, get_argv(c, H["command"], k + ".health.command"));
  if (auto e = check_rel_path(ag.health_command[0]))
    return c.at(H["command"], fmt::format("{}.health.command[0] must be relative to the release directory: {}", k, *e));
  if (H["timeout"]) TAKE(ag.health_timeout_ms, get_dur(c, H["timeout"], k + ".health.timeout"));
  return ok_status();
}

// modules: [core, plugin]: names by the module rules, each once.
template <typename N>
Status parse_modules(const Ctx& c, const N& m, const std::string& k, AgentConfig& ag) {
  if (!m.IsSequence())
    return c.at(m, fmt::format("'{}.modules' must be a list of module names like [core, plugin]", k));
  for (const auto& e : m) {
    if (!e.IsScalar()) return c.at(e, fmt::format("'{}.modules' elements must be module names", k));
    if (auto bad = check_host_name(e.Scalar())) return c.at(e, fmt::format("'{}.modules': {}", k, *bad));
    if (std::find(ag.modules.begin(), ag.modules.end(), e.Scalar()) != ag.modules.end())
      return c.at(e, fmt::format("'{}.modules': '{}' is listed twice", k, e.Scalar()));
    ag.modules.push_back(e.Scalar());
  }
  return ok_status();
}

// changeover: {signal: USR2 | command: [...], timeout: 30s, on_timeout: veto | restart}
template <typename N>
Status parse_changeover(const Ctx& c, const N& n, const std::string& k, ChangeoverConfig& co) {
  const std::string w = k + ".changeover";
  if (!n.IsMap())
    return c.at(n, fmt::format("'{}' must be a mapping: {{signal: USR2, timeout: 30s}} or {{command: [...]}}", w));
  const Map<N> M(n);
  if (auto s = check_keys(c, n, {"signal", "command", "timeout", "on_timeout"}, fmt::format(" in '{}'", w)); !s)
    return s.error();
  if (M["signal"]) TAKE(co.signal, signal_of(c, M["signal"], w + ".signal"));
  if (M["command"]) {
    TAKE(co.command, get_argv(c, M["command"], w + ".command"));
    if (auto e = check_rel_path(co.command[0]))
      return c.at(M["command"], fmt::format("{}.command[0] must be relative to the release directory: {}", w, *e));
  }
  if ((co.signal != 0) == !co.command.empty())
    return c.at(n, fmt::format("'{}' needs exactly one of 'signal' or 'command'", w));
  if (M["timeout"]) TAKE(co.timeout_ms, get_dur(c, M["timeout"], w + ".timeout"));
  if (M["on_timeout"]) {
    std::string v;
    TAKE(v, get_str(c, M["on_timeout"], w + ".on_timeout"));
    if (v != "veto" && v != "restart") return c.at(M["on_timeout"], fmt::format("'{}.on_timeout' must be veto or restart", w));
    co.on_timeout = v == "restart" ? ChangeoverConfig::OnTimeout::Restart : ChangeoverConfig::OnTimeout::Veto;
  }
  return ok_status();
}

// Restarts and the commands of an agent run by start/stop commands.
template <typename N>
Status parse_agent_rest(const Ctx& c, const N& a, const Map<N>& A, const std::string& k, AgentConfig& ag) {
  if (A["start_grace"]) TAKE(ag.start_grace_ms, get_dur(c, A["start_grace"], k + ".start_grace"));
  if (A["restart_window"]) TAKE(ag.restart_window_ms, get_dur(c, A["restart_window"], k + ".restart_window"));
  if (A["restart_limit"]) {
    std::string s;
    TAKE(s, get_str(c, A["restart_limit"], k + ".restart_limit"));
    auto v = parse_duration_ms(s);
    if (s.find_first_not_of("0123456789") != std::string::npos || s.empty() || !v)
      return c.at(A["restart_limit"], fmt::format("'{}.restart_limit' must be a whole number", k));
    ag.restart_limit = std::stoi(s);
  }
  if (A["start_command"]) TAKE(ag.start_command, get_argv(c, A["start_command"], k + ".start_command"));
  if (A["stop_command"]) TAKE(ag.stop_command, get_argv(c, A["stop_command"], k + ".stop_command"));
  if (A["status_command"]) TAKE(ag.status_command, get_argv(c, A["status_command"], k + ".status_command"));
  if (ag.start_command.empty() != ag.stop_command.empty())
    return c.at(a, fmt::format("'{0}.start_command' and '{0}.stop_command' go together: give both or neither", k));
  if (A["modules"])
    if (auto s = parse_modules(c, A["modules"], k, ag); !s) return s.error();
  if (A["changeover"])
    if (auto s = parse_changeover(c, A["changeover"], k, ag.changeover); !s) return s.error();
  return ok_status();
}

// One service: the `agent:` mapping (k "agent") or an entry of `services:` (k "services.<name>",
// whose "name" key the caller has read).
template <typename N>
Status parse_agent(const Ctx& c, const N& a, const std::string& k, AgentConfig& ag) {
  if (!a.IsMap()) return c.at(a, fmt::format("'{}' must be a mapping", k));
  const Map<N> A(a);
  const bool named = k != "agent";
  if (auto s = check_keys(c, a,
                          {"command", "config", "stop_signal", "stop_timeout", "start_command", "stop_command",
                           "status_command", "restart_limit", "restart_window", "reconfig_timeout", "start_grace",
                           "acting_signal", "drain", "health", "modules", "changeover", named ? "name" : "command"},
                          fmt::format(" in '{}'", k)); !s)
    return s.error();
  if (!A["command"]) return c.at(a, fmt::format("'{}' needs a 'command' list", k));
  TAKE(ag.command, get_argv(c, A["command"], k + ".command"));
  if (auto e = check_rel_path(ag.command[0]))
    return c.at(A["command"], fmt::format("{}.command[0] must be a path relative to the release directory: {}", k, *e));
  if (A["config"]) {
    TAKE(ag.config, get_str(c, A["config"], k + ".config"));
    if (ag.config.empty() || ag.config[0] != '/') return c.at(A["config"], fmt::format("'{}.config' must be an absolute path", k));
  }
  if (A["stop_signal"]) {
    std::string s;
    TAKE(s, get_str(c, A["stop_signal"], k + ".stop_signal"));
    ag.stop_signal = parse_signal(s);
    if (ag.stop_signal == 0) return c.at(A["stop_signal"], fmt::format("unknown signal '{}'", s));
  }
  if (A["stop_timeout"]) TAKE(ag.stop_timeout_ms, get_dur(c, A["stop_timeout"], k + ".stop_timeout"));
  if (A["reconfig_timeout"])
    TAKE(ag.reconfig_timeout_ms, get_dur(c, A["reconfig_timeout"], k + ".reconfig_timeout"));
  if (A["acting_signal"]) TAKE(ag.acting_signal, signal_of(c, A["acting_signal"], k + ".acting_signal"));
  if (A["drain"])
    if (auto s = parse_drain(c, A["drain"], k, ag); !s) return s.error();
  if (A["health"])
    if (auto s = parse_health(c, A["health"], k, ag); !s) return s.error();
  return parse_agent_rest(c, a, A, k, ag);
}

constexpr size_t kMaxServices = 64;

// services: a list of named services; names by the module rules, each once.
template <typename N>
Status parse_services(const Ctx& c, const N& list, std::vector<AgentConfig>& out) {
  if (!list.IsSequence() || list.size() == 0)
    return c.at(list, "'services' must be a non-empty list of services (- name: ..., command: [...])");
  if (list.size() > kMaxServices) return c.at(list, fmt::format("'services': at most {} services", kMaxServices));
  std::vector<std::pair<std::string, YAML::Mark>> seen;
  for (const auto& item : list) {
    const N e = item;  // (an iterator's value type: a node again, for Map and parse_agent)
    const std::string at = fmt::format("services[{}]", out.size());
    if (!e.IsMap()) return c.at(e, fmt::format("'{}' must be a mapping (name: ..., command: [...])", at));
    const Map<N> E(e);
    if (!E["name"]) return c.at(e, fmt::format("'{}' needs a 'name'", at));
    AgentConfig ag;
    TAKE(ag.name, get_str(c, E["name"], at + ".name"));
    if (auto bad = check_host_name(ag.name)) return c.at(E["name"], fmt::format("'{}.name': {}", at, *bad));
    for (const auto& [n, m] : seen)
      if (n == ag.name)
        return c.at(E["name"], fmt::format("duplicate service name '{}'{}", n,
                                           m.is_null() ? "" : fmt::format(" (first at line {})", m.line + 1)));
    seen.emplace_back(ag.name, E["name"].Mark());
    if (auto s = parse_agent(c, e, "services." + ag.name, ag); !s) return s.error();
    out.push_back(std::move(ag));
  }
  return ok_status();
}

template <typename N>
Result<WatchdogConfig> build_watchdog_config(const N& root, const std::string& path) {
  Ctx c{path};
  if (!root.IsMap()) return err(Exit::Usage, fmt::format("{}: the top level must be a mapping of keys", path));
  WatchdogConfig cfg;
  cfg.path = path;
  const Map<N> R(root);
  try {
    if (auto s = check_keys(c, root,
                            {"share", "host", "poll_interval", "heartbeat_interval", "share_timeout", "state_dir",
                             "verify_before_start", "agent", "trusted_keys", "revoked_keys", "allow_unsigned", "group",
                             "class", "traits", "checks_dir", "metrics_file", "run_from", "keep_releases",
                             "services"},
                            ""); !s)
      return s.error();
    if (auto s = parse_identity(c, root, R, path, cfg); !s) return s.error();
    if (auto s = parse_timing(c, root, R, cfg); !s) return s.error();
    if (auto s = parse_trust(c, R, cfg); !s) return s.error();
    if (auto s = parse_store(c, R, cfg); !s) return s.error();
    const N a = R["agent"];
    const N sv = R["services"];
    if (a && sv)
      return c.at(sv, "'agent' and 'services' cannot both be given: an 'agent' is the one service named agent");
    if (!a && !sv) return err(Exit::Usage, fmt::format("{}: missing required key 'agent' (or 'services')", path));
    if (sv) {
      if (auto s = parse_services(c, sv, cfg.services); !s) return s.error();
    } else {
      cfg.services.emplace_back();
      if (auto s = parse_agent(c, a, "agent", cfg.services.back()); !s) return s.error();
    }
    cfg.agent = cfg.services.front();
  } catch (const YAML::Exception& e) {
    return err(Exit::Usage, fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  return cfg;
}

}  // namespace

NFSUP_HOT Result<WatchdogConfig> load_watchdog_config(const std::string& path) {
  std::string text;
  if (int e = read_all(path, 1024 * 1024, &text); e == EFBIG)
    return err(Exit::Usage, fmt::format("{}: config larger than 1 MiB", path));
  else if (e != 0)
    return err(Exit::Usage, fmt::format("{}: cannot read config: {}", path, errno_str(e)));
  return parse_watchdog_config(text, path);
}

}  // namespace nfsup
