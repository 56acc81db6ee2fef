// nfsup core: trust decisions.
#include "trust.h"

#include <algorithm>
#include <fmt/format.h>

#include "hash.h"
#include "os/files.h"
#include "stage.h"
#include "store.h"

namespace nfsup {

std::string pack_signature_file(const std::vector<std::pair<std::string, std::string>>& sigs) {
  Record r{"signature", kFormatVersion, {}};
  r.add("alg", {"ed25519"});
  for (const auto& [id, sig] : sigs) r.add("sig", {id, sig});
  return pack_record(r);
}

Result<std::vector<std::pair<std::string, std::string>>> unpack_signature_file(std::string_view text,
                                                                              std::string_view what) {
  auto rec = unpack_record(text, "signature", kFormatVersion, what);
  if (!rec) return rec.error();
  RecordReader rd(*rec, std::string(what));
  auto alg = rd.str("alg");
  if (!alg) return alg.error();
  if (*alg != "ed25519") return err(Exit::Integrity, fmt::format("{}: unknown signature algorithm '{}'", what, *alg));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& l : rec->lines) {
    if (l.key != "sig") continue;
    if (l.args.size() != 2 || l.args[0].size() != 16 || l.args[1].size() != 128)
      return rd.bad(l, "sig needs: key-id (16 hex) signature (128 hex)");
    out.emplace_back(l.args[0], l.args[1]);
  }
  return out;
}

std::string pointer_signing_text(const Pointer& p) {
  Pointer bare = p;
  bare.sigs.clear();
  return pack_pointer(bare);
}

static bool any_trusted(const std::vector<std::pair<std::string, std::string>>& sigs, std::string_view data,
                        const TrustPolicy& policy, std::string* who) {
  std::vector<std::string> seen;
  for (const auto& [id, sig] : sigs) {
    bool known = false;
    for (const auto& k : policy.trusted) {
      if (k.id != id) continue;
      known = true;
      if (policy.revoked.count(id)) {
        seen.push_back(id + " (revoked)");
        continue;
      }
      if (verify_data(k, data, sig)) return true;
      seen.push_back(id + " (bad signature)");
    }
    if (!known) seen.push_back(id + (policy.revoked.count(id) ? " (revoked)" : " (not trusted)"));
  }
  *who = seen.empty() ? "no signatures" : "signed by " + join(seen, ", ");
  return false;
}

bool pointer_signed_by_trusted(const Pointer& p, const TrustPolicy& policy) {
  std::string who;
  return any_trusted(p.sigs, pointer_signing_text(p), policy, &who);
}

std::string marker_trust_problem(const Marker& m, const TrustPolicy& policy) {
  std::string who;
  if (any_trusted(m.sigs, m.signed_bytes, policy, &who)) return "";
  return who;
}

std::vector<std::string> trusted_key_ids(const TrustPolicy& policy) {
  std::vector<std::string> out;
  for (const auto& k : policy.trusted)
    if (!policy.revoked.count(k.id)) out.push_back(k.id);
  return out;
}

std::string signer_refusal(const std::vector<HostStatus>& live, const SecretKey* key) {
  std::vector<std::string> keyless, untrusting;
  for (const auto& s : live) {
    if (s.trust != "signed") continue;
    if (!key) keyless.push_back(s.host);
    else if (!s.keys.empty() && std::find(s.keys.begin(), s.keys.end(), key->id) == s.keys.end())
      untrusting.push_back(s.host);
  }
  if (!keyless.empty())
    return fmt::format("host(s) {} run in signed mode (trusted_keys) and ignore an unsigned marker: sign with "
                       "--sign-key",
                       join(keyless, ", "));
  if (!untrusting.empty())
    return fmt::format("host(s) {} do not trust key {} ({}) and would ignore its marker: sign with a key they "
                       "trust (their trusted_keys)",
                       join(untrusting, ", "), key->id, key->path);
  return "";
}

Result<std::string> check_release_trust(Share& share, const std::string& version, const TrustPolicy& policy,
                                        int64_t now_unix) {
  auto text = share.read_manifest_text(version);
  if (!text) return text.error();
  if (!*text) return fmt::format("release {}: manifest missing", version);
  return check_manifest_trust(share, version, **text, policy, now_unix);
}

Result<std::string> check_manifest_trust(Share& share, const std::string& version, const std::string& text,
                                         const TrustPolicy& policy, int64_t now_unix) {
  auto m = unpack_manifest(text, share.manifest_path(version));
  if (!m) return m.error().msg;
  if (m->version != version)
    return fmt::format("{}: manifest is for version '{}', not '{}'", share.manifest_path(version), m->version, version);
  if (m->expires && now_unix > m->expires)
    return fmt::format("release {}: its signed manifest expired at unix time {}", version, m->expires);
  if (!policy.signed_mode()) return std::string();
  auto sigtext = share.fs().read_file(share.manifest_sig_path(version), kSmallFileMax);
  if (!sigtext) return sigtext.error();
  if (!*sigtext) return fmt::format("release {} is not signed ({} missing)", version, share.manifest_sig_path(version));
  auto sigs = unpack_signature_file(**sigtext, share.manifest_sig_path(version));
  if (!sigs) return sigs.error().msg;
  std::string who;
  if (!any_trusted(*sigs, text, policy, &who))
    return fmt::format("release {}: no valid signature by a trusted key ({})", version, who);
  return std::string();
}

// The record kept beside a verified copy: which manifest bytes (SHA-256) and class it holds.
static std::string copy_stamp(const std::string& digest, const std::string& cls) {
  return fmt::format("{} {}\n", digest, cls.empty() ? "-" : cls);
}

static std::string read_small(const std::string& path) { return read_head_nofollow(path, 256); }

bool verified_copy_ready(const std::string& dst, const std::string& cls) {
  std::string stamp = read_small(dst + ".verified");
  FileInfo st;
  return stamp.size() > 64 && stamp.substr(64) == copy_stamp("", cls) && local_lstat(dst, &st) == 0 &&
         st.type == FileInfo::Dir;
}

Result<std::string> make_verified_copy(Share& share, const std::string& version, const std::string& cls,
                                       const TrustPolicy& policy, int64_t now_unix, const std::string& dst,
                                       const std::string& store, StoreStats* stats) {
  auto text = share.read_manifest_text(version);
  if (!text) return text.error();
  if (!*text) return fmt::format("release {}: manifest missing", version);
  auto trust = check_manifest_trust(share, version, **text, policy, now_unix);
  if (!trust || !trust->empty()) return trust;
  auto m = unpack_manifest(**text, share.manifest_path(version));
  if (!m) return m.error().msg;
  std::vector<std::string> problems;
  if (auto st = share.find_unlisted_entries(*m, version, cls, &problems); !st) return st.error();
  if (!problems.empty()) return fmt::format("release {} fails verification: {}", version, problems[0]);
  std::string stamp = copy_stamp(sha256_hex(**text), cls);
  if (read_small(dst + ".verified") == stamp && verified_copy_ready(dst, cls)) return std::string();
  // Made anew: the stamp goes first (a copy without its stamp is never used), then the tree,
  // hashed file by file while it is copied, published by rename, then the stamp.
  (void)unlink_path(dst + ".verified");  // (gone already is fine; a failure shows at the stamp's write)
  std::string tmp = dst + ".tmp";
  (void)remove_tree(tmp);
  (void)remove_tree(dst);
  std::optional<LocalStore> objects;
  if (!store.empty()) objects.emplace(store);
  if (auto st = share.copy_run_tree(*m, cls, tmp, objects ? &*objects : nullptr, stats); !st) {
    (void)remove_tree(tmp);
    if (st.error().code == Exit::Integrity) return fmt::format("release {} fails verification: {}", version, st.error().msg);
    return st.error();
  }
  if (int e = rename_path(tmp, dst); e != 0) {
    (void)remove_tree(tmp);
    return err(Exit::Failed, fmt::format("rename({} -> {}): {}", tmp, dst, errno_str(e)));
  }
  RealFs local("local");
  local.set_durable(false);
  if (auto st = local.write_atomic(dst + ".verified", stamp, 0644); !st) return st.error();
  return std::string();
}

Result<std::string> sign_manifest_text(const SecretKey& key, std::string_view manifest_text) {
  auto sig = sign_data(key, manifest_text);
  if (!sig) return sig.error();
  return pack_signature_file({{key.id, *sig}});
}

}  // namespace nfsup
