// nfsup host: the watchdog's local state file (internal to the watchdog).
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
#include "process.h"
#include "nfsup_version.h"
#include "reconfig.h"
#include "stage.h"
#include "trust.h"

namespace nfsup {

// ================================================================ local state

namespace wd {

struct LocalState {
  std::string running;
  int64_t agent_pid = 0;
  uint64_t agent_start = 0;
  bool agent_wanted = false;   // command-controlled agents: we started it and did not stop it
  int64_t held_gen = 0;
  int64_t held_since_ms = 0;   // when the marker vanished while the pointer lagged
  int64_t failed_gen = 0;
  std::string reason;
  std::string state = "idle";
  int64_t status_gen = 0;
  int64_t heartbeat = 0;
  int64_t last_status_ms = 0;
  int64_t last_pointer_ms = 0;
  std::string lease_nonce;
  int64_t lease_renewal = -1;
  int64_t lease_changed_ms = 0;
  std::vector<int64_t> crashes;
  bool gave_up = false;
  std::string boot_id;
  std::string cls;             // release class the agent runs ("" = the whole release)
  std::string cached;          // release with a verified local copy in state_dir/cache
  std::string runs_from;       // release whose directory the agent runs from, if not `running`
  int64_t voted_gen = 0;       // marker generation this host has voted on
  std::string voted_nonce;     // and that marker's nonce (a retry under the same generation is a new switch)
  std::string acting;          // acting version last handed to the agent
  std::string previous;        // release before the last switch (health-gate rollback)
  std::string newest;          // newest release this host ever accepted (rollback protection)
  int64_t seen_gen = 0;        // highest pointer generation seen (replay protection)
  std::map<std::string, std::string> modules;  // modules the agent runs, name -> version (status)
  host::Model lc;              // drain/stop/start under way, with its deadline (a cron tick resumes it)
  bool trial = false;          // the agent was started by a switch and has not yet settled
  int64_t restart_at = 0;      // backing off after a crash or a failed start: no restart before this
  std::string published_conf;  // the configuration-derived status fields last published
};

std::string read_boot_id();
std::string pack_local(const LocalState& s);
LocalState unpack_local(const std::string& text, const std::string& path, Logger& log);

}  // namespace wd
}  // namespace nfsup
