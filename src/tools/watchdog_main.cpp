// nfsup-watchdog: one per host; `run` supervises the agent, `check` is one cron tick.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "common.h"
#include "config.h"
#include "sdnotify.h"
#include "watchdog.h"

using namespace nfsup;
using namespace nfsup::tools;

namespace {

// How long one pass of the daemon's loop may keep it from on_alive, which pings the systemd
// watchdog. A switch does its steps one after another, and each step has its own deadline:
// verifying the release (6 x share_timeout), the signature check, reading the reconfig
// script, and status and pointer I/O (one share_timeout each); the reconfig script; and
// starting the new release, or the old one again if the switch fails. The health gate runs
// in the same pass and may be followed by a stop and a restart of the previous release.
// With agent.start_command, each start and status call may take as long as the core allows
// it (60s or stop_timeout, and 30s), and stop_command blocks the pass as well. A drain, and
// the stop of an agent the watchdog started itself, do not count: they are lifecycle phases
// with their own deadline, and the loop keeps pinging while they run (advance_stop).
// With the defaults this is 174s, which the unit's WatchdogSec=3min covers (doc: SYSTEMD).
// The core knows these steps better; it could export this number (or ping during them).
int64_t longest_tick_ms(const WatchdogConfig& c) {
  const AgentConfig& a = c.agent;
  int64_t share = 10 * c.share_timeout_ms;
  int64_t stop = a.stop_timeout_ms + 5000 + (a.stop_command.empty() ? 0 : 5000);
  int64_t blocking_stop = a.start_command.empty() ? 0 : stop;
  int64_t start = a.start_command.empty() ? 2000 : std::max<int64_t>(a.stop_timeout_ms, 60000) + 2 * 30000;
  int64_t health = a.health_command.empty() ? 0 : a.health_timeout_ms + 1000 + stop + start;
  return share + blocking_stop + a.reconfig_timeout_ms + 2 * start + health + 10000;
}

// WatchdogSec= in the unit is the normal limit. If the configuration allows a single switch
// to take longer, ask systemd for a longer limit (WATCHDOG_USEC=), so that it does not kill
// the watchdog in the middle of a legitimate switch. A hung main loop is still caught.
void fit_systemd_watchdog(SdNotifier& sd, const WatchdogConfig& c) {
  if (!sd.enabled() || sd.watchdog_usec() <= 0) return;
  int64_t need_us = longest_tick_ms(c) * 1000;
  int64_t have_us = sd.watchdog_usec();
  int64_t want_us = std::max(need_us, have_us);
  static int64_t sent_us = 0;
  if (want_us == (sent_us ? sent_us : have_us)) return;
  if (sd.notify(fmt::format("WATCHDOG_USEC={}", want_us))) {
    sent_us = want_us;
    if (want_us > have_us)
      log_line(LogLevel::Info,
               fmt::format("systemd watchdog: a switch may take up to {} with this configuration; asked for {} "
                           "instead of WatchdogSec={}",
                           format_duration_ms(need_us / 1000), format_duration_ms(want_us / 1000),
                           format_duration_ms(have_us / 1000)));
  }
}

// The command line cron runs every minute, `check [-q|--quiet] [-v|--verbose] [--syslog]
// [-c|--config PATH]`, read without building the CLI11 parser: that takes about as long as
// the whole idle tick after it. Anything else (help, other commands, an unusual spelling, a
// repeated option) returns false and goes through CLI11, which owns the interface.
NFSUP_HOT bool quick_check_args(int argc, char** argv, std::string* config, bool* quiet, bool* verbose, bool* syslog_flag) {
  if (argc < 2 || std::string_view(argv[1]) != "check") return false;
  bool seen_c = false, seen_q = false, seen_v = false, seen_s = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto once = [](bool& seen) { return !std::exchange(seen, true); };
    if (a == "-q" || a == "--quiet") {
      if (!once(seen_q)) return false;
      *quiet = true;
    } else if (a == "-v" || a == "--verbose") {
      if (!once(seen_v)) return false;
      *verbose = true;
    } else if (a == "--syslog") {
      if (!once(seen_s)) return false;
      *syslog_flag = true;
    } else if ((a == "-c" || a == "--config") && i + 1 < argc && argv[i + 1][0] != '-' && argv[i + 1][0] != '\0') {
      if (!once(seen_c)) return false;
      *config = argv[++i];
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

NFSUP_HOT int main(int argc, char** argv) {
  program() = "nfsup-watchdog";
  std::string config = "/etc/nfsup/watchdog.yaml";
  bool quiet = false, verbose = false, syslog_flag = false;
  if (quick_check_args(argc, argv, &config, &quiet, &verbose, &syslog_flag)) {
    ::mallopt(M_TOP_PAD, 1 << 20);  // grow the heap once, not in a series of brk calls
    verbosity = quiet ? -1 : verbose ? 1 : 0;
    use_syslog = syslog_flag;
    if (use_syslog) openlog("nfsup-watchdog", LOG_PID, LOG_DAEMON);
    auto cfg = load_watchdog_config(config);
    if (!cfg) return fail(cfg.error());
    WatchdogRuntimeOptions opt;
    opt.log = log_line;
    opt.daemon = false;
    return run_watchdog_check(*cfg, opt);
  }
  CLI::App app{"nfsup-watchdog: stop this host's agent while an upgrade runs, restart it on the new release"};
  app.require_subcommand(1);
  add_version_flag(app);
  auto add_common = [&](CLI::App* c) {
    c->add_option("-c,--config", config, "watchdog configuration (default /etc/nfsup/watchdog.yaml)");
    c->add_flag("-q,--quiet", quiet, "only warnings and errors");
    c->add_flag("-v,--verbose", verbose, "more detail");
    c->add_flag("--syslog", syslog_flag, "log to syslog instead of stderr");
  };
  auto* run = app.add_subcommand("run", "daemon: supervise the agent as a child process");
  add_common(run);
  auto* check = app.add_subcommand("check", "one cron tick: the same decisions, no resident process");
  add_common(check);
  auto* validate = app.add_subcommand("validate", "check a configuration file without touching the share");
  add_common(validate);
  bool done = false;
  int pc = parse_or_exit(app, argc, argv, &done);
  if (done) return pc;
  verbosity = quiet ? -1 : verbose ? 1 : 0;
  use_syslog = syslog_flag;
  if (use_syslog) openlog("nfsup-watchdog", LOG_PID, LOG_DAEMON);

  auto cfg = load_watchdog_config(config);
  if (!cfg) return fail(cfg.error());
  if (*validate) {
    std::string names;
    for (const auto& s : cfg->services) names += (names.empty() ? "" : ", ") + s.name;
    say(fmt::format("{}: ok (host {}, share {}, poll {}, agent {}{})", config, cfg->host, cfg->share,
                    format_duration_ms(cfg->poll_interval_ms), cfg->agent.command[0],
                    cfg->services.size() > 1 ? "; services " + names : ""));
    return 0;
  }
  WatchdogRuntimeOptions opt;
  opt.log = log_line;
  opt.reload = [config]() { return load_watchdog_config(config); };
  if (*run) {
    opt.daemon = true;
    // systemd (Type=notify): READY=1 after the first tick, WATCHDOG=1 from the main loop.
    // Removes NOTIFY_SOCKET & co. from our environment, so the agent does not inherit them.
    static SdNotifier sd;
    if (sd.enabled()) {
      WatchdogConfig first = *cfg;
      opt.on_ready = [first]() {
        sd.notify(fmt::format("READY=1\nSTATUS=watching {} as host {}", first.share, first.host));
      };
      // The first tick comes before READY=1 and may already be a switch (the pointer moved
      // while this host was down). Neither TimeoutStartSec= nor WatchdogSec= may end it halfway
      // through, so both are widened before it starts, if the configuration needs that.
      int64_t every = sd.ping_interval_ms(), first_tick_us = longest_tick_ms(first) * 1000;
      opt.alive_interval_ms = every;
      opt.on_alive = [every, first_tick_us, first]() {
        static bool extended = false;
        if (!extended) {
          extended = sd.notify(fmt::format("EXTEND_TIMEOUT_USEC={}", first_tick_us));
          fit_systemd_watchdog(sd, first);
        }
        sd.ping(every);
      };
      opt.reload = [config]() {
        auto n = load_watchdog_config(config);
        if (n) fit_systemd_watchdog(sd, *n);
        return n;
      };
    }
    return run_watchdog_daemon(*cfg, opt);
  }
  opt.daemon = false;
  return run_watchdog_check(*cfg, opt);
}
