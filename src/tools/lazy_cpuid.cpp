// Static builds only (-Dstatic_tools=true, linked with -Wl,--wrap=OPENSSL_cpuid_setup).
//
// A static libcrypto runs OPENSSL_cpuid_setup from the .init section of every program that links
// it, before main: a dozen CPUID instructions, each a trap to the hypervisor on a virtual machine
// (~65 us per process measured on the bench VM, 6% of a cron tick whose work never touches
// OpenSSL). The wrapper skips that one call, made before any constructor of ours has run; every
// later call goes through. OpenSSL calls the function again from OPENSSL_init_crypto, which each
// EVP entry point used by hash.cpp and crypto.cpp runs first, so the capability vector is filled
// before the first digest or signature (OPENSSL_ia32cap in the environment is still honoured).
// Until then OPENSSL_ia32cap_P is zero, which only ever selects the generic code paths.
#include <atomic>

extern "C" void __real_OPENSSL_cpuid_setup();

namespace {
std::atomic<bool> constructors_ran{false};
__attribute__((constructor)) void mark_constructors_ran() { constructors_ran.store(true); }
}  // namespace

extern "C" void __wrap_OPENSSL_cpuid_setup() {
  if (constructors_ran.load()) __real_OPENSSL_cpuid_setup();
}
