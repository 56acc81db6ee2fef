// nfsup master: status, verify and the dependency check.
#include "internal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "hash.h"
#include "process.h"
#include "reconfig.h"
#include "trust.h"

namespace nfsup {

namespace {

struct Running {
  std::string host;
  std::vector<ModuleInfo> mods;
};
using Providers = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;  // api -> (version, host)

// The modules each live host runs (its release's modules for its class); hosts whose release
// declares none are left out.
Result<std::vector<Running>> running_modules(Share& share, int64_t stale_after_ms) {
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  int64_t now = server_now_ms(share);
  std::map<std::string, std::optional<Manifest>> cache;
  std::vector<Running> fleet;
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s || !*s || (*s)->running.empty() || now - (*s)->mtime_ms > stale_after_ms) continue;
    const std::string& v = (*s)->running;
    if (!cache.count(v)) {
      auto m = share.read_manifest(v);
      cache[v] = m ? *m : std::nullopt;
    }
    if (!cache[v] || cache[v]->modules.empty()) continue;
    const Manifest& man = *cache[v];
    const ClassInfo* c = nullptr;
    for (const auto& ci : man.classes)
      if (ci.name == (*s)->cls) c = &ci;
    Running r{h, {}};
    for (const auto* mod : man.modules_for(c)) r.mods.push_back(*mod);
    fleet.push_back(std::move(r));
  }
  return fleet;
}

// Module dependencies inside one host.
void check_depends(const Running& r, const ModuleInfo& m, std::vector<std::string>& out) {
  for (const auto& [dep, minv] : m.depends) {
    const std::string& want = dep;  // (clang before 16 cannot capture a structured binding)
    auto it = std::find_if(r.mods.begin(), r.mods.end(), [&](auto& x) { return x.name == want; });
    if (it == r.mods.end())
      out.push_back(fmt::format("{}: module {} needs module {} >= {}, which this host does not run", r.host, m.name,
                                dep, minv));
    else if (compare_versions(it->version, minv) < 0)
      out.push_back(fmt::format("{}: module {} needs module {} >= {}, this host runs {}", r.host, m.name, dep, minv,
                                it->version));
  }
}

// APIs a module consumes, against what live hosts provide.
void check_consumes(const Running& r, const ModuleInfo& m, Providers& providers, std::vector<std::string>& out) {
  for (const auto& [api, minv] : m.consumes) {
    bool ok = false;
    std::string best;
    for (const auto& [v, h] : providers[api]) {
      if (compare_versions(v, minv) >= 0) ok = true;
      if (best.empty() || compare_versions(v, best) > 0) best = v;
    }
    if (!ok)
      out.push_back(fmt::format("{}: module {} consumes API {} >= {}, but {}", r.host, m.name, api, minv,
                                best.empty() ? "no live host provides it"
                                             : fmt::format("live hosts provide only {}", best)));
  }
}

}  // namespace

Result<std::vector<std::string>> check_dependencies(Share& share, int64_t stale_after_ms) {
  auto fleet = running_modules(share, stale_after_ms);
  if (!fleet) return fleet.error();
  Providers providers;
  for (const auto& r : *fleet)
    for (const auto& m : r.mods)
      for (const auto& [api, v] : m.provides) providers[api].push_back({v, r.host});
  std::vector<std::string> out;
  for (const auto& r : *fleet)
    for (const auto& m : r.mods) {
      check_depends(r, m, out);
      check_consumes(r, m, providers, out);
    }
  return out;
}

Result<StatusReport> share_status(Share& share, int64_t stale_after_ms) {
  if (auto s = share.check(); !s) return s.error();
  StatusReport rep;
  auto ro = read_rollout(share);
  if (!ro) rep.warnings.push_back(ro.error().msg);
  else rep.rollout = *ro;
  auto p = share.read_pointer();
  if (!p) rep.warnings.push_back(p.error().msg);
  else rep.pointer = *p;
  auto m = share.read_marker();
  if (!m) rep.warnings.push_back(m.error().msg);
  else rep.marker = *m;
  auto r = share.list_releases();
  if (!r) return r.error();
  rep.releases = *r;
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  int64_t now = server_now_ms(share);
  if (auto deps = check_dependencies(share, stale_after_ms); deps) rep.dependency_problems = *deps;
  for (const auto& h : *hosts) {
    HostView v;
    v.host = h;
    auto s = share.read_status(h);
    if (!s) {
      v.error = s.error().msg;
      v.stale = true;
    } else if (*s) {
      v.status = **s;
      v.age_ms = std::max<int64_t>(0, now - (*s)->mtime_ms);
      v.stale = v.age_ms > stale_after_ms;
    } else {
      continue;
    }
    rep.hosts.push_back(std::move(v));
  }
  return rep;
}
Result<VerifyReport> verify_share(Share& share) {
  if (auto s = share.check(); !s) return s.error();
  VerifyReport rep;
  auto r = share.list_releases();
  if (!r) return r.error();
  for (const auto& v : *r) {
    rep.checked.push_back(v);
    auto p = share.verify_release(v);
    if (!p) {
      rep.problems[v].push_back(p.error().msg);
      continue;
    }
    if (!p->empty()) rep.problems[v] = *p;
  }
  auto ptr = share.read_pointer();
  if (!ptr) {
    rep.problems["current"].push_back(ptr.error().msg);
  } else if (*ptr && std::find(r->begin(), r->end(), (*ptr)->release) == r->end()) {
    rep.problems["current"].push_back(fmt::format("{}: names release {} which is not on the share",
                                                  share.pointer_path(), (*ptr)->release));
  }
  auto l = share.fs().list_dir(share.releases_dir());
  if (l)
    for (const auto& e : *l)
      if (starts_with(e.name, ".staging-"))
        rep.warnings.push_back(fmt::format("{}: unfinished staging (not a release); 'abort' removes it",
                                           path_join(share.releases_dir(), e.name)));
  return rep;
}

}  // namespace nfsup
