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
//               `abort`) an operator runs after a master that died or was interrupted;
//  migration    (--mode migrate) while a release's migration hook runs, no host runs an agent
//               (promise 8: the master renews its lease through the hook, however long);
//  signed       (--mode signed) no host obeys (votes or stops for) an unsigned marker, and no
//               host remembers the generation of an unsigned pointer (promises 2 and 3).
//
// Modes (--mode): all-at-once (push and rollback, the default); rolling (pushes batch by batch,
// --batch 1 or 50%, sometimes --hold-acting; no one-release invariant, since mixed releases are
// the point); migrate (all-at-once, every release has a migration hook that runs for up to three
// leases in simulated time, through MasterOptions::hook_runner); signed (the master signs with
// a key the hosts trust, and before a switch someone without the key sometimes writes an
// unsigned marker or an unsigned pointer with a huge generation; the hosts follow the
// watchdog's trust rules through trust.h). The hosts are in sim_host.h.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

#include "sim_host.h"
#include "fake_fs.h"
#include "hash.h"
#include "os/clock.h"
#include "os/procs.h"
#include "fs.h"
#include "lifecycle.h"
#include "master.h"
#include "master/internal.h"
#include "master/progress.h"
#include "share.h"
#include "trust.h"
#include "util.h"
#include "watchdog.h"

namespace sim {

using namespace nfsup;
using nfsup::test::FakeFs;

class World {
 public:
  World(uint64_t seed, bool verbose, Mode mode) : rng_(seed), verbose_(verbose), mode_(mode), hook_(*this) {}
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
      if (mode_ == Mode::Migrate) {
        m.migrate = "bin/migrate";
        // The hook's bytes also on the real disk under kRoot (a temp dir in this mode):
        // verify_release hashes files there, outside the FileSystem seam.
        const std::string hook = "#!/bin/sh\n# migrates the data to " + v + "\n";
        m.entries.push_back({ManifestEntry::File, "bin/migrate", 0755, hook.size(), sha256_hex(hook), ""});
        srv.add_dir(share.release_dir(v) + "/bin");
        srv.add_file(share.release_dir(v) + "/bin/migrate", hook);
        std::filesystem::create_directories(share.release_dir(v) + "/bin");
        std::ofstream(share.release_dir(v) + "/bin/migrate", std::ios::trunc) << hook;
      }
      srv.add_file(share.manifest_path(v), pack_manifest(m));
      srv.add_dir(share.release_dir(v) + "/bin");
    }
    Pointer p0;
    p0.generation = 1;
    p0.release = kReleases[0];
    p0.acting = kReleases[0];
    if (mode_ == Mode::Signed)
      if (auto sig = sign_data(g_key, pointer_signing_text(p0)); sig) p0.sigs.push_back({g_key.id, *sig});
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
      h->signed_mode = mode_ == Mode::Signed;
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
    for (int i = 0; i < k; ++i) {
      if (mode_ == Mode::Signed && chance(0.5)) forge(share);
      one_switch(share);
    }
  }

  // --mode signed: someone who can write to the share but has no key writes an unsigned marker
  // with a newer generation (it must stop nobody: promise 3) or an unsigned pointer with a huge
  // generation naming the running release (no host may remember it: promise 2; the next signed
  // push must still go through). Then hosts poll for a while; the marker is cleaned up after.
  void forge(Share& share) {
    Pointer p = current();
    const int64_t trusted = p.generation;
    if (chance(0.5)) {
      Marker m;
      m.generation = p.generation + pick(1, 5);
      m.action = "push";
      m.release = kReleases[pick(0, static_cast<int>(kReleases.size()) - 1)];
      m.previous = p.release;
      m.master_host = "intruder";
      m.master_pid = 1;
      m.nonce = fmt::format("forged{:010}", pick(0, 1'000'000'000));
      m.lease_ms = lease_ms_;
      m.phase = pick(0, 1) ? "vote" : "stop";
      log(fmt::format("an unsigned marker appears: {} to {} (generation {})", m.action, m.release, m.generation));
      srv.add_file(share.marker_path(), pack_marker(m));
      advance(pick(1000, 4000));
      for (auto& h : hosts)
        if (h->obeyed.count(m.nonce))
          throw Violation{fmt::format("signed: {} obeyed the unsigned marker {} of {}", h->name, m.nonce, m.release)};
      (void)srv.unlink(share.marker_path());  // (the operator removes it; a missing file is fine)
    } else {
      p.generation += pick(100, 1'000'000);
      p.sigs.clear();
      p.updated_by = "intruder:1";
      log(fmt::format("an unsigned pointer appears: {} at generation {}", p.release, p.generation));
      srv.add_file(share.pointer_path(), pack_pointer(p));
      see_pointer();
      advance(pick(1000, 4000));
      for (auto& h : hosts)
        if (h->seen_gen() > trusted)
          throw Violation{fmt::format("signed: {} remembers generation {} of an unsigned pointer (trusted: {})",
                                      h->name, h->seen_gen(), trusted)};
    }
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
    o.migrate_timeout_ms = 5 * lease_ms_;
    if (mode_ == Mode::Migrate) o.hook_runner = &hook_;
    if (mode_ == Mode::Signed) o.sign_key = &g_key;
    if (verbose_) o.note = [this](const std::string& s) { log("  master: " + s); };
    return o;
  }

  void one_switch(Share& share) {
    Pointer before = current();
    std::string target = kReleases[pick(0, static_cast<int>(kReleases.size()) - 1)];
    std::string action = pick(0, 1) ? "push" : "rollback";
    rolling_ = mode_ == Mode::Rolling && action == "push";
    if (rolling_) {  // (no draw otherwise: the schedules of all-at-once seeds stay as they were)
      batch_ = pick(0, 1) ? "1" : "50%";
      hold_ = chance(0.2);
    }
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
    log(fmt::format("{}{} to {} (crash at sleep {}, crash point {}, interrupt at {}, race {})", action,
                    rolling_ ? fmt::format(" rolling --batch {}{}", batch_, hold_ ? " --hold-acting" : "") : "",
                    target, crash_at_, crash_point_, interrupt_at_, race_));
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
    if (rolling_) {
      MasterOptions o = options();
      o.strategy = "rolling";
      o.batch = batch_;
      o.hold_acting = hold_;
      // What push refuses before anything is written (check_push_flags), refused here too.
      if (auto p = share.read_pointer(); p && *p) {
        if (!(*p)->overrides.empty()) return err(Exit::Usage, "a rollout is unfinished (host lines)");
        if (compare_versions(target, (*p)->acting.empty() ? (*p)->release : (*p)->acting) < 0)
          return err(Exit::Usage, "a rolling push below the acting version");
      }
      return run_rolling(share, target, o, SwitchReport{});
    }
    return run_switch(share, target, action, options(), SwitchReport{});
  }

  // The migration hook, run by the master through MasterOptions::hook_runner: it lasts up to
  // three leases of simulated time (the master's keep_going renews the lease every 100 ms), and
  // sometimes fails. While it runs no host may run an agent.
  Result<RunResult> run_hook(const SpawnSpec& spec, const std::function<bool()>& keep_going) {
    const int64_t dur = pick(0, static_cast<int>(3 * lease_ms_));
    const bool fails = chance(0.1);
    log(fmt::format("migration hook {} runs for {} ms{}", spec.argv.empty() ? "?" : spec.argv[0], dur,
                    fails ? " and fails" : ""));
    RunResult r;
    for (int64_t t = 0; t < dur; t += 250) {  // (the real runner calls keep_going about every 100 ms)
      nfsup::sleep_ms(250);
      for (auto& h : hosts)
        if (h->agent_up)
          throw Violation{fmt::format("migration: {} runs an agent of {} while the migration hook runs ({} ms in)",
                                      h->name, h->running, t + 250)};
      if (keep_going && !keep_going()) {
        r.cancelled = true;
        return r;
      }
    }
    r.exit_code = fails ? 1 : 0;
    if (fails) r.output = "migration failed (simulated)";
    return r;
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
    // (--hold-acting keeps it below a release every host may run: held on purpose.)
    const bool held = p.overrides.empty() && compare_versions(p.acting, p.release) < 0;
    if (!someone && !held) throw Violation{fmt::format("acting: no host runs the acting version {}", p.acting)};
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
    if (up.size() > 1 && mode_ != Mode::Rolling)
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
    if (in_master_ && (std::strcmp(point, "switch-after-marker") == 0 || std::strcmp(point, "rolling-after-marker") == 0))
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
    auto saved = std::make_tuple(crash_at_, crash_point_, interrupt_at_, sleeps_, nonce_, rolling_);
    crash_at_ = crash_point_ = interrupt_at_ = -1;
    rolling_ = false;
    nonce_.clear();
    Share share(srv, kRoot);
    std::string action = pick(0, 1) ? "push" : "rollback";
    auto r = switch_to(share, other, action);
    if (r) check_outcome(r, other, action);
    else if (r.error().code == Exit::Vetoed) check_vetoes(r.error().msg);
    std::tie(crash_at_, crash_point_, interrupt_at_, sleeps_, nonce_, rolling_) = saved;
    nonce_.clear();
  }

  // The migration hook as the master runs it (MasterOptions::hook_runner): in simulated time.
  class Hook : public Procs {
   public:
    explicit Hook(World& w) : w_(w) {}
    Result<pid_t> spawn(const SpawnSpec&) override { return err(Exit::Internal, "the simulator spawns nothing"); }
    Result<RunResult> run(const SpawnSpec& spec, int64_t, const std::function<bool()>& keep_going) override {
      return w_.run_hook(spec, keep_going);
    }
    bool stop(pid_t, int, int64_t, bool) override { return true; }
    void signal(pid_t, int) override {}
    uint64_t start_time(pid_t) override { return 0; }
    bool alive(pid_t, uint64_t) override { return false; }

   private:
    World& w_;
  };

  std::mt19937_64 rng_;
  bool verbose_;
  Mode mode_;
  Hook hook_;
  bool rolling_ = false, hold_ = false;
  std::string batch_ = "1";
  int64_t lease_ms_ = 6000, max_poll_ = 0, max_stop_ = 0, last_gen_ = 0;
  std::map<int64_t, std::string> gen_release_;
  int crash_at_ = -1, crash_point_ = -1, interrupt_at_ = -1, sleeps_ = 0;
  int64_t interrupted_at_ = 0;
  bool race_ = false, in_master_ = false;
  std::atomic<int> interrupt_{0};
  std::string nonce_;
};

bool parse_mode(const std::string& s, Mode& m) {
  if (s == "all-at-once") m = Mode::AllAtOnce;
  else if (s == "rolling") m = Mode::Rolling;
  else if (s == "migrate") m = Mode::Migrate;
  else if (s == "signed") m = Mode::Signed;
  else return false;
  return true;
}

}  // namespace sim

int main(int argc, char** argv) {
  uint64_t first = 1, count = 1000;
  bool verbose = false, single = false, calm = false;
  int hosts = 0, switches = 0;
  sim::Mode mode = sim::Mode::AllAtOnce;
  const char* mode_name = "all-at-once";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) first = std::stoull(argv[++i]), count = 1, single = true;
    else if (a == "--first" && i + 1 < argc) first = std::stoull(argv[++i]);
    else if (a == "--schedules" && i + 1 < argc) count = std::stoull(argv[++i]);
    else if (a == "-v") verbose = true;
    else if (a == "--mode" && i + 1 < argc && sim::parse_mode(argv[i + 1], mode)) mode_name = argv[++i];
    else if (a == "--hosts" && i + 1 < argc) hosts = std::stoi(argv[++i]);
    else if (a == "--switches" && i + 1 < argc) switches = std::stoi(argv[++i]);
    else if (a == "--calm") calm = true;
    else {
      std::fprintf(stderr,
                   "usage: nfsup-sim [--mode all-at-once|rolling|migrate|signed] [--first N] [--schedules N] "
                   "[--seed N [-v]] [--hosts N] [--switches N] [--calm]\n"
                   "  --hosts N: N hosts per schedule (default 2..5); --switches N: N switches (default 2..4);\n"
                   "  --calm: each switch a clean push to the next release: no master crash, interrupt, second\n"
                   "          master, veto, failing release or EIO (for timing; every check still runs)\n");
      return 2;
    }
  }
  std::string tmp;
  if (mode == sim::Mode::Migrate || mode == sim::Mode::Signed) {
    char dir[] = "/tmp/nfsup-sim.XXXXXX";
    if (!mkdtemp(dir)) return std::perror("mkdtemp"), 2;
    tmp = dir;
    sim::kRoot = tmp + "/share";
  }
  if (mode == sim::Mode::Signed) {
    auto pub = nfsup::generate_keypair(tmp, "fleet");
    auto key = pub ? nfsup::load_secret_key(tmp + "/fleet.key") : nfsup::Result<nfsup::SecretKey>(pub.error());
    if (!key) return std::fprintf(stderr, "nfsup-sim: key: %s\n", key.error().msg.c_str()), 2;
    sim::g_key = *key;
    sim::g_trust.trusted = {*pub};
    sim::g_trust.allow_unsigned = false;
  }
  size_t steps = 0, failed = 0, gaps = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    sim::World w(seed, verbose, mode);
    w.fixed_hosts = hosts;
    w.fixed_switches = switches;
    w.calm = calm;
    nfsup::set_test_clock({&sim::World::clock_now, &sim::World::clock_sleep, &w});
    nfsup::set_fault_hooks({&sim::World::crash_hook, &sim::World::stop_hook, &w});
    try {
      w.run();
    } catch (const sim::Violation& v) {
      ++failed;
      std::printf("seed %llu: VIOLATED %s (replay: nfsup-sim --mode %s --seed %llu -v)\n",
                  static_cast<unsigned long long>(seed), v.what.c_str(), mode_name, static_cast<unsigned long long>(seed));
      if (single || failed >= 5) break;
    }
    steps += w.steps;
    gaps += w.resumed_after_switch;
  }
  std::printf("%llu schedules, %zu steps, %zu violated\n", static_cast<unsigned long long>(count), steps, failed);
  std::printf("%zu dead or interrupted masters' switches finished by resume (checked)\n", gaps);
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return failed ? 1 : 0;
}
