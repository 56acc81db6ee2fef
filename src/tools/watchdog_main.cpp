// nfsup-watchdog: one per host; `run` supervises the agent, `check` is one cron tick.
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "watchdog.h"

using namespace nfsup;
using namespace nfsup::tools;

int main(int argc, char** argv) {
  program() = "nfsup-watchdog";
  CLI::App app{"nfsup-watchdog: stop this host's agent while an upgrade runs, restart it on the new release"};
  app.require_subcommand(1);
  std::string config = "/etc/nfsup/watchdog.yaml";
  bool quiet = false, verbose = false, syslog_flag = false;
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
    say(fmt::format("{}: ok (host {}, share {}, poll {}, agent {})", config, cfg->host, cfg->share,
                    format_duration_ms(cfg->poll_interval_ms), cfg->agent.command[0]));
    return 0;
  }
  WatchdogRuntimeOptions opt;
  opt.log = log_line;
  opt.reload = [config]() { return load_watchdog_config(config); };
  if (*run) {
    opt.daemon = true;
    return run_watchdog_daemon(*cfg, opt);
  }
  opt.daemon = false;
  return run_watchdog_check(*cfg, opt);
}
