// libFuzzer target: unpack_marker() (share.h): SHARE/MARKER, read by every watchdog on every poll; the parsed marker also goes through LeaseTracker and decide().
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_marker(nfsup_fuzz::as_text(data, size));
  return 0;
}
