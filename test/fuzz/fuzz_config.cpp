// libFuzzer target: parse_watchdog_config() (config.h): the watchdog's YAML configuration.
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_config(nfsup_fuzz::as_text(data, size));
  return 0;
}
