#include "util/signature.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fmt/format.h>

#include "util/digest.h"
#include "util/fs.h"

namespace rtenv {

namespace {

constexpr size_t kRawKeySize = 32;
constexpr size_t kSignatureSize = 64;

using PkeyPtr = std::shared_ptr<EVP_PKEY>;

PkeyPtr own(EVP_PKEY* key) { return PkeyPtr(key, EVP_PKEY_free); }

// Reads one PEM object of `pem` with `read` (PEM_read_bio_PUBKEY or _PrivateKey).
template <typename Read>
PkeyPtr read_pem(std::string_view pem, Read read) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return nullptr;
  return own(read(bio.get(), nullptr, nullptr, nullptr));
}

std::string to_hex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

}  // namespace

Result<VerifyKey> VerifyKey::from_pem(std::string_view pem, std::string_view source) {
  PkeyPtr key = read_pem(pem, PEM_read_bio_PUBKEY);
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} is not an Ed25519 public key in PEM (make one with: openssl pkey -in "
                      "<private key> -pubout)",
                      source);
  }
  unsigned char raw[kRawKeySize];
  size_t size = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key.get(), raw, &size) != 1 || size != kRawKeySize) {
    return make_error(ErrorCode::kInvalidArgument, "{}: cannot read its Ed25519 key", source);
  }
  VerifyKey out;
  out.raw_.assign(reinterpret_cast<const char*>(raw), size);
  return out;
}

Result<VerifyKey> VerifyKey::load(const std::filesystem::path& pem) {
  RTENV_ASSIGN_OR_RETURN(std::string text, read_file(pem));
  return from_pem(text, pem.string());
}

bool VerifyKey::verify(std::string_view message, std::string_view signature_hex) const {
  if (raw_.size() != kRawKeySize || signature_hex.size() != kSignatureSize * 2) return false;
  unsigned char sig[kSignatureSize];
  for (size_t i = 0; i < kSignatureSize; ++i) {
    int hi = hex_digit_value(signature_hex[2 * i]), lo = hex_digit_value(signature_hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    sig[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  PkeyPtr key = own(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw_.data()), raw_.size()));
  if (!key) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), sig, sizeof sig,
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

std::string VerifyKey::id() const { return Digest::of(raw_).hex().substr(0, 16); }

Result<SigningKey> SigningKey::from_pem(std::string_view pem, std::string_view source) {
  PkeyPtr key = read_pem(pem, PEM_read_bio_PrivateKey);
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} is not an Ed25519 private key in PEM (make one with: openssl genpkey "
                      "-algorithm ed25519 -out <file>)",
                      source);
  }
  SigningKey out;
  out.key_ = std::move(key);
  return out;
}

Result<SigningKey> SigningKey::load(const std::filesystem::path& pem) {
  RTENV_ASSIGN_OR_RETURN(std::string text, read_file(pem));
  return from_pem(text, pem.string());
}

std::string SigningKey::sign(std::string_view message) const {
  unsigned char sig[kSignatureSize];
  size_t size = sizeof sig;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // Ed25519 signing fails only on an allocation failure: a bug-level condition.
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &size, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      size != kSignatureSize) {
    throw std::runtime_error("Ed25519 signing failed");
  }
  return to_hex(sig, size);
}

VerifyKey SigningKey::verify_key() const {
  unsigned char raw[kRawKeySize];
  size_t size = sizeof raw;
  VerifyKey out;
  if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &size) == 1 && size == kRawKeySize) {
    out.raw_.assign(reinterpret_cast<const char*>(raw), size);
  }
  return out;
}

}  // namespace rtenv
