// nfsup-install: the master installer (init, push, status, rollback, abort, verify, releases).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>

#include "common.h"
#include "install_status.h"
#include "master_log.h"
#include "crypto.h"
#include "reconfig.h"
#include "master.h"
#include "master/progress.h"
#include "metrics.h"
#include "mounts.h"
#include "report.h"
#include "trust.h"
#include "os/signals.h"

using namespace nfsup;
using namespace nfsup::tools;

namespace {

struct Opts {
  std::string share, source, version, reconfig, to;
  bool no_wait = false, json = false, force = false, dry_run = false, prometheus = false;
  std::string lease = "30s", stale_after = "45s", timeout = "10m", share_timeout = "60s";
  std::string sign_key, expires, out_dir, key_name = "fleet";
  std::string strategy = "all-at-once", batch = "1", min_compatible, migrate;
  int max_failures = 0, max_unavailable = 1;
  bool max_failures_given = false;
  bool hold_acting = false;
  bool watch = false;
  std::string hosts, cls, vote_timeout = "60s", modules;
  bool assume_accept = false, skip_vetoed = false;
  int keep = 5;
  std::string interval = "1s", html;
  int64_t report_generation = 0;
  bool local = false, allow_empty = false;
  std::vector<std::string> rolling_given;  ///< rolling-only flags given on the command line
};

// A duration that must be more than zero: 0 would mean "give up at once" or "never wait".
Result<int64_t> positive_duration(const std::string& flag, const std::string& v) {
  auto d = duration_flag(flag, v);
  if (!d) return d.error();
  if (*d <= 0) return err(Exit::Usage, fmt::format("{} '{}': must be more than 0", flag, v));
  return *d;
}

// --batch N or N%: at least one host, at most all of them.
Status check_batch(const std::string& b) {
  std::string n = b;
  bool pct = !n.empty() && n.back() == '%';
  if (pct) n.pop_back();
  if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos)
    return err(Exit::Usage, fmt::format("--batch '{}': use a number of hosts (3) or a percentage (25%)", b));
  long v = std::stol(n);
  if (v < 1 || (pct && v > 100))
    return err(Exit::Usage, fmt::format("--batch '{}': must be {}", b, pct ? "between 1% and 100%" : "at least 1"));
  return ok_status();
}

// --expires needs a unit: a bare "90" read as 90 seconds made releases expire before anyone noticed.
Result<int64_t> expires_at(const std::string& e) {
  auto bad = [&] { return err(Exit::Usage, fmt::format("--expires '{}': give a duration with a unit (90d, 720h, 30m)", e)); };
  if (e.empty() || std::isdigit(static_cast<unsigned char>(e.back()))) return bad();
  std::optional<int64_t> ms;
  std::string n = e.substr(0, e.size() - 1);
  if (e.back() == 'd' && !n.empty() && n.size() <= 6 && n.find_first_not_of("0123456789") == std::string::npos)
    ms = std::stoll(n) * 86400000;
  else
    ms = parse_duration_ms(e);
  if (!ms || *ms < 1000) return bad();
  return static_cast<int64_t>(unix_now()) + *ms / 1000;
}

std::string unix_to_iso(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// `init` makes a share that every host mounts: on local disk (an export not mounted yet, a typo)
// no host would ever see it. --local says that is meant (tests, a single host).
Status check_share_location(const std::string& path, bool local) {
  if (local) return ok_status();
  auto m = mount_of_path(path);
  if (!m) return err(Exit::Usage, fmt::format("init {}: {}; give --local to create the share anyway", path, m.error().msg));
  if (is_network_fs(m->fstype)) return ok_status();
  return err(Exit::Usage,
             fmt::format("init {}: on {} (mounted at {}), not a network file system that other hosts can mount; "
                         "mount the export first, or give --local for a share on local disk",
                         path, m->fstype, m->mount_point));
}

Status check_rollout_flags(const Opts& o) {
  if (o.strategy != "all-at-once" && o.strategy != "rolling")
    return err(Exit::Usage, fmt::format("--strategy '{}': use all-at-once or rolling", o.strategy));
  if (o.max_failures < 0 || o.max_unavailable < 1)
    return err(Exit::Usage, "--max-failures must be >= 0 and --max-unavailable >= 1");
  if (auto b = check_batch(o.batch); !b) return b.error();
  if (o.strategy != "rolling" && !o.rolling_given.empty())
    return err(Exit::Usage, fmt::format("{}: only for --strategy rolling (this push is {})", join(o.rolling_given, ", "),
                                        o.strategy));
  return ok_status();
}

Result<MasterOptions> master_opts(const Opts& o) {
  MasterOptions m;
  auto l = duration_flag("--lease", o.lease);
  if (!l) return l.error();
  auto s = positive_duration("--stale-after", o.stale_after);
  if (!s) return s.error();
  auto t = positive_duration("--timeout", o.timeout);
  if (!t) return t.error();
  auto st = positive_duration("--share-timeout", o.share_timeout);
  if (!st) return st.error();
  if (*l < 300 || *l > 24LL * 3600 * 1000) return err(Exit::Usage, "--lease must be between 300ms and 24h");
  m.lease_ms = *l;
  m.stale_after_ms = *s;
  m.timeout_ms = *t;
  m.wait = !o.no_wait;
  if (auto r = check_rollout_flags(o); !r) return r.error();
  m.strategy = o.strategy;
  m.batch = o.batch;
  m.max_failures = o.max_failures_given ? o.max_failures : -1;
  m.max_unavailable = o.max_unavailable;
  m.hold_acting = o.hold_acting;
  if (!o.hosts.empty()) {
    for (const auto& h : split(o.hosts, ',')) {
      if (auto e = check_host_name(h)) return err(Exit::Usage, fmt::format("--hosts: {}", *e));
      m.hosts.push_back(h);
    }
  }
  if (!o.cls.empty())
    if (auto e = check_host_name(o.cls)) return err(Exit::Usage, fmt::format("--class: {}", *e));
  m.cls = o.cls;
  auto vt = duration_flag("--vote-timeout", o.vote_timeout);
  if (!vt) return vt.error();
  m.vote_timeout_ms = *vt;
  m.assume_accept = o.assume_accept;
  m.skip_vetoed = o.skip_vetoed;
  m.force = o.force;
  bool tty = is_terminal(2);
  if (verbosity > 0 || (tty && verbosity == 0)) m.note = [](const std::string& s2) { fmt::print(stderr, "{}\n", s2); };
  if (tty && verbosity >= 0)
    m.progress = [](uint64_t done, uint64_t total) {
      static uint64_t last = 0;
      if (total < (1u << 20)) return;  // a small release is staged before a line would help
      if (done != total && done - last < (8u << 20)) return;
      last = done;
      fmt::print(stderr, "\rstaging: {:.1f}/{:.1f} MiB", done / 1048576.0, total / 1048576.0);
      if (done == total) fmt::print(stderr, "\n");
    };
  StallGuard::start(*st, program());
  return m;
}

// SIGINT, SIGTERM and SIGHUP only set this; the master's waits check it and back out.
std::atomic<int> g_interrupt{0};
extern "C" void on_interrupt(int sig) { g_interrupt.store(sig); }

// For push, rollback and finalize. A signal ignored at start (nohup, a background job of a
// script) stays ignored.
void catch_interrupts(MasterOptions& m) {
  catch_signals({SIGINT, SIGTERM, SIGHUP}, on_interrupt);
  m.interrupt = &g_interrupt;
}

// `targeted`: a switch of part of the fleet (--hosts, --class); its summary names the hosts it
// switched, since the others keep their release and "<current> -> X" would say otherwise.
int report_switch(Result<SwitchReport> r, const char* what, bool targeted = false) {
  if (!r) return fail(r.error());
  const SwitchReport& rep = *r;
  if (rep.nothing_to_do) {
    say(fmt::format("{} is already current; nothing to do", rep.target));
    return 0;
  }
  int bad = 0;
  for (const auto& h : rep.hosts) {
    if (h.outcome == "ok") {
      if (verbosity > 0) say(fmt::format("  {:<20} ok", h.host));
      continue;
    }
    if (h.outcome == "stale" || h.outcome == "vetoed") {
      fmt::print(stderr, "{}: warning: {}: skipped{}: {}\n", program(), printable(h.host),
                 h.outcome == "vetoed" ? " (vetoed)" : "", printable(h.detail));
      continue;
    }
    ++bad;
    fmt::print(stderr, "{}: error: {}: {}: {}\n", program(), printable(h.host), h.outcome, printable(h.detail));
  }
  for (const auto& w : rep.warnings) fmt::print(stderr, "{}: warning: {}\n", program(), printable(w));
  for (const auto& d : rep.dependency_problems) {
    ++bad;
    fmt::print(stderr, "{}: error: dependency: {}\n", program(), printable(d));
  }
  if (!rep.undone_to.empty()) {
    ++bad;
    fmt::print(stderr, "{}: error: {} of {} undone: current is {} again\n", program(), what, rep.target, rep.undone_to);
  }
  size_t ok = std::count_if(rep.hosts.begin(), rep.hosts.end(), [](auto& h) { return h.outcome == "ok"; });
  std::vector<std::string> switched;
  for (const auto& h : rep.hosts)
    if (h.outcome == "ok") switched.push_back(printable(h.host));
  if (targeted)
    say(fmt::format("{} {} on {} (generation {}; the other hosts keep their release): {} host(s) ok, {} failed", what,
                    rep.target, switched.empty() ? "no host" : join(switched, " "), rep.generation, ok, bad));
  else
    say(fmt::format("{} {} -> {} (generation {}): {} host(s) ok, {} failed", what,
                    rep.previous.empty() ? "-" : rep.previous, rep.target, rep.generation, ok, bad));
  return bad ? static_cast<int>(Exit::Failed) : 0;
}

// A push that no live host took: the pointer moved, but nothing runs the release. Usually the
// wrong share, or watchdogs not started yet; a first push before any host is set up says so
// with --allow-empty. --no-wait asks nothing of the hosts (staging ahead of them), so it is not
// held to this either.
int no_live_host_check(const SwitchReport& rep, bool allow_empty, bool waited) {
  if (rep.nothing_to_do || allow_empty || !waited) return 0;
  auto live = std::count_if(rep.hosts.begin(), rep.hosts.end(), [](auto& h) { return h.outcome != "stale"; });
  if (live > 0) return 0;
  fmt::print(stderr,
             "{}: error: no live host took {} ({} host(s) on the share, all stale or none): it is the current release, "
             "but nothing runs it; start the watchdogs, or give --allow-empty when this is expected\n",
             program(), rep.target, rep.hosts.size());
  return static_cast<int>(Exit::Failed);
}

int cmd_releases(Share& share, bool json) {
  if (auto s = share.check(); !s) return fail(s.error());
  auto r = share.list_releases();
  if (!r) return fail(r.error());
  std::string js;
  for (const auto& v : *r) {
    auto m = share.read_manifest(v);
    int64_t exp = m && *m ? (*m)->expires : 0;
    if (json) {
      js += fmt::format("{}{{\"version\":{},\"expires\":{}}}", js.empty() ? "" : ",", json_str(v),
                        exp ? json_str(unix_to_iso(exp)) : "null");
      continue;
    }
    if (exp) fmt::print("{}  expires {}{}\n", v, unix_to_iso(exp), exp < unix_now() ? " (expired)" : "");
    else fmt::print("{}\n", v);
  }
  if (json) fmt::print("[{}]\n", js);
  return 0;
}

int cmd_verify(Share& share, bool json) {
  auto r = verify_share(share);
  if (!r) return fail(r.error());
  int rc = r->problems.empty() ? 0 : static_cast<int>(Exit::Integrity);
  if (json) {
    auto list = [](const std::vector<std::string>& v) {
      std::string o;
      for (const auto& x : v) o += (o.empty() ? "" : ",") + json_str(x);
      return "[" + o + "]";
    };
    std::string probs;
    for (const auto& [rel2, p] : r->problems) probs += (probs.empty() ? "" : ",") + json_str(rel2) + ":" + list(p);
    fmt::print("{{\"checked\":{},\"problems\":{{{}}},\"warnings\":{}}}\n", list(r->checked), probs, list(r->warnings));
    return rc;
  }
  for (const auto& w : r->warnings) fmt::print(stderr, "{}: warning: {}\n", program(), printable(w));
  for (const auto& [rel2, probs] : r->problems)
    for (const auto& p : probs) fmt::print(stderr, "{}: error: {}: {}\n", program(), printable(rel2), printable(p));
  say(fmt::format("verified {} release(s): {} with problems", r->checked.size(), r->problems.size()));
  return rc;
}

// The subcommands and their flags, in the order --help lists them.
struct Cli {
  CLI::App* push = nullptr;
  std::vector<CLI::Option*> rolling_only;  ///< push flags that only --strategy rolling takes
};

Cli add_subcommands(CLI::App& app, Opts& o) {
  Cli cli;
  auto add_wait_opts = [&](CLI::App* c) {
    c->add_flag("--no-wait", o.no_wait, "return once the pointer is switched; do not wait for hosts to start");
    c->add_option("--lease", o.lease, "marker lease; hosts resume the current release if not renewed (default 30s)");
    c->add_option("--stale-after", o.stale_after, "a host silent this long is skipped (default 45s)");
    c->add_option("--timeout", o.timeout, "give up waiting for hosts to stop, or to start (default 10m)");
    c->add_option("--share-timeout", o.share_timeout, "exit 3 if one share operation hangs this long (default 60s)");
    c->add_flag("--dry-run", o.dry_run, "print the plan; change nothing");
    c->add_option("--sign-key", o.sign_key, "Ed25519 secret key (from keygen) to sign the release and the pointer");
    c->add_option("--hosts", o.hosts, "only these hosts (comma-separated); the others keep their release");
    c->add_option("--vote-timeout", o.vote_timeout, "how long to wait for every targeted host's vote (default 60s)");
    c->add_flag("--assume-accept", o.assume_accept, "a host that does not vote counts as accepting, not vetoing");
    c->add_flag("--force", o.force, "go ahead over vetoes (recorded in the audit trail)");
    c->add_flag("--skip-vetoed", o.skip_vetoed, "switch only the hosts that accepted");
  };
  auto* init = app.add_subcommand("init", "create the share layout");
  init->add_option("share", o.share, "the shared directory")->required();
  init->add_flag("--dry-run", o.dry_run, "print what would be created");
  init->add_flag("--local", o.local, "allow a share on a local file system (tests, a single host)");
  auto* push_c = app.add_subcommand("push", "stage a release and switch every host to it");
  push_c->add_option("share", o.share, "the shared directory")->required();
  push_c->add_option("source", o.source, "a file or directory tree to release")->required();
  push_c->add_option("--version", o.version, "version name of the release")->required();
  push_c->add_option("--reconfig", o.reconfig, "script that rewrites a host's config for this release");
  push_c->add_option("--class", o.cls, "only hosts of this class");
  push_c->add_option("--modules", o.modules, "YAML spec of the release's modules and host classes");
  push_c->add_option("--strategy", o.strategy, "all-at-once (default; for incompatible releases) or rolling");
  push_c->add_option("--max-failures", o.max_failures,
                     "failed hosts tolerated before the push is undone (rolling: default 0; all-at-once: undone only "
                     "when no host started)");
  std::vector<CLI::Option*> rolling_only = {
      push_c->add_option("--batch", o.batch, "rolling: hosts per batch, N or N% (default 1)"),
      push_c->add_option("--max-unavailable", o.max_unavailable, "rolling: hosts of one group down at once (default 1)"),
      push_c->add_flag("--hold-acting", o.hold_acting, "rolling: keep the acting version back until 'finalize'")};
  push_c->add_flag("--allow-empty", o.allow_empty, "exit 0 even if no live host took the release");
  push_c->add_option("--min-compatible", o.min_compatible, "lowest version this release can run beside");
  push_c->add_option("--migrate", o.migrate, "data-migration hook run once when the acting version advances");
  push_c->add_option("--expires", o.expires, "hosts refuse to start this release after this long (e.g. 90d, 720h)");
  add_wait_opts(push_c);
  auto* status_c = app.add_subcommand("status", "show the release pointer, marker and every host");
  status_c->add_option("share", o.share, "the shared directory")->required();
  auto* status_json = status_c->add_flag("--json", o.json, "machine-readable output (schema nfsup-status/1)");
  status_c->add_option("--stale-after", o.stale_after, "hosts silent this long are shown stale (default 45s)");
  auto* status_watch = status_c->add_flag("--watch", o.watch, "refresh until interrupted (a push in progress, a rollout)");
  status_c->add_option("--interval", o.interval, "refresh interval for --watch (default 1s)");
  status_c->add_flag("--prometheus", o.prometheus, "the fleet in Prometheus text format (textfile collector)")
      ->excludes(status_json)
      ->excludes(status_watch);
  auto* rep_c = app.add_subcommand("report", "write a self-contained HTML page: last rollout per host, downtime, audit trail");
  rep_c->add_option("share", o.share, "the shared directory")->required();
  rep_c->add_option("--html", o.html, "output file")->required();
  rep_c->add_option("--generation", o.report_generation, "draw the rollout of generation N (default: the newest)")
      ->check(CLI::PositiveNumber);
  auto* hist = app.add_subcommand("history", "show the audit trail (who pushed, rolled back, aborted what, when)");
  hist->add_option("share", o.share, "the shared directory")->required();
  hist->add_flag("--json", o.json, "machine-readable output");
  auto* rb = app.add_subcommand("rollback", "switch every host back to a kept release");
  rb->add_option("share", o.share, "the shared directory")->required();
  rb->add_option("--to", o.to, "release to return to (default: the newest kept release below the current one)");
  add_wait_opts(rb);
  auto* ab = app.add_subcommand("abort", "remove the marker of a push that died; hosts resume the current release");
  ab->add_option("share", o.share, "the shared directory")->required();
  ab->add_flag("--force", o.force, "abort even if the push still looks alive");
  ab->add_flag("--dry-run", o.dry_run, "print what would be done");
  ab->add_option("--sign-key", o.sign_key, "Ed25519 secret key to sign the restored pointer");
  auto* res = app.add_subcommand("resume", "finish a rollout whose master died, from its recorded step");
  res->add_option("share", o.share, "the shared directory")->required();
  res->add_flag("--force", o.force, "take the marker over even if its master still looks alive");
  res->add_flag("--dry-run", o.dry_run, "print what would be done; change nothing");
  res->add_option("--sign-key", o.sign_key, "Ed25519 secret key to sign the pointer");
  res->add_option("--timeout", o.timeout, "give up waiting for hosts to start (default 10m)");
  res->add_option("--stale-after", o.stale_after, "a host silent this long is skipped (default 45s)");
  auto* fin = app.add_subcommand("finalize", "release an acting version held back by --hold-acting");
  fin->add_option("share", o.share, "the shared directory")->required();
  fin->add_option("--sign-key", o.sign_key, "Ed25519 secret key to sign the pointer");
  fin->add_flag("--dry-run", o.dry_run, "print the acting version change; change nothing");
  auto* pr = app.add_subcommand("prune", "delete old releases; never one a host runs, the current, or the rollback target");
  pr->add_option("share", o.share, "the shared directory")->required();
  pr->add_option("--keep", o.keep, "newest releases to keep besides those in use (default 5)");
  pr->add_flag("--dry-run", o.dry_run, "print what would be deleted");
  auto* kg = app.add_subcommand("keygen", "make an Ed25519 key pair for signing releases");
  kg->add_option("--out", o.out_dir, "directory for NAME.key (mode 0600) and NAME.pub")->required();
  kg->add_option("--name", o.key_name, "key file name (default fleet)");
  kg->add_flag("--dry-run", o.dry_run, "print where the keys would go");
  auto* ver = app.add_subcommand("verify", "check every kept release against its manifest");
  ver->add_option("share", o.share, "the shared directory")->required();
  ver->add_flag("--json", o.json, "machine-readable output");
  auto* rel = app.add_subcommand("releases", "list kept releases");
  rel->add_option("share", o.share, "the shared directory")->required();
  rel->add_flag("--json", o.json, "machine-readable output: [{version, expires}], oldest first");

  cli.push = push_c;
  cli.rolling_only = rolling_only;
  return cli;
}

// What every subcommand but keygen works on: the parsed flags, the share, the master's options.
struct Ctx {
  Opts& o;
  Share& share;
  MasterOptions& mo;
};

int cmd_keygen(const Opts& o) {
  if (o.dry_run) {
    say(fmt::format("would write {}/{}.key (0600) and {}/{}.pub", o.out_dir, o.key_name, o.out_dir, o.key_name));
    return 0;
  }
  auto k = generate_keypair(o.out_dir, o.key_name);
  if (!k) return fail(k.error());
  say(fmt::format("key {}: {}/{}.key (secret, 0600) and {} (give this to the watchdogs' trusted_keys)", k->id,
                  o.out_dir, o.key_name, k->path));
  return 0;
}

int cmd_init(Ctx& c) {
  const Opts& o = c.o;
  if (auto s = check_share_location(o.share, o.local); !s) return fail(s.error());
  if (o.dry_run) {
    say(fmt::format("would create {}/{{nfsup-share,releases,objects,hosts,audit}} (existing files are kept)", o.share));
    return 0;
  }
  if (auto s = init_share(c.share); !s) return fail(s.error());
  say(fmt::format("{}: nfsup share ready", o.share));
  return 0;
}

int push_dry_run(Ctx& c, const PushRequest& req) {
  if (auto s = c.share.check(); !s) return fail(s.error());
  auto m = scan_source(req.stage);
  if (!m) return fail(m.error());
  auto plan = dry_run_plan(c.share, "push", c.o.version, &*m, c.mo);
  if (!plan) return fail(plan.error());
  for (const auto& l : plan->lines) fmt::print("{}\n", l);
  if (req.stage.expires) say(fmt::format("the release would expire at {}", unix_to_iso(req.stage.expires)));
  return plan->exit_code;
}

int cmd_push(Ctx& c) {
  const Opts& o = c.o;
  PushRequest req;
  req.stage.source = o.source;
  req.stage.version = o.version;
  req.stage.reconfig = o.reconfig;
  req.stage.min_compatible = o.min_compatible;
  req.stage.migrate = o.migrate;
  req.stage.modules = o.modules;
  if (!o.expires.empty()) {
    auto at = expires_at(o.expires);
    if (!at) return fail(at.error());
    req.stage.expires = *at;
  }
  if (o.dry_run) return push_dry_run(c, req);
  catch_interrupts(c.mo);
  auto pushed = push(c.share, req, c.mo);
  int rc = report_switch(pushed, "push", !o.hosts.empty() || !o.cls.empty());
  if (pushed && !pushed->nothing_to_do && req.stage.expires)
    say(fmt::format("release {} expires at {}; hosts refuse to start it after that", o.version,
                    unix_to_iso(req.stage.expires)));
  return rc == 0 ? no_live_host_check(*pushed, o.allow_empty, !o.no_wait) : rc;
}

int cmd_rollback(Ctx& c) {
  if (c.o.dry_run) {
    if (auto s = c.share.check(); !s) return fail(s.error());
    auto to = rollback_target(c.share, c.o.to);  // the same target as the real rollback
    if (!to) return fail(to.error());
    auto plan = dry_run_plan(c.share, "rollback", *to, nullptr, c.mo);
    if (!plan) return fail(plan.error());
    for (const auto& l : plan->lines) fmt::print("{}\n", l);
    return plan->exit_code;
  }
  catch_interrupts(c.mo);
  return report_switch(rollback(c.share, c.o.to, c.mo), "rollback", !c.o.hosts.empty());
}

int cmd_abort(Ctx& c) {
  if (c.o.dry_run) {
    if (auto s = c.share.check(); !s) return fail(s.error());
    auto m = c.share.read_marker();
    if (!m) return fail(m.error());
    say(*m ? fmt::format("would remove the marker of the {} of {} by {} pid {}", (*m)->action, (*m)->release,
                         (*m)->master_host, (*m)->master_pid)
           : "no marker; would only remove this host's leftover staging directories");
    return 0;
  }
  auto r = abort_push(c.share, c.mo);
  if (!r) return fail(r.error());
  for (const auto& n : r->notes) say(n);
  if (!r->had_marker) say("no push in progress");
  if (!r->resumed.empty()) say(fmt::format("hosts resume {}", r->resumed));
  if (r->removed_staging) say(fmt::format("removed {} unfinished staging director{}", r->removed_staging,
                                          r->removed_staging == 1 ? "y" : "ies"));
  return 0;
}

int cmd_resume(Ctx& c) {
  if (!c.o.dry_run) catch_interrupts(c.mo);
  auto r = resume_rollout(c.share, c.mo, c.o.dry_run);
  if (!r) return fail(r.error());
  for (const auto& l : r->lines) say(l);
  if (c.o.dry_run || r->outcome == "nothing") return 0;
  int bad = 0;
  for (const auto& h : r->hosts)
    if (h.outcome != "ok" && h.outcome != "stale" && h.outcome != "vetoed") {
      ++bad;
      fmt::print(stderr, "{}: error: {}: {}: {}\n", program(), printable(h.host), h.outcome, printable(h.detail));
    }
  say(fmt::format("resume: {}; current {} (generation {}), acting version {}", r->outcome, r->release, r->generation,
                  r->acting));
  return r->outcome == "undone" || bad ? static_cast<int>(Exit::Failed) : 0;
}

int cmd_prune(Ctx& c) {
  const Opts& o = c.o;
  auto r = prune(c.share, o.keep, o.dry_run, c.mo);
  if (!r) return fail(r.error());
  for (const auto& v : r->deleted) say(fmt::format("{} {}", o.dry_run ? "would delete" : "deleted", v));
  for (const auto& v : r->kept) say(fmt::format("kept {}", v));
  for (const auto& d : r->leftovers_removed) say(fmt::format("removed {} (left by an earlier prune)", d));
  for (const auto& d : r->leftovers_kept)
    say(fmt::format("left {}: a file in it is still open on a client; a later prune removes it", d));
  if (r->objects_removed) say(fmt::format("removed {} unreferenced objects ({} bytes)", r->objects_removed, r->bytes_freed));
  return 0;
}

int cmd_finalize(Ctx& c) {
  if (c.o.dry_run) {
    if (auto s = c.share.check(); !s) return fail(s.error());
    auto p = c.share.read_pointer();
    if (!p) return fail(p.error());
    if (!*p) return fail(err(Exit::Usage, "nothing has been pushed yet"));
    std::string acting = (*p)->acting.empty() ? (*p)->release : (*p)->acting;
    say(acting == (*p)->release ? "acting version is already " + acting
                                : fmt::format("would move the acting version {} -> {} (running {}'s migration hook once)",
                                              acting, (*p)->release, (*p)->release));
    return 0;
  }
  catch_interrupts(c.mo);
  auto r = finalize(c.share, c.mo);
  if (!r) return fail(r.error());
  say(*r);
  return 0;
}

int cmd_status_of(Ctx& c) {
  const Opts& o = c.o;
  return cmd_status(c.share, StatusFlags{o.share, o.json, o.prometheus, o.watch, o.interval}, c.mo.stale_after_ms);
}

int cmd_report(Ctx& c) {
  const Opts& o = c.o;
  auto r = share_status(c.share, c.mo.stale_after_ms);
  if (!r) return fail(r.error());
  auto gens = list_timelines(c.share);
  if (!gens) return fail(gens.error());
  auto tl = read_timeline(c.share, o.report_generation);
  if (!tl) return fail(tl.error());
  if (o.report_generation > 0 && !*tl)
    return fail(err(Exit::Usage, fmt::format("--generation {}: no rollout of that generation in {}/rollouts",
                                             o.report_generation, o.share)));
  std::vector<std::string> warn;
  auto au = read_audit(c.share, &warn);
  if (!au) return fail(au.error());
  for (const auto& w : warn) fmt::print(stderr, "{}: warning: {}\n", program(), printable(w));
  std::string html = render_html_report(o.share, *tl, *r, *au, {utc_now_iso(), gens->empty() ? 0 : gens->back()});
  if (auto s = write_local_atomic(o.html, html, 0644); !s) return fail(s.error());
  say(fmt::format("wrote {} ({} bytes)", o.html, html.size()));
  return 0;
}

std::string history_json(const std::vector<AuditEvent>& au) {
  std::string js = "[";
  for (size_t i = 0; i < au.size(); ++i) {
    const auto& e = au[i];
    js += fmt::format("{}{{\"time\":{},\"host\":{},\"user\":{},\"pid\":{},\"action\":{},\"detail\":{},\"result\":{}}}",
                      i ? "," : "", json_str(e.time), json_str(e.host), json_str(e.user),
                      !e.pid.empty() && e.pid.size() < 19 && e.pid.find_first_not_of("0123456789") == std::string::npos
                          ? e.pid
                          : "null",
                      json_str(e.action), json_str(e.detail), json_str(e.result));
  }
  return js + "]";
}

int cmd_history(Ctx& c) {
  if (auto s = c.share.check(); !s) return fail(s.error());
  std::vector<std::string> warn;
  auto au = read_audit(c.share, &warn);
  if (!au) return fail(au.error());
  for (const auto& w : warn) fmt::print(stderr, "{}: warning: {}\n", program(), printable(w));
  if (c.o.json) {
    fmt::print("{}\n", history_json(*au));
    return 0;
  }
  for (const auto& e : *au)
    print_line(fmt::format("{}  {:<12} {:<10} {:<9} {}  [{}]", e.time, e.host, e.user, e.action, e.detail, e.result));
  return 0;
}

// Subcommand name -> what it does (keygen, which needs no share, is run before these).
const std::map<std::string, int (*)(Ctx&)>& subcommand_table() {
  static const std::map<std::string, int (*)(Ctx&)> table = {
      {"init", cmd_init},
      {"push", cmd_push},
      {"rollback", cmd_rollback},
      {"abort", cmd_abort},
      {"resume", cmd_resume},
      {"prune", cmd_prune},
      {"finalize", cmd_finalize},
      {"status", cmd_status_of},
      {"report", cmd_report},
      {"history", cmd_history},
      {"verify", [](Ctx& c) { return cmd_verify(c.share, c.o.json); }},
      {"releases", [](Ctx& c) { return cmd_releases(c.share, c.o.json); }},
  };
  return table;
}

// Runs the parsed subcommand `name`: the master's options and the signing key first (their
// errors come before the subcommand's own), then the subcommand.
int run_subcommand(const std::string& name, Opts& o) {
  if (name == "keygen") return cmd_keygen(o);
  RealFs fs(short_hostname());
  Share share(fs, o.share);
  auto mo = master_opts(o);
  if (!mo) return fail(mo.error());
  std::optional<SecretKey> skey;
  if (!o.sign_key.empty()) {
    auto k = load_secret_key(o.sign_key);
    if (!k) return fail(k.error());
    skey = *k;
    mo->sign_key = &*skey;
  }
  auto it = subcommand_table().find(name);
  if (it == subcommand_table().end()) return static_cast<int>(Exit::Usage);
  Ctx c{o, share, *mo};
  return it->second(c);
}

}  // namespace

int install_main(int argc, char** argv) {
  program() = "nfsup-install";
  CLI::App app{"nfsup-install: stage releases on a shared export and switch every host to them"};
  app.require_subcommand(1);
  app.fallthrough();
  add_version_flag(app, true);
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "only errors");
  app.add_flag("-v,--verbose", verbose, "more detail");
  std::string log_file;
  app.add_option("--log", log_file, "append what this run does to FILE (local disk): start, reports, exit code");
  Opts o;
  Cli cli = add_subcommands(app, o);

  bool done = false;
  int pc = parse_or_exit(app, argc, argv, &done);
  if (done) return pc;
  const std::string name = app.get_subcommands().at(0)->get_name();
  if (!log_file.empty()) {
    if (auto s = MasterLog::get().open(log_file, name, argc, argv); !s) return fail(s.error());
    report_tap = [](LogLevel l, const std::string& m) {
      MasterLog::get().line(fmt::format("{}{}", l == LogLevel::Error ? "error: " : l == LogLevel::Warn ? "warning: " : "", m));
    };
  }
  o.max_failures_given = cli.push->count("--max-failures") > 0;
  verbosity = quiet ? -1 : verbose ? 1 : 0;
  for (auto* opt : cli.rolling_only)
    if (opt->count() > 0) o.rolling_given.push_back(opt->get_name());
  while (o.share.size() > 1 && o.share.back() == '/') o.share.pop_back();
  return run_subcommand(name, o);
}

// --log: the end line comes after every return path of install_main.
int main(int argc, char** argv) {
  int rc = install_main(argc, argv);
  MasterLog::get().end(rc);
  return rc;
}
