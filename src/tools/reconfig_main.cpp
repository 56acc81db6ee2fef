// nfsup-reconfig: rewrite this host's configuration for a move between two releases.
#include "common.h"
#include "config.h"
#include "reconfig.h"

using namespace nfsup;
using namespace nfsup::tools;

int main(int argc, char** argv) {
  program() = "nfsup-reconfig";
  CLI::App app{"nfsup-reconfig: run a release's config-rewrite script for this host (or restore a backup)"};
  std::string config = "/etc/nfsup/watchdog.yaml", from, to, share_timeout = "60s";
  bool dry_run = false, quiet = false;
  add_version_flag(app);
  app.add_option("-c,--config", config, "watchdog configuration (default /etc/nfsup/watchdog.yaml)");
  app.add_option("--from", from, "version the host runs now")->required();
  app.add_option("--to", to, "version the host moves to")->required();
  app.add_flag("--dry-run", dry_run, "print the unified diff; change nothing");
  app.add_option("--share-timeout", share_timeout, "exit 3 if the share hangs this long (default 60s)");
  bool verbose = false;
  app.add_flag("-q,--quiet", quiet, "only errors");
  app.add_flag("-v,--verbose", verbose, "also print the diff of what was applied");
  bool done = false;
  int pc = parse_or_exit(app, argc, argv, &done);
  if (done) return pc;
  verbosity = quiet ? -1 : 0;
  auto st = duration_flag("--share-timeout", share_timeout);
  if (!st) return fail(st.error());
  auto cfg = load_watchdog_config(config);
  if (!cfg) return fail(cfg.error());
  if (cfg->agent.config.empty())
    return fail(err(Exit::Usage, fmt::format("{}: agent.config is not set; nothing to rewrite", config)));
  StallGuard::start(*st, program());
  RealFs fs(cfg->host);
  Share share(fs, cfg->share);
  if (auto s = share.check(); !s) return fail(s.error());
  auto plan = plan_reconfig(share, *cfg, from, to);
  if (!plan) return fail(plan.error());
  auto out = apply_reconfig(*cfg, *plan, dry_run);
  if (!out) return fail(out.error());
  if ((dry_run || verbose) && !out->diff.empty()) fmt::print("{}", out->diff);
  say(out->message);
  return 0;
}
