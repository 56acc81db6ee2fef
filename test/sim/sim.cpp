// nfsup-sim: the master's real switch code and N host machines in one process, over an
// in-memory share and a fake clock, under random schedules of faults.
//
// The master is the real code (rollback --to, abort, resume) driven through the clock seam
// (util.h: set_test_clock): each of its sleeps advances simulated time and runs the hosts
// meanwhile; its crash and stop points (fs.h: set_fault_hooks) end it (a master death) or run
// a second master in the middle of it. Each host is a model of the watchdog's loop built on
// the watchdog's pure parts: decide(), LeaseTracker, the lifecycle state machine
// (src/host/lifecycle.h) and the share codecs; each sees the share through its own cache that
// answers from a copy for up to `ttl` ms (NFS attribute and dentry caches) and fails for
// short windows (EIO). After every simulated step the invariants below are checked; the first
// violation ends the schedule and is printed with its seed (`nfsup-sim --seed N -v` replays it).
//
// Invariants:
//  generation   the pointer's generation never goes backwards, and one generation never names
//               two different releases (two masters, a master that re-read nothing);
//  one-release  no two hosts run agents of different releases at the same time (all-at-once);
//  votes        a veto the master counts was cast by that host for that very switch;
//  fence        a switch the master reports done has every live host on the pointer's acting
//               version;
//  liveness     every host runs an agent within lease + 2 polls (+ drain, stop and start
//               times) of any master's end (death, interrupt, return); an interrupted master
//               backs out, so hosts resume within 2 polls, without waiting for the lease;
//  acting       the pointer's acting version is never above a live host's release and some
//               host runs it: after every switch that returned, and after the `resume` (or
//               `abort`) an operator runs after a master that died or was interrupted.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fake_fs.h"
#include "fs.h"
#include "lifecycle.h"
#include "master.h"
#include "master/internal.h"
#include "master/progress.h"
#include "share.h"
#include "util.h"
#include "watchdog.h"

namespace sim {

using namespace nfsup;
using nfsup::test::FakeFs;

const std::string kRoot = "/share";
const std::vector<std::string> kReleases = {"1.0", "2.0", "3.0"};

struct MasterDied {};        // thrown out of a sleep or crash point: the master process is gone
struct Violation {
  std::string what;
};

class World;

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
    obs.pointer_read = true;
    obs.pointer = *pt;
    if (*pt) {
      seen_gen_ = std::max(seen_gen_, (*pt)->generation);
      // As the watchdog's apply_acting: every pointer read hands its acting version on.
      acting_ = (*pt)->acting.empty() ? (*pt)->release_for(name) : (*pt)->acting;
    }
    // The watchdog's replay rule: a marker not newer than the newest pointer seen stops nothing.
    if (*mk && (*mk)->generation > seen_gen_) {
      obs.marker = *mk;
      obs.marker_lapsed = lease_.update(**mk, now_);
      lease_ms_ = (*mk)->lease_ms;
    }
    return obs;
  }

  void act(const Decision& d, const Observation& obs) {
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
    s.trust = "unsigned";
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

class World {
 public:
  explicit World(uint64_t seed, bool verbose) : rng_(seed), verbose_(verbose) {}
  /// Scale knobs for benchmarks (scripts/bench.sh); 0 / false keep the random schedule. They are
  /// applied after the random draws they replace, so a seed's other choices stay the same.
  int fixed_hosts = 0;     ///< this many hosts instead of 2..5
  int fixed_switches = 0;  ///< this many switches instead of 2..4
  bool calm = false;  ///< a clean push to the next release: no crash, interrupt, second master, veto, bad
                      ///< release or EIO (the checks still run)
  int64_t now = 1'000'000;
  FakeFs srv;
  std::vector<std::unique_ptr<Host>> hosts;
  size_t steps = 0;
  int resumed_after_switch = 0;  ///< dead masters whose switch `resume` finished (see after_master)

  void run() {
    srv.set_now_ms(now);
    srv.add_dir(kRoot);
    Share share(srv, kRoot);
    must(share.init(), "init");
    for (const auto& v : kReleases) {
      Manifest m;
      m.version = v;
      m.entries = {{ManifestEntry::Dir, "bin", 0755, 0, "", ""}};
      srv.add_file(share.manifest_path(v), pack_manifest(m));
      srv.add_dir(share.release_dir(v) + "/bin");
    }
    Pointer p0;
    p0.generation = 1;
    p0.release = kReleases[0];
    p0.acting = kReleases[0];
    srv.add_file(share.pointer_path(), pack_pointer(p0));
    see_pointer();
    int n = pick(2, 5);
    if (fixed_hosts > 0) n = fixed_hosts;
    bool checks = pick(0, 2) != 0;  // with no host voting, markers skip the vote phase
    // Sometimes the newest release's agent will not start on some hosts (or on all).
    bool bad = pick(0, 3) == 0;
    bool bad_everywhere = bad && pick(0, 1) == 0;
    for (int i = 0; i < n; ++i) {
      HostParams hp;
      hp.poll_ms = pick(200, 700);
      hp.heartbeat_ms = pick(500, 1500);
      hp.ttl_ms = pick(0, 3) == 0 ? 0 : pick(0, 1200);
      hp.drain_ms = pick(0, 2) == 0 ? 0 : pick(0, 1500);
      hp.stop_ms = pick(0, 800);
      hp.checks = checks;
      if (bad && (bad_everywhere || pick(0, 1) == 0)) hp.bad = kReleases.back();
      hp.veto = checks && pick(0, 3) == 0 ? 0.4 : 0;
      hp.eio = pick(0, 3) == 0 ? 0.03 : 0;
      if (calm) hp.bad.clear(), hp.veto = 0, hp.eio = 0;
      auto h = std::make_unique<Host>(fmt::format("h{}", i + 1), srv, now, hp, rng_);
      h->next_poll = now + pick(0, static_cast<int>(hp.poll_ms));
      h->boot(kReleases[0]);
      hosts.push_back(std::move(h));
    }
    max_poll_ = 0;
    max_stop_ = 0;
    for (auto& h : hosts) {
      max_poll_ = std::max(max_poll_, h->p.poll_ms + h->p.ttl_ms);
      max_stop_ = std::max(max_stop_, h->p.drain_ms + h->p.stop_ms);
    }
    advance(3000);
    int k = pick(2, 4);
    if (fixed_switches > 0) k = fixed_switches;
    for (int i = 0; i < k; ++i) one_switch(share);
  }

  // ---- the clock seam and fault hooks (called from inside the master code)
  static int64_t clock_now(void* w) { return static_cast<World*>(w)->now; }
  static void clock_sleep(void* w, int64_t ms) { static_cast<World*>(w)->master_sleep(ms); }
  static void crash_hook(void* w, const char* point) { static_cast<World*>(w)->at_crash_point(point); }
  static void stop_hook(void* w, const char* point) { static_cast<World*>(w)->at_stop_point(point); }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(double p) { return std::uniform_real_distribution<>(0, 1)(rng_) < p; }
  void must(const Status& s, const char* what) {
    if (!s) throw Violation{fmt::format("setup {}: {}", what, s.error().msg)};
  }
  void log(const std::string& s) {
    if (verbose_) std::printf("%8lld %s\n", static_cast<long long>(now - 1'000'000), s.c_str());
  }

  MasterOptions options() {
    MasterOptions o;
    o.lease_ms = lease_ms_;
    o.stale_after_ms = 9000;
    o.timeout_ms = 30000;
    o.poll_ms = 250;
    o.vote_timeout_ms = 5000;
    o.interrupt = &interrupt_;
    if (verbose_) o.note = [this](const std::string& s) { log("  master: " + s); };
    return o;
  }

  void one_switch(Share& share) {
    Pointer before = current();
    std::string target = kReleases[pick(0, static_cast<int>(kReleases.size()) - 1)];
    std::string action = pick(0, 1) ? "push" : "rollback";
    crash_at_ = chance(0.25) ? pick(1, 40) : -1;
    crash_point_ = chance(0.15) ? pick(0, 3) : -1;
    interrupt_at_ = crash_at_ < 0 && chance(0.15) ? pick(1, 40) : -1;
    race_ = chance(0.15);
    if (calm) {  // a clean push to the next release: something to switch, nothing in the way
      crash_at_ = crash_point_ = interrupt_at_ = -1, race_ = false;
      auto at = std::find(kReleases.begin(), kReleases.end(), before.release);
      target = at == kReleases.end() || at + 1 == kReleases.end() ? kReleases.front() : *(at + 1);
      action = "push";
    }
    sleeps_ = 0;
    interrupt_ = 0;
    nonce_.clear();
    log(fmt::format("{} to {} (crash at sleep {}, crash point {}, interrupt at {}, race {})", action, target, crash_at_,
                    crash_point_, interrupt_at_, race_));
    bool died = false;
    Result<SwitchReport> r = err(Exit::Internal, "not run");
    in_master_ = true;
    try {
      r = switch_to(share, target, action);
    } catch (const MasterDied&) {
      died = true;
      log("master died");
    }
    in_master_ = false;
    if (!died) check_outcome(r, target, action);
    bool interrupted = interrupt_ != 0 && !died;
    crash_at_ = crash_point_ = interrupt_at_ = -1;
    race_ = false;
    // Liveness: every host runs an agent in time, without any other master.
    int64_t limit = (interrupted ? 0 : lease_ms_) + 2 * max_poll_ + max_stop_ + 2000;
    int64_t deadline = now + limit;
    while (now < deadline && !all_up()) advance(100);
    for (auto& h : hosts)
      if (!h->agent_up)
        throw Violation{fmt::format("liveness: {} has no agent {} ms after the master {}", h->name, limit,
                                    died ? "died" : interrupted ? "was interrupted" : "returned")};
    // A master that died or was interrupted leaves its rollout to the operator. After the
    // pointer moved, what they run is `resume`: it applies the failure policy the master did
    // not (undo, or host lines) and fences the acting version; before, `abort` or `resume`
    // (which then backs out as abort does). Either way the acting version is checked after.
    if (!died && !interrupted) check_acting();
    if (died || interrupted) after_master(share, current().generation > before.generation);
    advance(pick(0, 2000));
  }

  // What an operator runs after a dead or interrupted master, then the checks of a normal end.
  void after_master(Share& share, bool switched) {
    const bool resume = switched || steps % 2 == 0;  // (not from rng_: the schedules of old seeds stay the same)
    if (switched) ++resumed_after_switch;
    interrupt_ = 0;
    in_master_ = true;
    MasterOptions ao = options();
    ao.force = true;  // the dead master had this process's pid: it would be taken for alive
    std::string what = resume ? "resume" : "abort";
    Status done = ok_status();
    if (resume) {
      auto r = resume_rollout(share, ao, false);
      if (!r) done = r.error();
      else log(fmt::format("resume: {}", r->outcome));
    } else if (auto a = abort_push(share, ao); !a) {
      done = a.error();
    }
    in_master_ = false;
    if (!done) throw Violation{fmt::format("{} after a dead master: {}", what, done.error().msg)};
    if (srv.content(kRoot + "/MARKER")) throw Violation{what + " after a dead master left the marker"};
    int64_t deadline = now + 2 * max_poll_ + max_stop_ + 2000;
    while (now < deadline && !all_up()) advance(100);
    for (auto& h : hosts)
      if (!h->agent_up) throw Violation{fmt::format("liveness: {} has no agent after {}", h->name, what)};
    check_acting();
  }

  // The master's all-at-once switch as push and rollback run it, on a release already staged.
  Result<SwitchReport> switch_to(Share& share, const std::string& target, const std::string& action) {
    if (auto s = share.check(); !s) return s.error();
    return run_switch(share, target, action, options(), SwitchReport{});
  }

  void check_outcome(const Result<SwitchReport>& r, const std::string& target, const std::string& action) {
    if (!r) {
      log("master: " + r.error().msg);
      if (r.error().code == Exit::Vetoed) check_vetoes(r.error().msg);
      return;
    }
    if (r->nothing_to_do) return;
    Pointer p = current();
    bool none_ok = !r->hosts.empty();
    std::set<std::string> gone;
    for (const auto& o : r->hosts) {
      none_ok = none_ok && o.outcome != "ok";
      if (o.outcome == "lost" || o.outcome == "stale") gone.insert(o.host);
    }
    // Promise 10: a switch that failed on every host is not done: the pointer does not claim it.
    if (action == "push" && none_ok && p.release == target && r->previous != target)
      throw Violation{fmt::format("failed switch: no host started {}, yet the pointer names it (acting '{}')", target,
                                  p.acting)};
    Share share(srv, kRoot);
    for (auto& h : hosts) {
      if (gone.count(h->name)) continue;
      auto s = share.read_status(h->name);
      if (s && *s && (*s)->acting != p.acting)
        throw Violation{fmt::format("fence: the switch to {} returned done while {} reports acting '{}', not '{}'",
                                    target, h->name, (*s)->acting, p.acting)};
    }
  }

  // Every host the master says vetoed must have vetoed this very switch.
  void check_vetoes(const std::string& msg) {
    for (const auto& line : split(msg, '\n')) {
      auto l = line;
      while (!l.empty() && l[0] == ' ') l.erase(0, 1);
      auto colon = l.find(':');
      if (colon == std::string::npos || l.find("did not vote") != std::string::npos) continue;
      std::string name = l.substr(0, colon);
      for (auto& h : hosts)
        if (h->name == name) {
          auto it = h->votes.find(nonce_);
          if (it == h->votes.end() || it->second)
            throw Violation{fmt::format("votes: the master counted a veto from {} that it did not cast for this "
                                        "switch (nonce {})",
                                        name, nonce_)};
        }
    }
  }

  // The acting version is never above a live host's release, and some live host runs it.
  void check_acting() {
    Pointer p = current();
    if (p.acting.empty()) return;
    bool someone = false;
    for (auto& h : hosts) {
      if (!h->agent_up) continue;
      someone = someone || h->running == p.acting;
      if (compare_versions(p.acting, h->running) > 0)
        throw Violation{fmt::format("acting: the pointer's acting version {} is above {}'s release {}", p.acting,
                                    h->name, h->running)};
    }
    if (!someone) throw Violation{fmt::format("acting: no host runs the acting version {}", p.acting)};
  }

  bool all_up() const {
    for (auto& h : hosts)
      if (!h->agent_up) return false;
    return true;
  }

  Pointer current() {
    auto t = srv.content(kRoot + "/current");
    if (!t) return {};
    auto p = unpack_pointer(*t, "current");
    if (!p) throw Violation{"current unreadable: " + p.error().msg};
    return *p;
  }

  void see_pointer() {
    Pointer p = current();
    if (p.generation < last_gen_)
      throw Violation{fmt::format("generation: the pointer went back from {} to {}", last_gen_, p.generation)};
    auto [it, fresh] = gen_release_.emplace(p.generation, p.release);
    if (!fresh && it->second != p.release)
      throw Violation{fmt::format("generation: generation {} named {} and then {}", p.generation, it->second,
                                  p.release)};
    last_gen_ = p.generation;
  }

  void check_invariants() {
    see_pointer();
    std::set<std::string> up;
    for (auto& h : hosts)
      if (h->agent_up && !h->failed_gen) up.insert(h->running);
    if (up.size() > 1)
      throw Violation{fmt::format("one-release: agents of {} run at once", join({up.begin(), up.end()}, " and "))};
  }

  // Runs every host event due up to now + ms, in time order.
  void advance(int64_t ms) {
    int64_t end = now + ms;
    while (true) {
      int64_t next = end;
      for (auto& h : hosts) next = std::min(next, h->next_poll);
      now = std::max(now, next);
      srv.set_now_ms(now);
      for (auto& h : hosts) h->tick();
      for (auto& h : hosts)
        if (h->next_poll <= now) h->poll();
      ++steps;
      check_invariants();
      if (next >= end) break;
    }
    srv.clear_calls();
  }

  void master_sleep(int64_t ms) {
    ++sleeps_;
    if (in_master_ && crash_at_ > 0 && sleeps_ == crash_at_) throw MasterDied{};
    if (in_master_ && interrupt_at_ > 0 && sleeps_ == interrupt_at_) {
      interrupt_ = SIGINT;
      interrupted_at_ = now;
    }
    if (in_master_ && interrupt_ && now - interrupted_at_ > 2000)
      throw Violation{fmt::format("interrupt: the master still waits {} ms after SIGINT instead of backing out",
                                  now - interrupted_at_)};
    advance(std::max<int64_t>(ms, 1));
  }

  void at_crash_point(const char* point) {
    if (in_master_ && std::strcmp(point, "switch-after-marker") == 0)
      if (auto t = srv.content(kRoot + "/MARKER"))
        if (auto m = unpack_marker(*t, "MARKER")) nonce_ = m->nonce;
    static const char* const kPoints[] = {"switch-after-marker", "switch-after-stopped", "switch-after-pointer",
                                          "switch-after-unmark"};
    if (in_master_ && crash_point_ >= 0 && std::strcmp(point, kPoints[crash_point_]) == 0) {
      log(fmt::format("crash point {}", point));
      throw MasterDied{};
    }
  }

  // A second master runs a whole switch while the first one stands just before taking the marker.
  void at_stop_point(const char* point) {
    if (!race_ || std::strcmp(point, "switch-before-marker") != 0) return;
    race_ = false;
    std::string other = kReleases[pick(0, static_cast<int>(kReleases.size()) - 1)];
    log(fmt::format("a second master switches to {} meanwhile", other));
    auto saved = std::make_tuple(crash_at_, crash_point_, interrupt_at_, sleeps_, nonce_);
    crash_at_ = crash_point_ = interrupt_at_ = -1;
    nonce_.clear();
    Share share(srv, kRoot);
    std::string action = pick(0, 1) ? "push" : "rollback";
    auto r = switch_to(share, other, action);
    if (r) check_outcome(r, other, action);
    else if (r.error().code == Exit::Vetoed) check_vetoes(r.error().msg);
    std::tie(crash_at_, crash_point_, interrupt_at_, sleeps_, nonce_) = saved;
    nonce_.clear();
  }

  std::mt19937_64 rng_;
  bool verbose_;
  int64_t lease_ms_ = 6000, max_poll_ = 0, max_stop_ = 0, last_gen_ = 0;
  std::map<int64_t, std::string> gen_release_;
  int crash_at_ = -1, crash_point_ = -1, interrupt_at_ = -1, sleeps_ = 0;
  int64_t interrupted_at_ = 0;
  bool race_ = false, in_master_ = false;
  std::atomic<int> interrupt_{0};
  std::string nonce_;
};

}  // namespace sim

int main(int argc, char** argv) {
  uint64_t first = 1, count = 1000;
  bool verbose = false, single = false, calm = false;
  int hosts = 0, switches = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) first = std::stoull(argv[++i]), count = 1, single = true;
    else if (a == "--first" && i + 1 < argc) first = std::stoull(argv[++i]);
    else if (a == "--schedules" && i + 1 < argc) count = std::stoull(argv[++i]);
    else if (a == "-v") verbose = true;
    else if (a == "--hosts" && i + 1 < argc) hosts = std::stoi(argv[++i]);
    else if (a == "--switches" && i + 1 < argc) switches = std::stoi(argv[++i]);
    else if (a == "--calm") calm = true;
    else {
      std::fprintf(stderr,
                   "usage: nfsup-sim [--first N] [--schedules N] [--seed N [-v]] [--hosts N] [--switches N] [--calm]\n"
                   "  --hosts N: N hosts per schedule (default 2..5); --switches N: N switches (default 2..4);\n"
                   "  --calm: each switch a clean push to the next release: no master crash, interrupt, second\n"
                   "          master, veto, failing release or EIO (for timing; every check still runs)\n");
      return 2;
    }
  }
  size_t steps = 0, failed = 0, gaps = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    sim::World w(seed, verbose);
    w.fixed_hosts = hosts;
    w.fixed_switches = switches;
    w.calm = calm;
    nfsup::set_test_clock({&sim::World::clock_now, &sim::World::clock_sleep, &w});
    nfsup::set_fault_hooks({&sim::World::crash_hook, &sim::World::stop_hook, &w});
    try {
      w.run();
    } catch (const sim::Violation& v) {
      ++failed;
      std::printf("seed %llu: VIOLATED %s (replay: nfsup-sim --seed %llu -v)\n", static_cast<unsigned long long>(seed),
                  v.what.c_str(), static_cast<unsigned long long>(seed));
      if (single || failed >= 5) break;
    }
    steps += w.steps;
    gaps += w.resumed_after_switch;
  }
  std::printf("%llu schedules, %zu steps, %zu violated\n", static_cast<unsigned long long>(count), steps, failed);
  std::printf("%zu dead or interrupted masters' switches finished by resume (checked)\n", gaps);
  return failed ? 1 : 0;
}
