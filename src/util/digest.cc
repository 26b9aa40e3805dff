#include "util/digest.h"

#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <memory>

#include <openssl/evp.h>

namespace rtenv {
namespace {

const EVP_MD* sha256_md() {
  // Fetched once: an implicit fetch per EVP_DigestInit costs a lookup each time.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<Digest> Digest::from_hex(std::string_view hex) {
  if (hex.size() != 2 * kSize) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a SHA-256 digest (expected 64 hex characters, got {})", hex,
                      hex.size());
  }
  Bytes bytes;
  for (size_t i = 0; i < kSize; ++i) {
    int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "'{}' is not a SHA-256 digest (non-hex character)", hex);
    }
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return Digest(bytes);
}

Digest Digest::of(std::string_view data) {
  Bytes out;
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, sha256_md(), nullptr);
  return Digest(out);
}

std::string Digest::hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(2 * kSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    s[2 * i] = kHex[bytes_[i] >> 4];
    s[2 * i + 1] = kHex[bytes_[i] & 15];
  }
  return s;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, sha256_md(), nullptr); }

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t size) { EVP_DigestUpdate(ctx_, data, size); }

Digest Sha256::finish() {
  Digest::Bytes out;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, out.data(), &len);
  EVP_DigestInit_ex(ctx_, sha256_md(), nullptr);
  return Digest(out);
}

Result<Digest> hash_fd(int fd, const std::string& path_for_errors) {
  Sha256 sha;
  static constexpr size_t kBuf = 256 * 1024;
  thread_local std::unique_ptr<char[]> buf(new char[kBuf]);
  for (;;) {
    ssize_t n = ::read(fd, buf.get(), kBuf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, "cannot read {}: {}", path_for_errors,
                        std::strerror(errno));
    }
    if (n == 0) break;
    sha.update(buf.get(), static_cast<size_t>(n));
  }
  return sha.finish();
}

}  // namespace rtenv
