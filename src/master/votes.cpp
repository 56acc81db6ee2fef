// nfsup master: the vote round before a switch.
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

// One vote round: the marker (phase vote, naming `hosts`) is up; every named host runs its
// checks and answers for the marker's generation. Ends when all have answered or at
// --vote-timeout; applies the operator's policy to vetoes and silence. Returns the hosts that
// go on (vetoed ones are added to rep with outcome "vetoed" under --skip-vetoed); on a veto
// that stands, removes the marker and fails with Exit::Vetoed: nobody has stopped yet.
Result<std::vector<std::string>> vote_round(Share& share, Marker& m, const std::vector<std::string>& hosts,
                                                   int64_t min_poll_ms, const MasterOptions& opt, SwitchReport& rep,
                                                   const std::string& what) {
  std::map<std::string, Vote> got;
  std::set<std::string> old_format;  // hosts whose vote for this generation does not name the switch
  int64_t until = boot_ms() + opt.vote_timeout_ms, last_renew = boot_ms();
  while (got.size() < hosts.size() && boot_ms() < until) {
    if (interrupted(opt)) {
      release_marker(share, opt);
      audit_or_say(share, opt, m.action, fmt::format("{} interrupted during the vote", what), "interrupted");
      return interrupted_error(opt, fmt::format("the {} of {} backed out during the vote, before any host stopped; "
                                                "the marker is removed",
                                                m.action, m.release));
    }
    for (const auto& h : hosts) {
      if (got.count(h)) continue;
      auto v = share.read_vote(h);
      if (!v || !*v) continue;
      if ((*v)->answers(m)) got[h] = **v;
      else if ((*v)->version < 2 && (*v)->generation == m.generation) old_format.insert(h);
    }
    if (got.size() == hosts.size()) break;
    if (auto s = renew_lease(share, m, last_renew); !s) return s.error();
    sleep_ms(master_pace_ms(min_poll_ms, 0, opt, 0, 0));
  }
  std::vector<std::string> accepted, vetoes;
  for (const auto& h : hosts) {
    auto it = got.find(h);
    if (it == got.end()) {
      if (opt.assume_accept) accepted.push_back(h);
      else if (old_format.count(h))
        vetoes.push_back(fmt::format("{}: answered with a vote of format 1 (an nfsup-watchdog older than this master), "
                                     "which does not name the switch it answers and is not counted; upgrade it "
                                     "(nfsup-share(5)) or pass --assume-accept",
                                     h));
      else vetoes.push_back(fmt::format("{}: did not vote within {}", h, format_duration_ms(opt.vote_timeout_ms)));
    } else if (it->second.accept) {
      accepted.push_back(h);
    } else {
      vetoes.push_back(fmt::format("{}: {}", h, printable(it->second.reason)));
    }
  }
  if (vetoes.empty()) return accepted;
  if (opt.force) {
    note(opt, fmt::format("--force: overriding vetoes: {}", join(vetoes, "; ")));
    audit_or_say(share, opt, m.action, fmt::format("forced over vetoes: {}", join(vetoes, "; ")), "forced");
    return hosts;
  }
  if (!opt.skip_vetoed || accepted.empty()) {
    release_marker(share, opt);
    audit_or_say(share, opt, m.action, fmt::format("{} vetoed: {}", what, join(vetoes, "; ")), "vetoed");
    return err(Exit::Vetoed, fmt::format("{} of {} vetoed before any host stopped:\n  {}", m.action, m.release,
                                         join(vetoes, "\n  ")));
  }
  note(opt, fmt::format("skipping vetoed hosts: {}", join(vetoes, "; ")));
  for (const auto& v : vetoes) rep.hosts.push_back({v.substr(0, v.find(':')), "vetoed", v.substr(v.find(':') + 2)});
  return accepted;
}

}  // namespace nfsup
