// nfsup core: Ed25519 through OpenSSL EVP.
#include "crypto.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "fs.h"
#include "hash.h"

namespace nfsup {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string to_hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (size_t i = 0; i < n; ++i) {
    o += d[p[i] >> 4];
    o += d[p[i] & 15];
  }
  return o;
}

bool from_hex(std::string_view h, std::string* out) {
  if (h.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    auto v = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out->push_back(static_cast<char>(a * 16 + b));
  }
  return true;
}

std::string key_id(const std::string& raw) { return sha256_hex(raw).substr(0, 16); }

Result<std::string> raw_public(EVP_PKEY* k, const std::string& path) {
  unsigned char buf[64];
  size_t len = sizeof buf;
  if (EVP_PKEY_get_raw_public_key(k, buf, &len) != 1 || len != 32)
    return err(Exit::Usage, fmt::format("{}: not an Ed25519 key", path));
  return std::string(reinterpret_cast<char*>(buf), len);
}

Result<std::string> read_small(const std::string& path) {
  RealFs fs("key");
  auto t = fs.read_file(path, 64 * 1024);
  if (!t) return err(Exit::Usage, t.error().msg);
  if (!*t) return err(Exit::Usage, fmt::format("{}: no such key file", path));
  return **t;
}

}  // namespace

Result<PublicKey> generate_keypair(const std::string& dir, const std::string& name) {
  if (auto e = check_host_name(name)) return err(Exit::Usage, fmt::format("key name: {}", *e));
  std::string kp = path_join(dir, name + ".key"), pp = path_join(dir, name + ".pub");
  FileInfo st;
  for (const auto& p : {kp, pp})
    if (local_lstat(p, &st) == 0) return err(Exit::Usage, fmt::format("{}: already exists; not overwriting a key", p));
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                   EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return err(Exit::Internal, "Ed25519 key generation failed");
  Pkey k(raw);
  std::unique_ptr<BIO, BioFree> kb(BIO_new(BIO_s_mem())), pb(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(kb.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pb.get(), k.get()) != 1)
    return err(Exit::Internal, "PEM encoding failed");
  auto bio_str = [](BIO* b) {
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    return std::string(p, static_cast<size_t>(n));
  };
  (void)make_dir(dir, 0700);  // (a failure shows at the key's write)
  // The secret key is created 0600 from the start, never widened, and never replaces a file.
  auto w = write_local(kp, bio_str(kb.get()), kWriteSync | kWriteNoReplace, 0600);
  if (!w) return err(Exit::Usage, w.error().msg);
  if (!*w) return err(Exit::Usage, fmt::format("{}: already exists; not overwriting a key", kp));
  RealFs fs("key");
  if (auto s = fs.write_atomic(pp, bio_str(pb.get()), 0644); !s) {
    (void)unlink_path(kp);  // (undoing our own create; the error reported is the write's)
    return s.error();
  }
  auto r = raw_public(k.get(), pp);
  if (!r) return r.error();
  return PublicKey{key_id(*r), *r, pp};
}

Result<SecretKey> load_secret_key(const std::string& path) {
  FileInfo st;
  if (int e = local_stat(path, &st)) return err(Exit::Usage, fmt::format("{}: {}", path, errno_str(e)));
  if (st.mode & 077)
    return err(Exit::Usage, fmt::format("{}: secret key is readable by group or others (mode {:04o}); chmod 600 it",
                                        path, st.mode));
  auto pem = read_small(path);
  if (!pem) return pem.error();
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  Pkey k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k || EVP_PKEY_get_id(k.get()) != EVP_PKEY_ED25519)
    return err(Exit::Usage, fmt::format("{}: not an Ed25519 private key in PEM", path));
  auto r = raw_public(k.get(), path);
  if (!r) return r.error();
  return SecretKey{key_id(*r), *pem, path};
}

Result<PublicKey> load_public_key(const std::string& path) {
  auto pem = read_small(path);
  if (!pem) return pem.error();
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  Pkey k(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  if (!k || EVP_PKEY_get_id(k.get()) != EVP_PKEY_ED25519)
    return err(Exit::Usage, fmt::format("{}: not an Ed25519 public key in PEM", path));
  auto r = raw_public(k.get(), path);
  if (!r) return r.error();
  return PublicKey{key_id(*r), *r, path};
}

Result<std::string> sign_data(const SecretKey& key, std::string_view data) {
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(key.pem.data(), static_cast<int>(key.pem.size())));
  Pkey k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return err(Exit::Usage, fmt::format("{}: cannot load the key", key.path));
  std::unique_ptr<EVP_MD_CTX, MdFree> ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, k.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return err(Exit::Internal, "Ed25519 signing failed");
  return to_hex(sig, len);
}

bool verify_data(const PublicKey& key, std::string_view data, std::string_view sig_hex) {
  std::string sig;
  if (sig_hex.size() != 128 || !from_hex(sig_hex, &sig)) return false;
  Pkey k(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                     reinterpret_cast<const unsigned char*>(key.raw.data()), key.raw.size()));
  if (!k) return false;
  std::unique_ptr<EVP_MD_CTX, MdFree> ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, k.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

}  // namespace nfsup
