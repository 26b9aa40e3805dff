#include "util/signature.h"

#include <gtest/gtest.h>

namespace rtenv {
namespace {

// Keys made for these tests only (openssl genpkey -algorithm ed25519; openssl pkey -pubout).
constexpr const char* kPrivate = R"(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEw5um0gk/8Zlg5JT7fhhZ0rHRcwx3uRz1ASSQJqQnWJ
-----END PRIVATE KEY-----
)";
constexpr const char* kPublic = R"(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAMLYTE2HaB+A/TdfuxD5qU3JdruBLnwiLjPqd0J22c2Q=
-----END PUBLIC KEY-----
)";
constexpr const char* kOtherPublic = R"(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdO4xKE/f6u6CalMHJD7fu/YpHp+io/w7H8PfHKkTWvw=
-----END PUBLIC KEY-----
)";
constexpr const char* kP256Public = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENV+gaZ7pQG+xhyghWSX00xJmzixc
lQhXzWGvY39Ce3eXQRi6m2/jKqfaoYL0TbelDmw9UeIYtoCzShx+rXcKWg==
-----END PUBLIC KEY-----
)";

TEST(SignatureTest, ASignatureVerifiesWithItsKeyAndForItsMessageOnly) {
  auto signing = SigningKey::from_pem(kPrivate, "test key");
  ASSERT_TRUE(signing.ok()) << signing.error().message();
  auto pub = VerifyKey::from_pem(kPublic, "test public key");
  ASSERT_TRUE(pub.ok()) << pub.error().message();
  EXPECT_EQ(signing->verify_key(), *pub);
  EXPECT_EQ(pub->id().size(), 16u);

  const std::string sig = signing->sign("the record");
  EXPECT_EQ(sig.size(), 128u);
  EXPECT_EQ(signing->sign("the record"), sig);  // Ed25519 is deterministic
  EXPECT_TRUE(pub->verify("the record", sig));
  EXPECT_FALSE(pub->verify("the record!", sig));
  std::string flipped = sig;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_FALSE(pub->verify("the record", flipped));
  EXPECT_FALSE(pub->verify("the record", ""));
  EXPECT_FALSE(pub->verify("the record", std::string(128, 'z')));

  auto other = VerifyKey::from_pem(kOtherPublic, "other");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->verify("the record", sig));
  EXPECT_NE(other->id(), pub->id());
}

TEST(SignatureTest, OnlyEd25519KeysInPemAreRead) {
  auto wrong = VerifyKey::from_pem(kP256Public, "/etc/rtenv/p256.pem");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.error().message().find("/etc/rtenv/p256.pem is not an Ed25519 public key"),
            std::string::npos)
      << wrong.error().message();
  EXPECT_FALSE(VerifyKey::from_pem(kPrivate, "x").ok());  // a private key is not a public one
  EXPECT_FALSE(SigningKey::from_pem(kPublic, "x").ok());
  EXPECT_FALSE(SigningKey::from_pem("nonsense", "x").ok());
  auto missing = SigningKey::load("/nonexistent/key.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("/nonexistent/key.pem"), std::string::npos);
}

}  // namespace
}  // namespace rtenv
