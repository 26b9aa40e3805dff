#include "util/size.h"

#include <gtest/gtest.h>

namespace rtenv {
namespace {

TEST(ParseSizeTest, UnitsArePowersOf1024) {
  EXPECT_EQ(*parse_size("1048576"), 1048576u);
  EXPECT_EQ(*parse_size("500M"), 500ull << 20);
  EXPECT_EQ(*parse_size("2G"), 2ull << 30);
  EXPECT_EQ(*parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(*parse_size("1.5g"), 3ull << 29);
  EXPECT_EQ(*parse_size("100K"), 102400u);
}

TEST(ParseSizeTest, RejectsWhatIsNotASize) {
  for (const char* bad : {"", "G", "ten", "5X", "-1", "inf"}) {
    auto r = parse_size(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace rtenv
