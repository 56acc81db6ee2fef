// nfsup os: signal dispositions for the tools.
#include "signals.h"

#include <signal.h>

namespace nfsup {

void catch_signals(std::initializer_list<int> sigs, void (*handler)(int)) {
  for (int sig : sigs) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace nfsup
