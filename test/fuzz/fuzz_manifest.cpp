// libFuzzer target: unpack_manifest() (share.h): releases/<v>/.nfsup/manifest (paths, modes, sizes, symlink targets).
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_manifest(nfsup_fuzz::as_text(data, size));
  return 0;
}
