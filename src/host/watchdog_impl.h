// nfsup host: the Watchdog class, shared by the files that implement it (internal).
#pragma once
#include "watchdog.h"
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <time.h>
#include <algorithm>
#include <atomic>
#include <utility>
#include <chrono>
#include <fstream>
#include "hash.h"
#include "lifecycle.h"
#include "metrics.h"
#include "process.h"
#include "nfsup_version.h"
#include "reconfig.h"
#include "stage.h"
#include "store.h"
#include "trust.h"
#include "agent_ctl.h"
#include "local_state.h"
#include "share_guard.h"

namespace nfsup {

/// How long one cron tick carries on a drain, a stop or a start grace before it leaves the
/// rest to the next tick (the documented crontab kills a tick at 50 s).
constexpr int64_t kCronStepMs = 40000;

namespace wd {

// ---------------------------------------------------------------- the watchdog

class Watchdog {
 public:
  NFSUP_HOT Watchdog(WatchdogConfig cfg, const WatchdogRuntimeOptions& opt);

  void log(LogLevel l, const std::string& m);

  std::string state_file() const { return path_join(cfg_.state_dir, "state"); }
  std::string spool_dir() const { return path_join(cfg_.state_dir, "spool"); }

  NFSUP_HOT Status load_state();

  NFSUP_HOT void save_state();

  // Runs f() on the share worker under the deadline and returns its value, or nullopt on a
  // timeout. f must capture by value: a call that hangs past the deadline may return much later,
  // after this frame is gone, and may then only touch the heap box it shares with us.
  template <typename T, typename F>
  std::optional<T> share_call(F f, int64_t timeout_ms, std::string* why, int64_t stall_ms = 0) {
    auto box = std::make_shared<std::optional<T>>();
    if (!opt_.daemon) {
      // A cron tick: on this thread, under the guard's deadline (see ShareGuard).
      if (!guard_) {
        guard_ = std::make_unique<ShareGuard>();
        guard_->on_hang = [this](const std::string& w) { give_up_on_share(w); };
      }
      if (guard_->run([box, &f] { box->emplace(f()); }, timeout_ms, stall_ms)) return std::move(*box);
      // (no guard thread: fall back to the worker)
    }
    if (!worker_.run([box, f]() mutable { box->emplace(f()); }, timeout_ms, why, stall_ms)) return std::nullopt;
    return std::move(*box);
  }


  std::string release_dir_for(const std::string& version) const;

  SpawnSpec agent_spec(const std::string& version);

  void apply_acting(const std::string& acting);

  void deliver_spool();

  bool resolve(const std::string& version, std::string* cls, std::map<std::string, std::string>* mods,
               std::map<std::string, std::string>* hashes, std::string* why);

  bool unchanged_for(const std::string& to);

  bool config_restore_due(const std::string& to);

  void vote(const Decision& d);

  void set_state(const std::string& state, int64_t gen, const std::string& reason);

  std::string status_conf() const;

  void publish_status(bool force);
  /// metrics_file (Prometheus textfile) beside each status write: local disk, best effort; a
  /// failure is logged once until a write succeeds again.
  void note_metrics(const HostStatus& s, bool share_up, int64_t latency_ms);

  [[noreturn]] void give_up_on_share(const std::string& why);

  int64_t held_poll_ms() const;

  int64_t next_heartbeat_ms() const;

  void note_share_error(const std::string& why);

  void note_share_ok();

  NFSUP_HOT Observation observe(bool want_pointer, bool pointer_if_changed = false);
  bool root_unchanged_since_pointer(const Observation& obs) const;
  bool heartbeat_by_touch(const HostStatus& s);

  bool marker_is_trusted(const Marker& m);

  bool marker_is_stale(const Marker& m);

  void read_pointer(Observation& obs);

  LocalView view(std::optional<bool> agent_up = std::nullopt);

  host::Timeouts timeouts() const;

  bool agent_up_now();

  bool advance_stop(const std::string& why, int64_t gen);

  bool start_agent(const std::string& version, std::string* why, const std::function<void()>& started = {});

  std::string cache_dir(const std::string& v) const { return path_join(path_join(cfg_.state_dir, "cache"), v); }
  /// The host's object store (run_from: local): the files of every cache_dir are links into it.
  std::string store_dir() const { return path_join(cfg_.state_dir, "store"); }
  /// run_from: local (the default, and always in signed mode): the agent runs from a verified
  /// local run tree, never from the share.
  bool runs_local() const { return !cfg_.run_from_share; }

  void cache_release(const std::string& version);

  void prune_cache(const std::vector<std::string>& keep);

  void start_from_local_copy();

  NFSUP_HOT void promote_if_settled();

  bool copy_due() const;

  bool verify(const std::string& version, std::string* why, bool hashed = false);

  bool verified_copy(const std::string& version, const std::string& cls, std::string* why);

  void flush_backup();

  std::string manifest_digest(const std::string& version);

  void prepare_switch(const std::string& to);
  bool prepare_local(const std::string& to, int64_t gen, std::string* why);

  bool stopped_for_switch(const std::string& from, const std::string& to, int64_t gen, const ReconfigPlan& plan);

  void do_switch(const Decision& d);
  void switch_failed(const Decision& d, const std::string& reason);
  std::string refuses_going_back(const std::string& to) const;
  void switch_modules_unchanged(const Decision& d);
  Result<ReconfigPlan> read_reconfig_plan(const std::string& from, const std::string& to);
  void restore_config(const std::string& failed, const std::string& to_old);

  void notice_cron_agent_exit();

  Decision finish_unwanted_stop(const Observation& obs);

  void start_again(Decision& d);

  NFSUP_HOT Decision tick(bool first);
  Decision tick_without_share(const Observation& obs, bool agent_up);
  void hold(const Decision& d);
  void keep(const Observation& obs, bool agent_up, bool heartbeat_due);
  void act(Decision& d, const Observation& obs, bool agent_up, bool heartbeat_due);
  bool nothing_under_way(const Decision& d, const Observation& obs) const;

  bool count_crash();

  bool health_ok(std::string* why);

  void health_failed(const std::string& why);

  void on_agent_exit(int status);

  int64_t backoff_ms() const;

  void agent_died(const std::string& how);

  void shutdown();

  void adopt_orphan();

  WatchdogConfig cfg_;
  WatchdogRuntimeOptions opt_;
  bool metrics_ok_ = true;
  RealFs fs_;
  Share share_;
  ShareWorker worker_;                 // daemon: share operations run here, under deadlines
  std::unique_ptr<ShareGuard> guard_;  // cron tick: share operations run inline, under a guard
  std::unique_ptr<AgentCtl> ctl_;
  LocalState st_;
  std::string saved_;
  LocalState saved_st_;  // the state saved_ holds (its heartbeat fields, for the daemon's comparison)
  bool status_dirty_ = true;
  bool idle_ = false;  // the last tick found nothing to do (see the end of tick())
  bool fast_poll_ = false;  // the last tick saw a live marker
  std::pair<std::string, std::string> pending_backup_;  // (path, content) still to write
  int64_t cache_at_ms_ = 0;  // the local copy of the running release is not made before this
  bool share_down_ = false;
  std::string share_error_;
  bool force_pointer_ = true;
  // The idle RPC budget (issue 17): the share root's mtime when the pointer was last read, and
  // when; the status as last written in full (without its heartbeat fields), and the touches since.
  int64_t pointer_root_mtime_ = 0, pointer_read_ms_ = 0;
  std::string published_body_, published_updated_;
  int touches_ = 0;
  bool lapse_logged_ = false;
  int64_t lease_ms_ = 30000;
  Pointer last_pointer_;
  std::string garbled_logged_;
  std::string pending_, pending_cls_;   // release being switched to, and its class
  std::map<std::string, std::string> pending_mods_;
  std::pair<std::string, bool> unchanged_cache_;
  std::string untrusted_marker_;  // the last untrusted marker logged (nonce/generation)
  std::pair<std::string, bool> stale_marker_;  // (marker nonce/generation, judged stale)
  struct Prepared {
    std::string key;     // "to|from"
    std::string digest;  // SHA-256 of the target's manifest that was hashed against
    std::string cls;
    std::map<std::string, std::string> mods;
    ReconfigPlan plan;
  };
  Prepared prepared_;          // (key empty: nothing prepared)
  std::string prepare_tried_;  // key of the last attempt: one per switch
  std::pair<std::string, std::string> prep_failed_;  // (target|generation, why) the local run tree could not be made
};

}  // namespace wd
}  // namespace nfsup
