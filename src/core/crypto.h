// nfsup core: Ed25519 keys and signatures through OpenSSL's libcrypto EVP interface.
//
// A key pair is two PEM files: NAME.key (PKCS#8, mode 0600, refused if group/world can read
// it) and NAME.pub (SubjectPublicKeyInfo). A key's id is the first 16 hex digits of the SHA-256
// of its raw 32-byte public key. Signatures travel as lowercase hex in record files.
#pragma once

#include <string>
#include <vector>

#include "util.h"

namespace nfsup {

struct PublicKey {
  std::string id;       ///< 16 hex digits
  std::string raw;      ///< 32 bytes
  std::string path;     ///< where it was loaded from, for messages
};

struct SecretKey {
  std::string id;
  std::string pem;      ///< kept in memory only while signing
  std::string path;
};

/// Writes DIR/NAME.key and DIR/NAME.pub; refuses to overwrite either.
Result<PublicKey> generate_keypair(const std::string& dir, const std::string& name);
Result<SecretKey> load_secret_key(const std::string& path);
Result<PublicKey> load_public_key(const std::string& path);

/// Signs `data`; returns 128 hex digits.
Result<std::string> sign_data(const SecretKey& key, std::string_view data);
bool verify_data(const PublicKey& key, std::string_view data, std::string_view sig_hex);

}  // namespace nfsup
