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

TEST(ParseDurationTest, UnitsAndPlainSeconds) {
  EXPECT_EQ(*parse_duration_ms("90"), 90'000);
  EXPECT_EQ(*parse_duration_ms("90s"), 90'000);
  EXPECT_EQ(*parse_duration_ms("30m"), 1'800'000);
  EXPECT_EQ(*parse_duration_ms("6h"), 21'600'000);
  EXPECT_EQ(*parse_duration_ms("7d"), 604'800'000);
  for (const char* bad : {"", "d", "7w", "-1h", "1.5h", "1234567890d"}) {
    EXPECT_FALSE(parse_duration_ms(bad).ok()) << bad;
  }
}

TEST(FormatDurationTest, LargestWholeUnitAndBackAgain) {
  EXPECT_EQ(format_duration_ms(20 * 60'000), "20m");
  EXPECT_EQ(format_duration_ms(2 * 86'400'000), "2d");
  EXPECT_EQ(format_duration_ms(90'000), "90s");
  EXPECT_EQ(format_duration_ms(1500), "1500ms");
  for (int64_t ms : {int64_t{60'000}, int64_t{3'600'000}, int64_t{7} * 86'400'000}) {
    EXPECT_EQ(*parse_duration_ms(format_duration_ms(ms)), ms);
  }
}

TEST(CountOfTest, TheNounAgreesWithTheCount) {
  EXPECT_EQ(count_of(0, "file", "files"), "0 files");
  EXPECT_EQ(count_of(1, "file", "files"), "1 file");
  EXPECT_EQ(count_of(2, "directory", "directories"), "2 directories");
}

}  // namespace
}  // namespace rtenv
