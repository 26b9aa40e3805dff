#include "util/digest.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv {
namespace {

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::of("").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest::of("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, HexRoundTripAndRejects) {
  Digest d = Digest::of("x");
  auto back = Digest::from_hex(d.hex());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, d);
  std::string upper = d.hex();
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(*Digest::from_hex(upper), d);
  EXPECT_FALSE(Digest::from_hex("abc").ok());
  EXPECT_FALSE(Digest::from_hex(std::string(64, 'g')).ok());
  EXPECT_EQ(Digest::from_hex("zz").error().code(), ErrorCode::kInvalidArgument);
}

TEST(DigestTest, IncrementalEqualsOneShotAndResets) {
  Sha256 sha;
  sha.update("hello ");
  sha.update("world");
  EXPECT_EQ(sha.finish(), Digest::of("hello world"));
  sha.update("abc");
  EXPECT_EQ(sha.finish(), Digest::of("abc"));
}

TEST(DigestTest, HashFdReadsToEnd) {
  testing::TempDir tmp;
  std::string big(1 << 20, 'q');
  big[12345] = 'z';
  auto p = tmp.write("f", big);
  UniqueFd fd(::open(p.c_str(), O_RDONLY));
  auto d = hash_fd(fd.get(), p.string());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Digest::of(big));
}

}  // namespace
}  // namespace rtenv
