// libFuzzer target: unpack_signature_file() (trust.h): releases/<v>/.nfsup/manifest.sig, and
// verify_data() on every signature it lists.
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_signature(nfsup_fuzz::as_text(data, size));
  return 0;
}
