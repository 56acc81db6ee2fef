// libFuzzer target: unpack_record() (record.h): the line-record format of every file on the share, plus encode_token/decode_token and parse_i64.
// Properties: fuzz_checks.h. Build and run: scripts/fuzz.sh [seconds-per-target].
#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nfsup_fuzz::check_record(nfsup_fuzz::as_text(data, size));
  return 0;
}
