// nfsup master: prune: deletes old releases and unlinked objects.
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

// A release tree that prune renamed out of sight may not be removable at once: on NFS, deleting a
// file that a process on the pruning client still has open silly-renames it to .nfsXXXX until
// its last close, so the directory stays non-empty. Every later prune finishes such trees.
void sweep_deleting(Share& share, PruneReport& rep) {
  auto l = share.fs().list_dir(share.releases_dir());
  if (!l) return;
  for (const auto& e : *l) {
    if (e.type != FileInfo::Dir || !starts_with(e.name, ".deleting-")) continue;
    if (remove_tree(path_join(share.releases_dir(), e.name))) rep.leftovers_removed.push_back(e.name);
    else rep.leftovers_kept.push_back(e.name);
  }
}

namespace {

using Reasons = std::map<std::string, std::string>;  // release -> why it is kept

// The newest `keep`, the pointer's release, its previous, its overrides and the rollback target.
void keep_by_pointer(const std::vector<std::string>& rels, const std::optional<Pointer>& ptr, int keep, Reasons& why) {
  for (size_t i = 0; i < rels.size(); ++i)
    if (static_cast<int>(rels.size() - i) <= keep) why[rels[i]] = "newest";
  if (!ptr) return;
  why[ptr->release] = "current";
  if (!ptr->previous.empty()) why[ptr->previous] = "previous";
  for (const auto& [h, v] : ptr->overrides) why[v] = "assigned to " + h;
  std::string below;
  for (const auto& v : rels)
    if (compare_versions(v, ptr->release) < 0) below = v;
  if (!below.empty()) why[below] = "rollback target";
}

// Any host that reports a release, live or not: a silent host may still be running it.
Status keep_by_hosts(Share& share, Reasons& why) {
  auto hosts = share.list_hosts();
  if (!hosts) return hosts.error();
  for (const auto& h : *hosts) {
    auto s = share.read_status(h);
    if (!s) return err(Exit::Integrity, s.error().msg + " (prune needs every host's status)");
    if (*s && !(*s)->running.empty()) why[(*s)->running] = "runs on " + h;
    if (*s && !(*s)->runs_from.empty()) why[(*s)->runs_from] = "agent on " + h + " runs from it";
  }
  return ok_status();
}

// Out of sight first (one rename), then the tree.
Status delete_release(Share& share, const std::string& v, const MasterOptions& opt) {
  std::string gone = path_join(share.releases_dir(), fmt::format(".deleting-{}.{}.{}", v, short_hostname(), self_pid()));
  if (auto s = share.fs().rename(share.release_dir(v), gone); !s) return s;
  audit_or_say(share, opt, "prune", v, "ok");
  if (auto s = remove_tree(share.fs(), gone); !s) note(opt, s.error().msg);
  return ok_status();
}

// Objects whose only link is the store itself.
Status remove_unlinked_objects(Share& share, PruneReport& rep) {
  auto dirs = share.fs().list_dir(share.objects_dir());
  if (!dirs) return dirs.error();
  for (const auto& d : *dirs) {
    if (d.type != FileInfo::Dir) continue;
    std::string sub = path_join(share.objects_dir(), d.name);
    auto files = share.fs().list_dir(sub);
    if (!files) continue;
    for (const auto& f : *files) {
      if (f.type != FileInfo::File || f.name[0] == '.') continue;
      auto st = share.fs().stat(path_join(sub, f.name));
      if (!st || !*st || (*st)->nlink != 1) continue;
      if (auto u = share.fs().unlink(path_join(sub, f.name)); u && *u) {
        ++rep.objects_removed;
        rep.bytes_freed += (*st)->size;
      }
    }
  }
  return ok_status();
}

}  // namespace

Result<PruneReport> prune(Share& share, int keep, bool dry_run, const MasterOptions& opt) {
  if (auto s = share.check(); !s) return s.error();
  if (keep < 1) return err(Exit::Usage, "--keep must be at least 1");
  PruneReport rep;
  auto m = share.read_marker();
  if (!m) return m.error();
  if (*m) return err(Exit::Busy, "a push is in progress; prune later");
  auto rels = share.list_releases();
  if (!rels) return rels.error();
  auto ptr = share.read_pointer();
  if (!ptr) return ptr.error();
  Reasons why;
  keep_by_pointer(*rels, *ptr, keep, why);
  if (auto s = keep_by_hosts(share, why); !s) return s.error();
  for (const auto& v : *rels) {
    if (why.count(v)) {
      rep.kept.push_back(fmt::format("{} ({})", v, why[v]));
      continue;
    }
    rep.deleted.push_back(v);
    if (dry_run) continue;
    if (auto s = delete_release(share, v, opt); !s) return s.error();
  }
  if (dry_run) return rep;
  sweep_deleting(share, rep);
  if (auto s = remove_unlinked_objects(share, rep); !s) return s.error();
  return rep;
}

}  // namespace nfsup
