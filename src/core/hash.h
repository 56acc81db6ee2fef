// nfsup core: SHA-256 through OpenSSL's EVP interface (uses the CPU's SHA extensions).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util.h"

namespace nfsup {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  std::string hex();  ///< finishes; 64 lowercase hex digits

 private:
  void* ctx_;
};

std::string sha256_hex(std::string_view data);

/// Hashes a whole file. With `dest_fd` >= 0 the bytes are also written there (hash while copying).
struct HashedFile {
  std::string sha256;
  uint64_t size = 0;
};
Result<HashedFile> hash_file(const std::string& path, int dest_fd = -1, const std::string& dest_name = "");

/// Counts the chunks hash_file has read, in every thread: a caller waiting on a long
/// verification or copy tells "slow but moving" from "hung" by watching it move.
extern std::atomic<uint64_t> g_read_progress;

bool is_sha256_hex(std::string_view s);

}  // namespace nfsup
