#pragma once
// Ed25519 signatures (OpenSSL EVP), for records that must be believed only if a key holder wrote
// them. Keys are PEM files as `openssl genpkey -algorithm ed25519` writes them (private) and
// `openssl pkey -pubout` (public).

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace rtenv {

/// A public key that signatures are checked against. A value type; thread-safe.
class VerifyKey {
 public:
  /// Reads a PEM public key ("BEGIN PUBLIC KEY"). kIo if the file cannot be read;
  /// kInvalidArgument (naming the file) if it is not an Ed25519 public key.
  static Result<VerifyKey> load(const std::filesystem::path& pem);
  /// The key from its PEM text; `source` names it in errors.
  static Result<VerifyKey> from_pem(std::string_view pem, std::string_view source);

  /// True if `signature_hex` (128 hex digits) is this key's signature of `message`.
  bool verify(std::string_view message, std::string_view signature_hex) const;
  /// The first 16 hex digits of the SHA-256 of the raw key: how records and messages name it.
  std::string id() const;

  bool operator==(const VerifyKey&) const = default;

 private:
  friend class SigningKey;
  std::string raw_;  ///< the 32 bytes of the key
};

/// A private key that signs. Thread-safe (each call uses its own context).
class SigningKey {
 public:
  /// Reads a PEM private key ("BEGIN PRIVATE KEY"). kIo if the file cannot be read;
  /// kInvalidArgument (naming the file) if it is not an Ed25519 private key.
  static Result<SigningKey> load(const std::filesystem::path& pem);
  static Result<SigningKey> from_pem(std::string_view pem, std::string_view source);

  /// The signature of `message`, as 128 hex digits.
  std::string sign(std::string_view message) const;
  VerifyKey verify_key() const;

 private:
  std::shared_ptr<EVP_PKEY> key_;
};

}  // namespace rtenv
