// nfsup master: the master's basics: notes, signals, the marker it holds, the pointer it signs, the server's clock.
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

bool SwitchReport::all_ok() const {
  if (!dependency_problems.empty()) return false;
  for (const auto& h : hosts)
    if (h.outcome != "ok" && h.outcome != "stale" && h.outcome != "vetoed") return false;
  return true;
}

void note(const MasterOptions& o, const std::string& s) {
  if (o.note) o.note(s);
}

// The signal the caller's handler recorded (0: none). Every wait of the master checks it.
int interrupted(const MasterOptions& o) { return o.interrupt ? o.interrupt->load() : 0; }

Error interrupted_error(const MasterOptions& o, const std::string& what) {
  int sig = interrupted(o);
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
  return err(Exit::Interrupted, fmt::format("interrupted ({}): {}", name, what));
}

// Removes this master's marker on the way out. A failure is said: hosts then resume only
// when its lease lapses, or at `abort`.
void release_marker(Share& share, const MasterOptions& opt) {
  if (auto u = share.fs().unlink(share.marker_path()); !u)
    note(opt, fmt::format("could not remove the marker: {}; hosts resume when its lease lapses", u.error().msg));
}

std::string random_nonce() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

// A marker held by this process: the master's identity, a fresh nonce, the lease.
Marker make_marker(int64_t generation, const std::string& action, const std::string& release,
                          const std::string& previous, const MasterOptions& opt) {
  Marker m;
  m.generation = generation;
  m.action = action;
  m.release = release;
  m.previous = previous;
  m.master_host = short_hostname();
  m.master_pid = self_pid();
  m.nonce = random_nonce();
  m.lease_ms = opt.lease_ms;
  m.started = utc_now_iso();
  m.signer = opt.sign_key;  // every write of this marker is signed when the master has a key
  return m;
}

// The clock probe is a throw-away file with a per-process name: one left behind (the unlink
// failed) is harmless and the next prune's sweep does not need it; nothing to tell the operator.
static void discard_probe(Share& share, const std::string& probe) {
  if (auto u = share.fs().unlink(probe); !u) return;
}

Result<bool> write_marker(Share& share, const Marker& m, MarkerWrite how) {
  if (how == MarkerWrite::Create) return share.fs().publish_new(share.marker_path(), pack_marker(m), 0644);
  if (auto s = share.fs().write_atomic(share.marker_path(), pack_marker(m), 0644); !s) return s.error();
  return true;
}

Status rewrite_marker(Share& share, const Marker& m) {
  auto w = write_marker(share, m, MarkerWrite::Replace);
  if (!w) return w.error();
  return ok_status();
}

void audit_or_say(Share& share, const MasterOptions& opt, const std::string& action, const std::string& detail,
                  const std::string& result) {
  if (auto s = share.audit(action, detail, result); !s)
    note(opt, fmt::format("the audit log was not written ({} {}: {}): {}", action, result, detail, s.error().msg));
}

void record_rollout(Share& share, const RolloutState& rs, const MasterOptions& opt) {
  if (auto s = write_rollout(share, rs); !s)
    note(opt, fmt::format("{}/state was not written (phase {}): {}", share.root(), rs.phase, s.error().msg));
}

int64_t server_now_ms(Share& share) {
  std::string probe = path_join(share.root(), fmt::format(".clock.{}.{}", short_hostname(), self_pid()));
  auto w = share.fs().write_atomic(probe, "clock\n", 0644);
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (w) {
    auto st = share.fs().stat(probe);
    if (st && *st) now = (*st)->mtime_ms;
    discard_probe(share, probe);
  }
  return now;
}

Status init_share(Share& share) { return share.init(); }


// Signs the pointer when the master has a key (hosts need a signed pointer to go back).
Status write_pointer(Share& share, Pointer p, const MasterOptions& opt) {
  p.sigs.clear();
  if (opt.sign_key) {
    auto sig = sign_data(*opt.sign_key, pointer_signing_text(p));
    if (!sig) return sig.error();
    p.sigs.emplace_back(opt.sign_key->id, *sig);
  }
  return share.fs().write_atomic(share.pointer_path(), pack_pointer(p), 0644);
}

}  // namespace nfsup
