// trust.h: markers signed by the master's key, checked by signed hosts; the master's refusal to
// switch signed hosts it cannot sign for.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>

#include "crypto.h"
#include "share.h"
#include "trust.h"

using namespace nfsup;

namespace {

struct Keys {
  std::string dir;
  SecretKey fleet_sk, other_sk;
  PublicKey fleet, other;
  Keys() {
    char tmpl[] = "/tmp/nfsup-marker-trust.XXXXXX";
    dir = mkdtemp(tmpl);
    REQUIRE(generate_keypair(dir, "fleet"));
    REQUIRE(generate_keypair(dir, "other"));
    fleet_sk = *load_secret_key(dir + "/fleet.key");
    other_sk = *load_secret_key(dir + "/other.key");
    fleet = *load_public_key(dir + "/fleet.pub");
    other = *load_public_key(dir + "/other.pub");
  }
  ~Keys() { std::filesystem::remove_all(dir); }
};

Marker marker() {
  Marker m;
  m.generation = 7;
  m.release = "2.0";
  m.previous = "1.0";
  m.master_host = "master";
  m.master_pid = 42;
  m.nonce = "0123456789abcdef";
  m.lease_ms = 30000;
  m.renewal = 3;
  return m;
}

std::string problem(const std::string& text, const TrustPolicy& policy) {
  auto m = unpack_marker(text, "/share/MARKER");
  REQUIRE(m);
  return marker_trust_problem(*m, policy);
}

}  // namespace

TEST_CASE("marker trust: a marker the master signed is trusted; any change to it is not") {
  Keys k;
  TrustPolicy policy;
  policy.trusted = {k.fleet};
  policy.allow_unsigned = false;
  Marker m = marker();
  m.signer = &k.fleet_sk;
  std::string text = pack_marker(m);
  CHECK(text.find("\nsig " + k.fleet.id + " ") != std::string::npos);
  CHECK(problem(text, policy) == "");
  // Every field is covered, the lease's renewal and the nonce included.
  for (auto [from, to] : {std::pair{"renewal 3", "renewal 4"}, {"nonce 0123456789abcdef", "nonce 0123456789abcdee"},
                          {"lease_ms 30000", "lease_ms 90000"}, {"generation 7", "generation 8"}}) {
    std::string t = text;
    t.replace(t.find(from), std::string(from).size(), to);
    CHECK(problem(t, policy) == "signed by " + k.fleet.id + " (bad signature)");
  }
  // A line added before the signature (a newer master's field, or a forger's) is covered too.
  std::string added = text;
  added.insert(added.find("\nsig ") + 1, "phase vote\n");
  CHECK(problem(added, policy).find("(bad signature)") != std::string::npos);
  // Re-packing without a signer drops the signature.
  m.signer = nullptr;
  CHECK(problem(pack_marker(m), policy) == "no signatures");
}

TEST_CASE("marker trust: unsigned, untrusted and revoked signers are refused") {
  Keys k;
  TrustPolicy policy;
  policy.trusted = {k.fleet};
  policy.allow_unsigned = false;
  Marker m = marker();
  m.signer = &k.other_sk;
  CHECK(problem(pack_marker(m), policy) == "signed by " + k.other.id + " (not trusted)");
  m.signer = &k.fleet_sk;
  policy.revoked = {k.fleet.id};
  CHECK(problem(pack_marker(m), policy) == "signed by " + k.fleet.id + " (revoked)");
  CHECK(trusted_key_ids(policy).empty());
  policy.revoked.clear();
  CHECK(trusted_key_ids(policy) == std::vector<std::string>{k.fleet.id});
  // A malformed sig line makes the marker malformed (it stops nothing either way).
  std::string text = pack_marker(m) + "sig 0123 abc\n";
  CHECK(!unpack_marker(text, "/share/MARKER"));
}

TEST_CASE("marker trust: the master refuses to switch signed hosts it cannot sign for") {
  Keys k;
  HostStatus plain, s1, s2;
  plain.host = "u1";
  plain.trust = "unsigned";
  s1.host = "s1";
  s1.trust = "signed";
  s1.keys = {k.fleet.id};
  s2.host = "s2";
  s2.trust = "signed";  // an older watchdog: its keys are not reported
  CHECK(signer_refusal({plain}, nullptr) == "");
  CHECK(signer_refusal({plain, s1, s2}, nullptr).find("host(s) s1, s2 run in signed mode") == 0);
  CHECK(signer_refusal({plain, s1, s2}, &k.fleet_sk) == "");
  CHECK(signer_refusal({plain, s1, s2}, &k.other_sk).find("host(s) s1 do not trust key " + k.other.id) == 0);
  // The keys a host reports survive its status file.
  s1.state = "running";
  s1.heartbeat = 1;
  auto back = unpack_status(pack_status(s1), "/share/hosts/s1/status");
  REQUIRE(back);
  CHECK(back->keys == s1.keys);
}
