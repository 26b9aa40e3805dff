#pragma once
// SHA-256 digests: the identity of every blob, manifest and package in rtenv.

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "util/result.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace rtenv {

/// The value of one hex digit (0-9, a-f, A-F), or -1.
int hex_digit_value(char c);

/// A SHA-256 digest. A value type: always 32 bytes, valid by construction.
class Digest {
 public:
  static constexpr size_t kSize = 32;
  using Bytes = std::array<uint8_t, kSize>;

  Digest() : bytes_{} {}
  explicit Digest(const Bytes& bytes) : bytes_(bytes) {}

  /// Parses 64 lowercase or uppercase hex characters; kInvalidArgument otherwise.
  static Result<Digest> from_hex(std::string_view hex);
  /// Digest of a byte string.
  static Digest of(std::string_view data);

  /// 64 lowercase hex characters.
  std::string hex() const;
  const Bytes& bytes() const { return bytes_; }

  auto operator<=>(const Digest&) const = default;

 private:
  Bytes bytes_;
};

/// Incremental SHA-256 through OpenSSL's EVP interface (which uses the CPU's SHA instructions).
/// Not thread-safe; one per thread.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// Returns the digest and resets the hasher for reuse.
  Digest finish();

 private:
  EVP_MD_CTX* ctx_;
};

/// Hashes the open file `fd` from its current offset to the end.
Result<Digest> hash_fd(int fd, const std::string& path_for_errors);

}  // namespace rtenv

template <>
struct std::hash<rtenv::Digest> {
  size_t operator()(const rtenv::Digest& d) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= rtenv::Digest::kSize);
    __builtin_memcpy(&h, d.bytes().data(), sizeof(h));
    return h;
  }
};
