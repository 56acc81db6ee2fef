// nfsup os: crash and stall points (test-only; the environment or the simulator's hooks arm them).
#include "crash.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace nfsup {

namespace {
FaultHooks g_fault_hooks;
}

void set_fault_hooks(const FaultHooks& h) { g_fault_hooks = h; }

void crash_point(const char* point) {
  if (g_fault_hooks.crash) return g_fault_hooks.crash(g_fault_hooks.ctx, point);
  static const char* want = std::getenv("NFSUP_CRASH_AT");
  if (want && std::strcmp(want, point) == 0) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

void stop_point(const char* point) {
  if (g_fault_hooks.stop) return g_fault_hooks.stop(g_fault_hooks.ctx, point);
  static const char* want = std::getenv("NFSUP_STOP_AT");
  if (want && std::strcmp(want, point) == 0) ::raise(SIGSTOP);
}

}  // namespace nfsup
