// nfsup os: the spawner, a small process forked at start-up, before any file on the share
// is open, that starts the watchdog's children.
//
// Why: a child forked by the watchdog gets a copy of its file table, and exec closes the
// copies of its close-on-exec files. Closing a file on NFS opened for writing, or any file on
// FUSE, flushes it through the server: while the share hangs and the share thread is stuck
// with a file open, the new agent hangs in exec, and so does whoever reads its /proc entry.
// Children started by the spawner get the spawner's file table, which never held a file of
// the share. They are still the watchdog's children (clone with CLONE_PARENT), so waitpid,
// SIGCHLD and process groups work as before.
#pragma once

#include <optional>

#include "procs.h"

namespace nfsup {

/// Forks the spawner (once; the caller must not hold a file of the share yet). False if it
/// could not: spawn() and run_with_timeout() then start children themselves.
bool start_spawner();
/// Ends the spawner (tests); children it started are unaffected.
void stop_spawner();

/// How the spawner starts a child: a child of the caller whose exec errors are reported
/// (Child), one whose exec errors go to its output and exit code 127 (Run), or the grandchild
/// of a double fork, adopted by init (Detach).
enum class SpawnMode { Child, Run, Detach };

/// Starts `spec` through the spawner, with out_fd (if >= 0) as its stdout and stderr.
/// nullopt when no spawner runs (or it stopped answering): the caller starts it itself.
std::optional<Result<pid_t>> spawn_via_spawner(const SpawnSpec& spec, SpawnMode mode, int out_fd);

/// In a new child: signals reset, session, stdio, directory, environment, then exec. On a
/// failed chdir or exec, writes errno to err_fd (if >= 0), says why on stderr, exits 127.
[[noreturn]] void exec_child(const SpawnSpec& spec, int out_fd, int err_fd);

/// The double fork of a detached process (a cron tick's agent outlives the tick): the
/// grandchild, in a session and group of its own, adopted by init. Its pid, or -1 with *err
/// the errno of the failed fork (EAGAIN: the middle process reported no grandchild). The one
/// implementation, used in the spawner and by spawn() when no spawner runs.
pid_t start_detached_process(const SpawnSpec& spec, int out_fd, int* err);

}  // namespace nfsup
