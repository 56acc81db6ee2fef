// libFuzzer target: unpack_pointer() (share.h): SHARE/current, the release pointer; the parsed pointer also goes through decide().
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_pointer(nfsup_fuzz::as_text(data, size));
  return 0;
}
