// nfsup core: moved to src/os/files.h (file system) and src/os/crash.h (crash points); this
// header stays until src/master and src/host include those directly.
#pragma once

#include "os/crash.h"
#include "os/files.h"
