// nfsup fuzzing: the properties every parser of untrusted input must keep.
//
// One check_<target>() per parser. Each feeds the bytes to the parser and, when the parser
// accepts them, checks
//   - the invariants the parser promises (valid names, ranges, relative paths, ...), and
//   - the round trip: pack(unpack(x)) must unpack again, to an equal value, and packing that
//     value again must give the same bytes.
// They return whether the parser accepted the input.
//
// The same header is compiled into the libFuzzer targets (fuzz_<target>.cpp, a failed
// property is __builtin_trap(), which libFuzzer reports as a crash) and into the plain
// corpus replay test (replay_test.cpp defines NFSUP_FUZZ_REPLAY, a failed property throws
// so the replay can name the file and go on).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "crypto.h"
#include "record.h"
#include "share.h"
#include "trust.h"
#include "util.h"
#include "watchdog.h"
#include "yaml_subset.h"

namespace nfsup_fuzz {

struct CheckFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const char* what) {
#ifdef NFSUP_FUZZ_REPLAY
  throw CheckFailure(what);
#else
  std::fprintf(stderr, "nfsup fuzz: property failed: %s\n", what);
  __builtin_trap();
#endif
}

#define NFSUP_STR2(x) #x
#define NFSUP_STR(x) NFSUP_STR2(x)
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) ::nfsup_fuzz::fail(#cond " (" __FILE__ ":" NFSUP_STR(__LINE__) ")"); \
  } while (0)

/// Why the parser refused the last input (the replay test prints it).
inline std::string last_error;

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// ------------------------------------------------------------------ equality

inline bool eq(const nfsup::Record& a, const nfsup::Record& b) {
  if (a.kind != b.kind || a.version != b.version || a.lines.size() != b.lines.size()) return false;
  for (size_t i = 0; i < a.lines.size(); ++i) {
    const auto &x = a.lines[i], &y = b.lines[i];
    if (x.key != y.key || x.args != y.args || x.lineno != y.lineno) return false;
  }
  return true;
}

inline bool eq(const nfsup::Marker& a, const nfsup::Marker& b) {
  return a.generation == b.generation && a.action == b.action && a.release == b.release &&
         a.previous == b.previous && a.master_host == b.master_host && a.master_pid == b.master_pid &&
         a.nonce == b.nonce && a.lease_ms == b.lease_ms && a.renewal == b.renewal && a.started == b.started &&
         a.strategy == b.strategy && a.targets == b.targets;
}

inline bool eq(const nfsup::Pointer& a, const nfsup::Pointer& b) {
  return a.generation == b.generation && a.release == b.release && a.previous == b.previous &&
         a.action == b.action && a.updated == b.updated && a.updated_by == b.updated_by &&
         a.overrides == b.overrides && a.acting == b.acting && a.min_supported == b.min_supported && a.sigs == b.sigs;
}

inline bool eq(const nfsup::HostStatus& a, const nfsup::HostStatus& b) {
  return a.host == b.host && a.state == b.state && a.running == b.running && a.generation == b.generation &&
         a.heartbeat == b.heartbeat && a.pid == b.pid && a.agent_pid == b.agent_pid && a.mode == b.mode &&
         a.reason == b.reason && a.updated == b.updated && a.trust == b.trust && a.group == b.group &&
         a.acting == b.acting && a.mtime_ms == b.mtime_ms;
}

inline bool eq(const nfsup::ManifestEntry& a, const nfsup::ManifestEntry& b) {
  return a.kind == b.kind && a.path == b.path && a.mode == b.mode && a.size == b.size && a.sha256 == b.sha256 &&
         a.target == b.target;
}

inline bool eq(const nfsup::Manifest& a, const nfsup::Manifest& b) {
  if (a.version != b.version || a.created != b.created || a.created_by != b.created_by ||
      a.reconfig != b.reconfig || a.expires != b.expires || a.min_compatible != b.min_compatible ||
      a.migrate != b.migrate || a.entries.size() != b.entries.size())
    return false;
  for (size_t i = 0; i < a.entries.size(); ++i)
    if (!eq(a.entries[i], b.entries[i])) return false;
  return true;
}

using SigList = std::vector<std::pair<std::string, std::string>>;
inline bool eq(const SigList& a, const SigList& b) { return a == b; }

/// unpack(x) == v  =>  unpack(pack(v)) == v and pack(unpack(pack(v))) == pack(v).
template <typename T, typename Pack, typename Unpack>
void round_trip(const T& v, Pack pack, Unpack unpack) {
  std::string once = pack(v);
  auto again = unpack(once);
  FUZZ_CHECK(again.ok());  // what we write we must be able to read
  FUZZ_CHECK(eq(*again, v));
  FUZZ_CHECK(pack(*again) == once);
}

inline bool valid_name(const std::string& v) { return !nfsup::check_version_name(v).has_value(); }

// ------------------------------------------------------------------ a trusted key

// An Ed25519 key made for the fuzz seeds (openssl genpkey), id = sha256(raw)[:16]; seed
// signature/ok-valid-signature holds its signature over kSignedData, so the verify path that
// succeeds is reachable too.
constexpr const char* kFuzzKeyId = "7b452c52a09beaa6";
constexpr const char* kFuzzKeyRawHex = "3e31d4af1da444aa79bae582bfd6365eb37f0761cc3106836261097f203dbdd1";
constexpr const char* kSignedData = "nfsup-fuzz-data";

inline const nfsup::TrustPolicy& fuzz_policy() {
  static const nfsup::TrustPolicy pol = [] {
    nfsup::PublicKey k;
    k.id = kFuzzKeyId;
    std::string hex = kFuzzKeyRawHex;
    for (size_t i = 0; i < hex.size(); i += 2) k.raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    k.path = "fuzz.pub";
    nfsup::TrustPolicy p;
    p.trusted.push_back(k);
    p.allow_unsigned = false;
    return p;
  }();
  return pol;
}

// ------------------------------------------------------------------ decide()

// The watchdog acts on what the parsers return: run decide() over parsed values with a few
// local views and check the rules of watchdog.h that hold for any marker/pointer.
inline void check_decide(const std::optional<nfsup::Marker>& marker, const std::optional<nfsup::Pointer>& ptr) {
  using nfsup::Decision;
  std::vector<std::string> hosts = {"web1"};
  if (marker && marker->targets && !marker->targets->empty()) hosts.push_back(marker->targets->front());
  if (ptr && !ptr->overrides.empty()) hosts.push_back(ptr->overrides.begin()->first);
  for (const auto& host : hosts) {
    const std::string want = ptr ? ptr->release_for(host) : std::string("0.9");
    nfsup::LocalView views[4];
    views[1].running = "1.0";
    views[1].agent_up = true;
    views[2].running = want;
    views[2].held_gen = ptr ? ptr->generation : 0;
    views[3].running = "0.9";
    views[3].failed_gen = ptr ? ptr->generation : 1;
    views[3].gave_up = true;
    for (auto& lv : views) lv.host = host;
    for (bool lapsed : {false, true}) {
      for (bool read : {false, true}) {
        for (const auto& lv : views) {
          nfsup::Observation obs;
          obs.marker = marker;
          obs.marker_lapsed = lapsed;
          obs.pointer_read = read;
          if (read) obs.pointer = ptr;
          Decision d = nfsup::decide(obs, lv);
          FUZZ_CHECK(std::strcmp(nfsup::decision_name(d.kind), "?") != 0);
          if (marker && !lapsed && marker->targets_host(host)) {
            // MARKER present for this host, lease alive -> stop the agent for its generation.
            FUZZ_CHECK(d.kind == Decision::Hold);
            FUZZ_CHECK(d.generation == marker->generation);
            FUZZ_CHECK(d.to == marker->release);
            continue;
          }
          FUZZ_CHECK(d.kind != Decision::Hold);
          if (!read) {
            FUZZ_CHECK(d.kind == Decision::NeedPointer);
            continue;
          }
          // Whatever it starts or switches to is a release the share names or that ran before.
          if (d.kind == Decision::Switch) {
            FUZZ_CHECK(ptr.has_value());
            FUZZ_CHECK(d.to == want);
            FUZZ_CHECK(valid_name(d.to));
            FUZZ_CHECK(d.to != lv.running);
          }
          if (d.kind == Decision::Start) {
            FUZZ_CHECK(!lv.agent_up && !lv.gave_up);
            FUZZ_CHECK(valid_name(d.to));
          }
          // A switch that failed for this generation is never retried.
          if (ptr && lv.failed_gen == ptr->generation) FUZZ_CHECK(d.kind != Decision::Switch);
        }
      }
    }
  }
}

// ------------------------------------------------------------------ record.h

inline bool check_record(std::string_view text) {
  // Token codec: decode(encode(x)) == x for any bytes; encode(decode(t)) decodes to the same.
  // (On a prefix: encoding costs a format call per escaped byte, and length adds nothing.)
  {
    std::string_view tok = text.substr(0, 2048);
    std::string enc = nfsup::encode_token(tok);
    for (char c : enc) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f);
    auto dec = nfsup::decode_token(enc);
    FUZZ_CHECK(dec.has_value() && *dec == tok);
    if (auto d = nfsup::decode_token(tok)) {
      auto d2 = nfsup::decode_token(nfsup::encode_token(*d));
      FUZZ_CHECK(d2.has_value() && *d2 == *d);
    }
  }
  if (text.size() <= 32) {
    if (auto v = nfsup::parse_i64(text)) {
      auto v2 = nfsup::parse_i64(std::to_string(*v));
      FUZZ_CHECK(v2.has_value() && *v2 == *v);
    }
  }

  // The kind the input claims (so every kind is reachable), and a fixed one.
  std::string kind = "marker";
  if (text.substr(0, 6) == "nfsup-") {
    size_t end = text.find_first_of(" \n", 6);
    kind = std::string(text.substr(6, end == std::string_view::npos ? std::string_view::npos : end - 6));
  }
  bool accepted = false;
  last_error.clear();
  for (const auto& kv : {std::pair<std::string, int>{kind, 1}, {kind, 1000000}, {"marker", 1}}) {
    const std::string& k = kv.first;
    const int maxv = kv.second;
    auto r = nfsup::unpack_record(text, k, maxv, "fuzz/record");
    if (!r) {
      if (last_error.empty()) last_error = r.error().msg;
      FUZZ_CHECK(r.error().code == nfsup::Exit::Integrity);
      FUZZ_CHECK(!r.error().msg.empty());
      continue;
    }
    accepted = true;
    FUZZ_CHECK(r->kind == k);
    FUZZ_CHECK(r->version >= 1 && r->version <= maxv);
    for (const auto& l : r->lines) {
      FUZZ_CHECK(!l.key.empty());
      FUZZ_CHECK(l.lineno >= 2);
    }
    round_trip(*r, [](const nfsup::Record& x) { return nfsup::pack_record(x); },
               [&](const std::string& s) { return nfsup::unpack_record(s, k, maxv, "fuzz/record"); });
    // Typed access over the keys the record has (each lookup scans every line: cap it).
    nfsup::RecordReader rd(*r, "fuzz/record");
    for (size_t i = 0; i < r->lines.size() && i < 64; ++i) {
      const auto& l = r->lines[i];
      auto s = rd.str(l.key);
      auto n = rd.num(l.key);
      if (n.ok()) FUZZ_CHECK(s.ok() && nfsup::parse_i64(*s) == *n);
      (void)rd.str_or(l.key, "x");
      (void)rd.num_or(l.key, 7);
      const nfsup::RecordLine* f = r->find(l.key);
      if (f) FUZZ_CHECK(f->key == l.key);
    }
  }
  return accepted;
}

// ------------------------------------------------------------------ share.h

inline bool check_marker(std::string_view text) {
  auto m = nfsup::unpack_marker(text, "fuzz/MARKER");
  if (!m) {
    last_error = m.error().msg;
    FUZZ_CHECK(m.error().code == nfsup::Exit::Integrity);
    return false;
  }
  FUZZ_CHECK(m->generation >= 1);
  FUZZ_CHECK(m->action == "push" || m->action == "rollback");
  FUZZ_CHECK(valid_name(m->release));
  FUZZ_CHECK(m->previous.empty() || valid_name(m->previous));
  FUZZ_CHECK(!nfsup::check_host_name(m->master_host).has_value());
  FUZZ_CHECK(m->lease_ms >= 100 && m->lease_ms <= 24LL * 3600 * 1000);
  FUZZ_CHECK(m->strategy == "all-at-once" || m->strategy == "rolling");
  if (m->targets)
    for (const auto& h : *m->targets) FUZZ_CHECK(!nfsup::check_host_name(h).has_value());
  round_trip(*m, [](const nfsup::Marker& x) { return nfsup::pack_marker(x); },
             [](const std::string& s) { return nfsup::unpack_marker(s, "fuzz/MARKER"); });
  // The lease tracker must not overflow on any renewal counter.
  nfsup::LeaseTracker lt;
  FUZZ_CHECK(!lt.update(*m, 0));
  FUZZ_CHECK(!lt.update(*m, m->lease_ms));
  FUZZ_CHECK(lt.update(*m, m->lease_ms + 1));
  nfsup::Pointer p;
  p.generation = m->generation;
  p.release = m->release;
  check_decide(*m, std::nullopt);
  check_decide(*m, p);
  return true;
}

inline bool check_pointer(std::string_view text) {
  auto p = nfsup::unpack_pointer(text, "fuzz/current");
  if (!p) {
    last_error = p.error().msg;
    FUZZ_CHECK(p.error().code == nfsup::Exit::Integrity);
    return false;
  }
  FUZZ_CHECK(p->generation >= 1);
  FUZZ_CHECK(valid_name(p->release));
  FUZZ_CHECK(p->previous.empty() || valid_name(p->previous));
  FUZZ_CHECK(p->acting.empty() || valid_name(p->acting));
  FUZZ_CHECK(p->min_supported.empty() || valid_name(p->min_supported));
  for (const auto& [h, v] : p->overrides) {
    FUZZ_CHECK(!nfsup::check_host_name(h).has_value());
    FUZZ_CHECK(valid_name(v));
  }
  for (const auto& [id, sig] : p->sigs) FUZZ_CHECK(id.size() == 16 && sig.size() == 128);
  round_trip(*p, [](const nfsup::Pointer& x) { return nfsup::pack_pointer(x); },
             [](const std::string& s) { return nfsup::unpack_pointer(s, "fuzz/current"); });
  check_decide(std::nullopt, *p);
  // Signature check over the re-packed pointer (any sig line, a key that is trusted).
  (void)nfsup::pointer_signed_by_trusted(*p, fuzz_policy());
  (void)nfsup::pointer_signing_text(*p);
  return true;
}

inline bool check_status(std::string_view text) {
  auto s = nfsup::unpack_status(text, "fuzz/status");
  if (!s) {
    last_error = s.error().msg;
    FUZZ_CHECK(s.error().code == nfsup::Exit::Integrity);
    return false;
  }
  FUZZ_CHECK(!nfsup::check_host_name(s->host).has_value());
  FUZZ_CHECK(s->running.empty() || valid_name(s->running));
  FUZZ_CHECK(s->group.empty() || !nfsup::check_host_name(s->group).has_value());
  FUZZ_CHECK(s->reason.size() <= 1024);
  FUZZ_CHECK(s->mtime_ms == 0);
  round_trip(*s, [](const nfsup::HostStatus& x) { return nfsup::pack_status(x); },
             [](const std::string& t) { return nfsup::unpack_status(t, "fuzz/status"); });
  return true;
}

inline bool check_manifest(std::string_view text) {
  auto m = nfsup::unpack_manifest(text, "fuzz/manifest");
  if (!m) {
    last_error = m.error().msg;
    FUZZ_CHECK(m.error().code == nfsup::Exit::Integrity);
    return false;
  }
  FUZZ_CHECK(valid_name(m->version));
  FUZZ_CHECK(m->min_compatible.empty() || valid_name(m->min_compatible));
  // The reconfig script and migrate hook, if named, are files of the release.
  bool reconfig_listed = m->reconfig.empty(), migrate_listed = m->migrate.empty();
  for (const auto& e : m->entries) {
    FUZZ_CHECK(!nfsup::check_rel_path(e.path).has_value());
    if (e.kind == nfsup::ManifestEntry::File && e.path == m->reconfig) reconfig_listed = true;
    if (e.kind == nfsup::ManifestEntry::File && e.path == m->migrate) migrate_listed = true;
    switch (e.kind) {
      case nfsup::ManifestEntry::File:
        FUZZ_CHECK((e.mode & 07022) == 0);
        FUZZ_CHECK(e.sha256.size() == 64);
        FUZZ_CHECK(e.size <= static_cast<uint64_t>(INT64_MAX));
        break;
      case nfsup::ManifestEntry::Dir:
        FUZZ_CHECK((e.mode & 07022) == 0);
        break;
      case nfsup::ManifestEntry::Symlink: {
        FUZZ_CHECK(!e.target.empty() && e.target[0] != '/');
        // Lexically, the link resolves inside the release.
        int depth = 0;
        auto comps = nfsup::split(e.path, '/');
        comps.pop_back();
        for (const auto& c : comps) depth += c.empty() ? 0 : 1;
        for (const auto& c : nfsup::split(e.target, '/')) {
          if (c == "..") --depth;
          else if (!c.empty() && c != ".") ++depth;
          FUZZ_CHECK(depth >= 0);
        }
        break;
      }
    }
  }
  FUZZ_CHECK(reconfig_listed);
  FUZZ_CHECK(migrate_listed);
  for (size_t i = 0; i < m->entries.size(); ++i)
    for (size_t j = i + 1; j < m->entries.size() && j < i + 64; ++j)
      FUZZ_CHECK(m->entries[i].path != m->entries[j].path);
  (void)m->total_bytes();
  round_trip(*m, [](const nfsup::Manifest& x) { return nfsup::pack_manifest(x); },
             [](const std::string& s) { return nfsup::unpack_manifest(s, "fuzz/manifest"); });
  return true;
}

// ------------------------------------------------------------------ trust.h

/// How many signatures of the last signature file verified with the fuzz key.
inline int last_verified = 0;

inline bool check_signature(std::string_view text) {
  last_verified = 0;
  auto s = nfsup::unpack_signature_file(text, "fuzz/manifest.sig");
  if (!s) {
    last_error = s.error().msg;
    FUZZ_CHECK(s.error().code == nfsup::Exit::Integrity);
    return false;
  }
  const auto& key = fuzz_policy().trusted.front();
  for (const auto& [id, sig] : *s) {
    FUZZ_CHECK(id.size() == 16 && sig.size() == 128);
    bool good = nfsup::verify_data(key, kSignedData, sig);
    last_verified += good;
    // Ed25519 signatures are not malleable here: only lowercase hex of the one signature
    // can verify, so a verified signature is 128 lowercase hex digits.
    if (good) FUZZ_CHECK(sig.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  round_trip(*s, [](const SigList& x) { return nfsup::pack_signature_file(x); },
             [](const std::string& t) { return nfsup::unpack_signature_file(t, "fuzz/manifest.sig"); });
  return true;
}

// ------------------------------------------------------------------ config.h

// The plain-YAML reader (yaml_subset.h) declines, or gives yaml-cpp's tree.
inline void check_yaml_subset(std::string_view text) {
  auto fast = nfsup::load_yaml_subset(text);
  if (!fast) return;
  YAML::Node slow;
  bool parsed = true;
  try {
    slow = YAML::Load(std::string(text));
  } catch (const YAML::Exception&) {
    parsed = false;
  }
  FUZZ_CHECK(parsed);
  FUZZ_CHECK(nfsup::same_tree(*fast, slow));
}

// Every field of a parsed config, for comparing two parses.
inline std::string dump_config(const nfsup::WatchdogConfig& c) {
  std::string o;
  auto add = [&](const std::string& k, const std::string& v) { o += k + "=" + v + "\n"; };
  auto list = [](const std::vector<std::string>& v) {
    std::string r;
    for (const auto& x : v) r += "[" + x + "]";
    return r;
  };
  add("share", c.share); add("host", c.host); add("group", c.group); add("class", c.cls);
  for (const auto& [k, v] : c.traits) add("trait." + k, v);
  add("checks_dir", c.checks_dir); add("poll", std::to_string(c.poll_interval_ms));
  add("heartbeat", std::to_string(c.heartbeat_interval_ms)); add("timeout", std::to_string(c.share_timeout_ms));
  add("state_dir", c.state_dir); add("verify", std::to_string(c.verify_before_start));
  add("allow_unsigned", std::to_string(c.trust.allow_unsigned)); add("keys", list(c.trusted_key_paths));
  for (const auto& r : c.trust.revoked) add("revoked", r);
  const auto& a = c.agent;
  add("command", list(a.command)); add("config", a.config); add("stop_signal", std::to_string(a.stop_signal));
  add("stop_timeout", std::to_string(a.stop_timeout_ms)); add("start", list(a.start_command));
  add("stop", list(a.stop_command)); add("status", list(a.status_command));
  add("restart_limit", std::to_string(a.restart_limit)); add("restart_window", std::to_string(a.restart_window_ms));
  add("reconfig_timeout", std::to_string(a.reconfig_timeout_ms)); add("grace", std::to_string(a.start_grace_ms));
  add("acting_signal", std::to_string(a.acting_signal)); add("drain_signal", std::to_string(a.drain_signal));
  add("drain", list(a.drain_command)); add("drain_timeout", std::to_string(a.drain_timeout_ms));
  add("health", list(a.health_command)); add("health_timeout", std::to_string(a.health_timeout_ms));
  return o;
}

inline bool check_config(std::string_view text) {
  check_yaml_subset(text);
  // The parser loads trusted_keys/revoked_keys files named in the config; keep the fuzzer
  // away from device files that would block (it has no business reading them anyway).
  for (const char* dev : {"/dev/", "/proc/", "/sys/", "/fd/"})
    if (text.find(dev) != std::string_view::npos) {
      last_error = "skipped: names a file under /dev, /proc or /sys";
      return false;
    }
  auto c = nfsup::parse_watchdog_config(text, "fuzz/watchdog.yaml");
  {
    // The subset reader changes nothing: yaml-cpp alone gives the same config or error.
    auto slow = nfsup::parse_watchdog_config_with_yaml_cpp(text, "fuzz/watchdog.yaml");
    FUZZ_CHECK(bool(c) == bool(slow));
    if (c && slow) FUZZ_CHECK(dump_config(*c) == dump_config(*slow));
    if (!c && !slow) FUZZ_CHECK(c.error().msg == slow.error().msg);
  }
  if (!c) {
    last_error = c.error().msg;
    FUZZ_CHECK(c.error().code == nfsup::Exit::Usage);
    FUZZ_CHECK(!c.error().msg.empty());
    return false;
  }
  FUZZ_CHECK(!c->share.empty() && c->share[0] == '/');
  FUZZ_CHECK(c->share == "/" || c->share.back() != '/');
  FUZZ_CHECK(!nfsup::check_host_name(c->host).has_value());
  FUZZ_CHECK(!c->state_dir.empty() && c->state_dir[0] == '/');
  FUZZ_CHECK(!nfsup::starts_with(c->state_dir + "/", c->share + "/"));
  FUZZ_CHECK(c->poll_interval_ms >= 50);
  FUZZ_CHECK(c->share_timeout_ms >= 100);
  FUZZ_CHECK(c->heartbeat_interval_ms >= c->poll_interval_ms);
  FUZZ_CHECK(!c->agent.command.empty());
  FUZZ_CHECK(!nfsup::check_rel_path(c->agent.command[0]).has_value());
  FUZZ_CHECK(c->agent.config.empty() || c->agent.config[0] == '/');
  FUZZ_CHECK(c->agent.stop_signal > 0 && c->agent.stop_signal < 65);
  FUZZ_CHECK(c->agent.start_command.empty() == c->agent.stop_command.empty());
  FUZZ_CHECK(c->agent.restart_limit >= 0);
  (void)nfsup::signal_name(c->agent.stop_signal);
  (void)nfsup::format_duration_ms(c->poll_interval_ms);
  return true;
}

}  // namespace nfsup_fuzz
