// nfsup core: what a host trusts — signed manifests, signed rollbacks, expiry.
//
// releases/<v>/.nfsup/manifest.sig holds one `sig <key-id> <hex>` line per signer over the
// manifest's exact bytes. A host with trusted keys starts a release only if at least one
// signature verifies with a trusted key that is not revoked, and the manifest has not expired.
// Going back to a version older than the newest it ever accepted needs a `current` pointer with
// action rollback signed by a trusted key (TUF's rollback attack); a pointer whose generation is
// older than one already seen is refused (replay/freeze).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "crypto.h"
#include "share.h"

namespace nfsup {

struct TrustPolicy {
  std::vector<PublicKey> trusted;
  std::set<std::string> revoked;   ///< key ids
  bool allow_unsigned = true;
  bool signed_mode() const { return !allow_unsigned; }
};

std::string pack_signature_file(const std::vector<std::pair<std::string, std::string>>& sigs);
Result<std::vector<std::pair<std::string, std::string>>> unpack_signature_file(std::string_view text,
                                                                              std::string_view what);

/// The bytes a pointer signature covers: the pointer packed without its sig lines.
std::string pointer_signing_text(const Pointer& p);

/// "" if the release may be started under `policy` at unix time `now`, else why not.
Result<std::string> check_release_trust(Share& share, const std::string& version, const TrustPolicy& policy,
                                        int64_t now_unix);
/// The same for manifest bytes `text` already read (what is checked is what the caller uses).
Result<std::string> check_manifest_trust(Share& share, const std::string& version, const std::string& text,
                                         const TrustPolicy& policy, int64_t now_unix);
bool pointer_signed_by_trusted(const Pointer& p, const TrustPolicy& policy);
/// "" if a trusted, unrevoked key signed marker `m` (as read: its sigs over its signed_bytes),
/// else who signed it ("no signatures", "signed by <id> (not trusted)"). A signed host ignores
/// a marker that is not: anyone who can write to the share could otherwise stop the fleet.
std::string marker_trust_problem(const Marker& m, const TrustPolicy& policy);
/// The key ids a host under `policy` trusts (revoked ones left out), reported in its status.
std::vector<std::string> trusted_key_ids(const TrustPolicy& policy);
/// Why a master signing with `key` (null: none) must not switch live hosts `live`: a host in
/// signed mode ignores a marker its keys did not sign. "" when every such host would act.
std::string signer_refusal(const std::vector<HostStatus>& live, const SecretKey* key);

/// Makes `dst` (a local directory) a copy of the run tree of `version` for class `cls` that
/// holds exactly the bytes its manifest lists: the manifest is read once, its signature and
/// expiry are checked under `policy`, an entry on the share that it does not list fails, and
/// each file is hashed while it is copied (a mismatch fails). A copy already in `dst` made from
/// the same manifest bytes and class (recorded in `dst`.verified) is kept. Returns "" when
/// `dst` is ready to run, else why not (an integrity problem); errors are share or local trouble.
/// With `store` (a LocalStore root), the files of `dst` are hard links into that store and only
/// the objects it lacks are read from the share (LocalStore::fetch); `stats` says what was read.
Result<std::string> make_verified_copy(Share& share, const std::string& version, const std::string& cls,
                                       const TrustPolicy& policy, int64_t now_unix, const std::string& dst,
                                       const std::string& store = "", StoreStats* stats = nullptr);
/// Whether `dst` holds a finished verified copy for class `cls` (made by make_verified_copy).
bool verified_copy_ready(const std::string& dst, const std::string& cls);

/// Signs releases/<v>'s manifest text; returns the signature file content.
Result<std::string> sign_manifest_text(const SecretKey& key, std::string_view manifest_text);

}  // namespace nfsup
