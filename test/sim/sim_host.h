// nfsup-sim: the modelled hosts (see sim.cpp): each host's view of the share through a cache
// that lies for a while and fails for short windows, and the watchdog's loop built on its pure
// parts (decide, LeaseTracker, host::step) and the share codecs.
#pragma once

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fake_fs.h"
#include "fs.h"
#include "lifecycle.h"
#include "master.h"
#include "share.h"
#include "trust.h"
#include "util.h"
#include "watchdog.h"

namespace sim {

using namespace nfsup;
using nfsup::test::FakeFs;

inline std::string kRoot = "/share";  ///< (--mode migrate: a temp dir that also holds the hooks' bytes)
inline const std::vector<std::string> kReleases = {"1.0", "2.0", "3.0"};

enum class Mode { AllAtOnce, Rolling, Migrate, Signed };

// --mode signed: the master's key, and the hosts' policy trusting only its public half.
inline SecretKey g_key;
inline TrustPolicy g_trust;

struct MasterDied {};        // thrown out of a sleep or crash point: the master process is gone
struct Violation {
  std::string what;
};

// A host's view of the share: the server's files through a cache that may answer from an
// older copy for up to ttl_ms, and that fails every call during a fault window.
class HostFs : public FileSystem {
 public:
  HostFs(FakeFs& srv, const int64_t& now, int64_t ttl_ms, std::mt19937_64& rng)
      : srv_(srv), now_(now), ttl_ms_(ttl_ms), rng_(rng) {}
  int64_t fail_until = 0;

  Result<std::optional<std::string>> read_file(const std::string& path, size_t max) override {
    if (auto e = fault("read_file", path)) return *e;
    auto it = cache_.find(path);
    if (it != cache_.end() && now_ < it->second.first) return it->second.second;
    auto r = srv_.read_file(path, max);
    // Each cached copy lives for its own random time up to ttl, as attribute and dentry caches
    // of different files expire independently: the marker's absence can be fresh while the
    // pointer read with it is old.
    if (r) cache_[path] = {now_ + (ttl_ms_ ? std::uniform_int_distribution<int64_t>(0, ttl_ms_)(rng_) : 0), *r};
    return r;
  }
  Status write_atomic(const std::string& path, std::string_view data, uint32_t mode) override {
    if (auto e = fault("write_atomic", path)) return *e;
    cache_.erase(path);
    return srv_.write_atomic(path, data, mode);
  }
  Result<bool> publish_new(const std::string& path, std::string_view data, uint32_t mode) override {
    if (auto e = fault("publish_new", path)) return *e;
    cache_.erase(path);
    return srv_.publish_new(path, data, mode);
  }
  Result<std::optional<FileInfo>> stat(const std::string& path) override {
    if (auto e = fault("stat", path)) return *e;
    return srv_.stat(path);
  }
  Result<std::vector<DirEntry>> list_dir(const std::string& path) override {
    if (auto e = fault("list_dir", path)) return *e;
    return srv_.list_dir(path);
  }
  Status mkdir(const std::string& path, uint32_t mode) override {
    if (auto e = fault("mkdir", path)) return *e;
    return srv_.mkdir(path, mode);
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (auto e = fault("rename", from)) return *e;
    cache_.erase(to);
    return srv_.rename(from, to);
  }
  Result<bool> unlink(const std::string& path) override {
    if (auto e = fault("unlink", path)) return *e;
    cache_.erase(path);
    return srv_.unlink(path);
  }
  Status rmdir(const std::string& path) override {
    if (auto e = fault("rmdir", path)) return *e;
    return srv_.rmdir(path);
  }
  Result<std::optional<std::string>> probe(const std::string& dir, const std::string& name, size_t max) override {
    return read_file(path_join(dir, name), max);
  }

 private:
  std::optional<Error> fault(const char* op, const std::string& path) const {
    if (now_ < fail_until) return Error{Exit::Share, fmt::format("{}({}): Input/output error", op, path)};
    return std::nullopt;
  }
  FakeFs& srv_;
  const int64_t& now_;
  int64_t ttl_ms_;
  std::mt19937_64& rng_;
  std::map<std::string, std::pair<int64_t, std::optional<std::string>>> cache_;  ///< path -> (expiry, copy)
};

struct HostParams {
  int64_t poll_ms = 500, heartbeat_ms = 1000, ttl_ms = 0, drain_ms = 0, stop_ms = 0;
  double veto = 0;      ///< chance to veto a switch it is asked about
  double eio = 0;       ///< chance per poll that the share fails for a while
  bool checks = true;   ///< votes with local checks (a marker then starts in its vote phase)
  std::string bad;      ///< a release whose agent dies during its start grace here ("" none)
};

// One host: the watchdog's decisions (decide) and lifecycle (host::step) over its own view.
class Host {
 public:
  Host(std::string name, FakeFs& srv, const int64_t& now, HostParams p, std::mt19937_64& rng)
      : name(std::move(name)), p(p), fs_(srv, now, p.ttl_ms, rng), share_(fs_, kRoot), now_(now), rng_(rng) {
    to_.drain = p.drain_ms > 0;
    to_.drain_ms = 4000;
    to_.stop_ms = 4000;
    to_.grace_ms = 300;
  }
  std::string name;
  HostParams p;
  std::string running;
  bool agent_up = false;
  int64_t next_poll = 0, next_heartbeat = 0;
  std::map<std::string, bool> votes;  ///< marker nonce -> accept, as cast
  int64_t failed_gen = 0;             ///< pointer generation whose switch failed here
  bool signed_mode = false;           ///< trusts only g_trust (signed markers and pointers)
  std::set<std::string> obeyed;       ///< nonces of markers this host stopped or voted for
  int64_t seen_gen() const { return seen_gen_; }

  void boot(const std::string& release) {
    running = release;
    agent_up = true;
    state_ = "running";
    write_status();
  }

  void poll() {
    if (std::uniform_real_distribution<>(0, 1)(rng_) < p.eio)
      fs_.fail_until = now_ + std::uniform_int_distribution<int64_t>(100, 800)(rng_);
    tick();
    Observation obs = observe();
    LocalView lv;
    lv.host = name;
    lv.running = running;
    lv.agent_up = agent_up;
    lv.held_gen = held_gen_;
    lv.held_wait_ms = wait_since_ ? now_ - wait_since_ : 0;
    lv.lease_ms = obs.marker ? obs.marker->lease_ms : lease_ms_;
    lv.failed_gen = failed_gen;
    Decision d = decide(obs, lv);
    act(d, obs);
    drive();
    if (now_ >= next_heartbeat || state_ != written_state_) write_status();
    next_poll = now_ + p.poll_ms;
  }

  /// The agent's process ends when its drain or stop signal has had its effect.
  void tick() {
    if (exit_at_ >= 0 && now_ >= exit_at_) {
      agent_up = false;
      exit_at_ = -1;
    }
  }

 private:
  Observation observe() {
    Observation obs;
    auto mk = share_.read_marker();
    auto pt = share_.read_pointer();
    if (!mk || !pt) {
      obs.share_ok = false;
      obs.share_error = !mk ? mk.error().msg : pt.error().msg;
      return obs;
    }
    // As the watchdog's read_pointer: a signed host refuses a pointer older than the newest
    // trusted one it saw, and remembers only trusted pointers' generations.
    if (*pt && signed_mode && (*pt)->generation < seen_gen_) {
      obs.share_ok = false;
      obs.share_error = "a replayed pointer";
      return obs;
    }
    obs.pointer_read = true;
    obs.pointer = *pt;
    if (*pt) {
      if (!signed_mode || pointer_signed_by_trusted(**pt, g_trust)) seen_gen_ = std::max(seen_gen_, (*pt)->generation);
      // As the watchdog's apply_acting: every pointer read hands its acting version on.
      acting_ = (*pt)->acting.empty() ? (*pt)->release_for(name) : (*pt)->acting;
    }
    // The watchdog's replay rule: a marker not newer than the newest pointer seen stops nothing.
    // A signed host ignores a marker no trusted key signed (marker_is_trusted).
    if (*mk && (*mk)->generation > seen_gen_ && (!signed_mode || marker_trust_problem(**mk, g_trust).empty())) {
      obs.marker = *mk;
      obs.marker_lapsed = lease_.update(**mk, now_);
      lease_ms_ = (*mk)->lease_ms;
    }
    return obs;
  }

  void act(const Decision& d, const Observation& obs) {
    if (obs.marker && (d.kind == Decision::Vote || d.kind == Decision::Hold || d.kind == Decision::WaitPointer ||
                       d.kind == Decision::Switch))
      obeyed.insert(obs.marker->nonce);
    switch (d.kind) {
      case Decision::Vote: {
        if (!votes.count(d.nonce)) votes[d.nonce] = std::uniform_real_distribution<>(0, 1)(rng_) >= p.veto;
        Vote v;
        v.host = name;
        v.generation = d.generation;
        v.nonce = d.nonce;
        v.target = d.to;
        v.accept = votes[d.nonce];
        v.reason = v.accept ? "" : "local check failed";
        (void)share_.write_vote(v);  // a failed write is a missing vote: the master times it out
        want_stop_ = false;
        break;
      }
      case Decision::Hold:
        want_stop_ = true;
        if (held_gen_ != d.generation) held_gen_ = d.generation;
        wait_since_ = 0;
        break;
      case Decision::WaitPointer:
        want_stop_ = true;
        if (!wait_since_) wait_since_ = now_;
        break;
      case Decision::Switch:
        want_stop_ = true;
        pending_ = d.to;
        pending_gen_ = d.generation;
        wait_since_ = 0;
        break;
      case Decision::Start:
        want_stop_ = false;
        wait_since_ = 0;
        if (!agent_up && lc_.phase == host::Phase::Steady) start(d.to, d.generation);
        break;
      case Decision::Keep:
        if (obs.share_ok) {
          want_stop_ = false;
          wait_since_ = 0;
          if (obs.pointer) gen_ = obs.pointer->generation;
          // Back on what the pointer names for it (an undone switch, a host line): running again.
          if (obs.pointer && agent_up && lc_.phase == host::Phase::Steady &&
              running == obs.pointer->release_for(name))
            state_ = "running";
        }
        break;
      case Decision::Idle:
      case Decision::NeedPointer:
        break;
    }
  }

  void start(const std::string& release, int64_t gen) {
    if (release != running) previous_ = running;
    running = release;
    agent_up = true;
    gen_ = gen;
    // An agent that will not start exits within its start grace.
    if (release == p.bad) exit_at_ = now_ + std::uniform_int_distribution<int64_t>(0, to_.grace_ms - 1)(rng_);
    lc_ = host::step(lc_, host::Event::Started, true, now_, to_).next;
    state_ = "starting";
  }

  void drive() {
    bool stop = want_stop_ && (agent_up || host::stopping(lc_.phase));
    auto s = host::step(lc_, stop ? host::Event::StopWanted : host::Event::Poll, agent_up, now_, to_);
    lc_ = s.next;
    switch (s.effect) {
      case host::Effect::Drain:
        exit_at_ = now_ + p.drain_ms;
        state_ = "stopping";
        break;
      case host::Effect::Stop:
        exit_at_ = exit_at_ >= 0 ? std::min(exit_at_, now_ + p.stop_ms) : now_ + p.stop_ms;
        state_ = "stopping";
        break;
      case host::Effect::Kill:
        agent_up = false;
        exit_at_ = -1;
        break;
      case host::Effect::Stopped:
        state_ = "stopped";
        gen_ = std::max(held_gen_, pending_gen_);
        break;
      case host::Effect::Settled:
        state_ = failed_gen && failed_gen == gen_ ? "failed" : "running";
        break;
      case host::Effect::DiedStarting:
        // The watchdog's promise 9: back to the previous release, agent running, report failed.
        failed_gen = gen_;
        exit_at_ = -1;
        if (!previous_.empty()) {
          std::string back = previous_;
          start(back, gen_);
          previous_.clear();
        }
        state_ = "failed";
        break;
      case host::Effect::None:
        break;
    }
    if (agent_up || lc_.phase != host::Phase::Steady) return;
    if (!pending_.empty()) {
      // Down with a switch to make: start the new release (the watchdog verifies it first).
      std::string to = pending_;
      pending_.clear();
      want_stop_ = false;
      start(to, pending_gen_);
    } else if (want_stop_) {
      state_ = "stopped";
      gen_ = std::max(gen_, held_gen_);
    }
  }

  void write_status() {
    HostStatus s;
    s.host = name;
    s.state = state_;
    s.running = running;
    s.generation = state_ == "stopped" ? std::max(gen_, held_gen_) : gen_;
    s.heartbeat = ++heartbeat_;
    s.mode = "daemon";
    s.trust = signed_mode ? "signed" : "unsigned";
    if (signed_mode) s.keys = trusted_key_ids(g_trust);
    s.checks = p.checks ? "yes" : "no";
    s.poll_ms = p.poll_ms;
    s.acting = acting_;
    if (share_.write_status(s)) written_state_ = state_;
    next_heartbeat = now_ + p.heartbeat_ms;
  }

  HostFs fs_;
  Share share_;
  const int64_t& now_;
  std::mt19937_64& rng_;
  host::Model lc_;
  host::Timeouts to_;
  LeaseTracker lease_;
  int64_t lease_ms_ = 30000;
  std::string state_ = "running", written_state_;
  bool want_stop_ = false;
  std::string pending_;
  int64_t pending_gen_ = 0, held_gen_ = 0, wait_since_ = 0, seen_gen_ = 0, gen_ = 0, heartbeat_ = 0, exit_at_ = -1;
  std::string acting_, previous_;
};

}  // namespace sim
