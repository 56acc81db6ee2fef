// nfsup core: moved to src/os/procs.h; this header stays until src/host includes it directly.
#pragma once

#include "os/procs.h"
