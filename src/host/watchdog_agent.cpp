// nfsup host: the watchdog: starting, stopping, health and crashes of the agent.
#include "watchdog_impl.h"

namespace nfsup {
namespace wd {

// Drives the stop of the agent one step (see host::step): starts the drain or the stop,
// escalates at the phase's deadline, and returns true once the agent is down. Never waits
// for a drain or a stop timeout: the caller's loop comes back (a daemon at its next poll, a
// cron tick at its next turn or the next tick, from the persisted phase), heartbeating
// meanwhile, so a host that drains within its timeouts is never taken for lost.
bool Watchdog::advance_stop(const std::string& why, int64_t gen) {
  const AgentConfig& a = cfg_.agent;
  for (int round = 0; round < 4; ++round) {
    bool was_stopping = host::stopping(st_.lc.phase);
    host::Step s = host::step(st_.lc, host::Event::StopWanted, agent_up_now(), boot_ms(), timeouts());
    st_.lc = s.next;
    switch (s.effect) {
      case host::Effect::Stopped:
        if (was_stopping || st_.agent_pid > 0 || st_.agent_wanted)
          log(LogLevel::Info, fmt::format("{}: stopped agent {} ({})", cfg_.host, st_.running, why));
        services_.stop_replaced(why);  // (a switch's replaced services go down with the agent)
        if (a.start_command.empty()) ctl_->stop(st_, a);  // (gone: only the bookkeeping is left)
        st_.agent_pid = 0;
        st_.agent_start = 0;
        st_.agent_wanted = false;
        st_.trial = false;  // (a release stopped before it settled is not on trial any more)
        return true;
      case host::Effect::Drain:
        // The agent is told first: a status write that hangs must not keep it from draining.
        log(LogLevel::Info, fmt::format("{}: draining agent {} ({}; up to {})", cfg_.host, st_.running, why,
                                        format_duration_ms(a.drain_timeout_ms)));
        if (a.drain_signal) {
          ctl_->signal(st_, a.drain_signal);
        } else {
          SpawnSpec d = agent_spec(st_.running);
          d.argv = a.drain_command;
          d.detach = true;  // runs beside the watchdog's loop; the drain deadline bounds the wait
          if (auto r = spawn(d); !r) log(LogLevel::Error, fmt::format("{}: drain command: {}", cfg_.host, r.error().msg));
        }
        save_state();
        set_state("draining", gen, why);
        publish_status(true);
        save_state();
        return false;
      case host::Effect::Stop:
        if (was_stopping)
          log(LogLevel::Warn, fmt::format("{}: agent {} still running after the {} drain timeout; stopping it",
                                          cfg_.host, st_.running, format_duration_ms(a.drain_timeout_ms)));
        if (!a.start_command.empty()) {
          ctl_->stop(st_, a);  // its stop_command does the stopping (bounded by stop_timeout)
          continue;
        }
        ctl_->begin_stop(st_, a);
        // An agent gone within 50 ms goes straight to `stopped` (one status write less per
        // host and upgrade); a slower one is reported `stopping` while it winds down.
        if (ctl_->wait_exit(st_, 50)) continue;
        set_state("stopping", gen, why);
        publish_status(true);
        log(LogLevel::Info, fmt::format("{}: stopping agent {} ({})", cfg_.host, st_.running, why));
        save_state();
        return false;
      case host::Effect::Kill:
        log(LogLevel::Warn, fmt::format("{}: agent {} still running after the {} stop timeout; killing it", cfg_.host,
                                        st_.running, format_duration_ms(a.stop_timeout_ms)));
        if (st_.agent_pid > 0) signal_process(static_cast<pid_t>(st_.agent_pid), SIGKILL);
        if (ctl_->wait_exit(st_, 100)) continue;
        save_state();
        return false;
      default:
        return false;  // waiting for the agent to exit or the phase's deadline
    }
  }
  return !agent_up_now();
}

// Starts the agent and saves its pid at once (before any share write that could hang);
// started() runs first, so the switch's own bookkeeping goes into the same local write.
bool Watchdog::start_agent(const std::string& version, std::string* why, const std::function<void()>& started) {
  // A host that runs from local disk starts only from a verified copy: one not made yet (the
  // release ran before this watchdog kept copies) is made now.
  if (runs_local() && !verified_copy_ready(cache_dir(version), version == pending_ ? pending_cls_ : st_.cls) &&
      !verify(version, why))
    return false;
  set_state("starting", st_.status_gen, "");
  auto s = ctl_->start(st_, agent_spec(version));
  if (!s) {
    *why = s.error().msg;
    return false;
  }
  st_.running = version;
  st_.runs_from.clear();
  st_.lc = host::step(st_.lc, host::Event::Started, true, boot_ms(), timeouts()).next;
  if (started) started();
  save_state();
  return true;
}

// Cron mode: the agent we started has died since the last tick (unless it was told to go).
void Watchdog::notice_cron_agent_exit() {
  if (st_.agent_pid <= 0 || st_.gave_up || host::stopping(st_.lc.phase)) return;
  log(LogLevel::Warn, fmt::format("{}: agent {} (pid {}) is no longer running", cfg_.host, st_.running, st_.agent_pid));
  st_.agent_pid = 0;
  st_.agent_start = 0;
  agent_died("exited");
}

// Records a crash; returns true when the restart-loop limit is reached.
bool Watchdog::count_crash() {
  int64_t now = boot_ms();
  st_.crashes.push_back(now);
  std::vector<int64_t> keep;
  for (auto t : st_.crashes)
    if (now - t <= cfg_.agent.restart_window_ms) keep.push_back(t);
  st_.crashes = keep;
  return static_cast<int>(st_.crashes.size()) >= cfg_.agent.restart_limit;
}

// Runs agent.health until it passes or its timeout runs out.
bool Watchdog::health_ok(std::string* why) {
  const AgentConfig& a = cfg_.agent;
  int64_t until = boot_ms() + a.health_timeout_ms;
  SpawnSpec s = agent_spec(st_.running);
  s.argv = a.health_command;
  s.argv[0] = path_join(release_dir_for(st_.running), a.health_command[0]);
  s.stdout_path.clear();
  std::string last = "no attempt", finished;  // finished: the last attempt that ran to its end
  while (true) {
    int64_t left = until - boot_ms();
    if (left <= 0) break;
    auto r = run_with_timeout(s, left);
    if (r && !r->timed_out && r->exit_code == 0) return true;
    std::string out;
    if (r)
      for (const auto& l : split(r->output, '\n'))
        if (!l.empty()) out = l;
    if (r && !r->timed_out) finished = fmt::format("exit code {}{}{}", r->exit_code, out.empty() ? "" : ": ", out);
    // An attempt cut off by the overall deadline says less than the one before it did.
    last = !r              ? r.error().msg
           : !r->timed_out ? finished
           : finished.empty() ? std::string("timed out")
                              : finished + "; the next try was cut off by the deadline";
    if (!ctl_->up(st_)) {
      last += " (and the agent exited)";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  *why = fmt::format("health check of {} failed within {} ({})", st_.running, format_duration_ms(a.health_timeout_ms),
                     last);
  return false;
}

// A release that failed its health gate: go back to the release this host ran before.
void Watchdog::health_failed(const std::string& why) {
  flush_backup();
  std::string bad = st_.running, prev = st_.previous;
  log(LogLevel::Error, fmt::format("{}: {}", cfg_.host, why));
  st_.failed_gen = st_.status_gen;
  ctl_->stop(st_, cfg_.agent);
  std::string reason = why;
  if (!prev.empty() && prev != bad) {
    struct stat bs{};
    if (!cfg_.agent.config.empty() && ::stat(backup_path(cfg_, prev).c_str(), &bs) == 0) {
      ReconfigPlan back;
      back.kind = ReconfigPlan::Restore;
      back.from = bad;
      back.to = prev;
      back.backup_source = backup_path(cfg_, prev);
      if (auto r = apply_reconfig(cfg_, back, false); !r) log(LogLevel::Error, r.error().msg);
    }
    std::string w2;
    if (start_agent(prev, &w2)) {
      st_.lc = {};  // (the release it ran before: no grace to wait out)
      reason += fmt::format("; rolled back to {}", prev);
      log(LogLevel::Info, fmt::format("{}: rolled back to {}", cfg_.host, prev));
    } else {
      reason += fmt::format("; could not restart {}: {}", prev, w2);
    }
  }
  set_state("failed", st_.status_gen, reason);
  publish_status(true);
  save_state();
}

// Daemon: the agent child exited by itself.
void Watchdog::on_agent_exit(int status) {
  agent_died(WIFEXITED(status) ? fmt::format("exit code {}", WEXITSTATUS(status))
                               : fmt::format("signal {}", signal_name(WTERMSIG(status))));
}

// Restart back-off after the n-th crash within restart_window: 0.5 s doubling, at most 30 s.
int64_t Watchdog::backoff_ms() const {
  size_t n = std::max<size_t>(st_.crashes.size(), 1);
  return std::min<int64_t>(30000, 500LL << std::min<size_t>(n - 1, 6));
}

// The agent exited without being asked to. During the start grace of a switch, the release
// does not start: back to the release (and configuration) this host ran before. Otherwise a
// crash: restarted after a back-off, until restart_limit crashes within restart_window.
void Watchdog::agent_died(const std::string& how) {
  if (host::stopping(st_.lc.phase)) return;  // asked to go: the stop's next step sees it gone
  bool starting = st_.lc.phase == host::Phase::Starting;
  st_.lc = {};
  if (starting && st_.trial) {
    st_.trial = false;
    return health_failed(fmt::format("agent {} exited during its start grace ({})", st_.running, how));
  }
  if (count_crash()) {
    st_.gave_up = true;
    set_state("failed", st_.status_gen,
              fmt::format("agent {} died ({}) {} times within {}; not restarting until a new push or SIGHUP",
                          st_.running, how, st_.crashes.size(), format_duration_ms(cfg_.agent.restart_window_ms)));
    log(LogLevel::Error, fmt::format("{}: {}", cfg_.host, st_.reason));
  } else {
    st_.restart_at = boot_ms() + backoff_ms();
    log(LogLevel::Warn, fmt::format("{}: agent {} died ({}); restarting in {}", cfg_.host, st_.running, how,
                                    format_duration_ms(st_.restart_at - boot_ms())));
    // A host whose last switch failed keeps saying so (and why) until a switch succeeds.
    if (!st_.failed_gen) set_state("starting", st_.status_gen, fmt::format("agent died ({}); restarting", how));
  }
  publish_status(true);
  save_state();
}

void Watchdog::shutdown() {
  flush_backup();
  services_.stop_all("watchdog stopped");
  if (ctl_->up(st_)) {
    log(LogLevel::Info, fmt::format("{}: watchdog stopping; stopping agent {}", cfg_.host, st_.running));
    ctl_->stop(st_, cfg_.agent);
  }
  set_state("stopped", st_.status_gen, "watchdog stopped");
  publish_status(true);
  save_state();
}

// When a daemon starts and finds an agent from an earlier watchdog still alive, it cannot
// supervise it (not its child): stop it so the first tick starts one it owns.
void Watchdog::adopt_orphan() {
  if (opt_.daemon) services_.adopt_orphans();
  if (!opt_.daemon || !cfg_.agent.start_command.empty()) return;
  if (st_.agent_pid > 0 && process_alive(static_cast<pid_t>(st_.agent_pid), st_.agent_start)) {
    log(LogLevel::Info, fmt::format("{}: stopping agent pid {} left by an earlier watchdog", cfg_.host, st_.agent_pid));
    stop_process(static_cast<pid_t>(st_.agent_pid), cfg_.agent.stop_signal, cfg_.agent.stop_timeout_ms, false);
  }
  st_.agent_pid = 0;
  st_.agent_start = 0;
}

}  // namespace wd
}  // namespace nfsup
