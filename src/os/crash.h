// nfsup os: crash and stall points for the crash-safety tests and the fleet simulator.
#pragma once

namespace nfsup {

/// Test-only fault points: when env NFSUP_CRASH_AT equals `point`, the process kills itself
/// with SIGKILL right there. Used by the crash-safety tests to stop a command between steps.
void crash_point(const char* point);
/// Test-only stall points: when env NFSUP_STOP_AT equals `point`, the process stops itself
/// (SIGSTOP) there until a SIGCONT, to test what another master does meanwhile.
void stop_point(const char* point);
/// The in-process fleet simulator (test/sim) replaces both: crash (may throw to end the
/// simulated master there) and stop (may run another party before returning). Null = env.
struct FaultHooks {
  void (*crash)(void* ctx, const char* point) = nullptr;
  void (*stop)(void* ctx, const char* point) = nullptr;
  void* ctx = nullptr;
};
void set_fault_hooks(const FaultHooks& h);

}  // namespace nfsup
