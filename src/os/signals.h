// nfsup os: signal dispositions for the tools (the watchdog's self-pipe is in procs.h).
#pragma once

#include <initializer_list>

namespace nfsup {

/// Installs `handler` (SA_RESTART, nothing masked) for each of `sigs`, except a signal that is
/// ignored now (nohup, a background job of a script): that one stays ignored.
void catch_signals(std::initializer_list<int> sigs, void (*handler)(int));

}  // namespace nfsup
