// nfsup core: SHA-256 through OpenSSL EVP.
#include "hash.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "fs.h"

namespace nfsup {

Sha256::Sha256() {
  auto* c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha256(), nullptr);
  ctx_ = c;
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex();
}

std::atomic<uint64_t> g_read_progress{0};

Result<HashedFile> hash_file(const std::string& path, int dest_fd, const std::string& dest_name) {
  StallGuard::Section g("read", path);
  // Not through a symlink, not blocking on a FIFO, and only a regular file (checked on the
  // open file, so nothing can be swapped in between the check and the read).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    return err(e == ENOENT || e == ELOOP ? Exit::Integrity : Exit::Share, fmt::format("open({}): {}", path, errno_str(e)));
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return err(Exit::Integrity, fmt::format("{}: not a regular file", path));
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Sha256 h;
  HashedFile out;
  // A buffer the size of the file, up to 1 MiB, not zero-filled: a watchdog verifying a
  // release hashes mostly small files, and zeroing 1 MiB for each (256 fresh pages) was the
  // largest cost of its switch.
  size_t cap = 1 << 20;
  if (st.st_size >= 0 && static_cast<uint64_t>(st.st_size) < cap)
    cap = std::max<size_t>(static_cast<size_t>(st.st_size) + 1, 4096);
  std::unique_ptr<char[]> buf(new char[cap]);
  while (true) {
    ssize_t n = ::read(fd, buf.get(), cap);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return err(Exit::Share, fmt::format("read({}): {}", path, errno_str(e)));
    }
    if (n == 0) break;
    g_read_progress.fetch_add(1, std::memory_order_relaxed);
    h.update(buf.get(), static_cast<size_t>(n));
    out.size += static_cast<uint64_t>(n);
    if (dest_fd >= 0) {
      size_t off = 0;
      while (off < static_cast<size_t>(n)) {
        ssize_t w = ::write(dest_fd, buf.get() + off, static_cast<size_t>(n) - off);
        if (w < 0) {
          if (errno == EINTR) continue;
          int e = errno;
          ::close(fd);
          return err(Exit::Share, fmt::format("write({}): {}", dest_name, errno_str(e)));
        }
        off += static_cast<size_t>(w);
      }
    }
  }
  ::close(fd);
  out.sha256 = h.hex();
  return out;
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace nfsup
