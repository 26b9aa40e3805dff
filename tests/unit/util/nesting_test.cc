#include "util/nesting.h"

#include <string>

#include <gtest/gtest.h>

namespace rtenv {
namespace {

constexpr size_t kMB = size_t{1} << 20;

Result<void> check(const std::string& text, size_t depth = 10) {
  return check_nesting(text, depth, kMB, "input");
}

TEST(CheckNesting, JsonWithinTheBoundPassesAndDeeperIsRefusedWithoutRecursion) {
  EXPECT_TRUE(check(R"({"a": {"b": [1, 2, {"c": null}]}, "d": "]]]]"})").ok());
  EXPECT_TRUE(check(std::string(10, '[') + std::string(10, ']')).ok());
  auto deep = check(std::string(11, '[') + std::string(11, ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(deep.error().message().find("nested deeper than 10 levels"), std::string::npos);
  // 100,000 levels: refused at once (a recursive parser would overflow its stack).
  EXPECT_FALSE(check(std::string(100000, '[') + std::string(100000, ']'), 100).ok());
  EXPECT_FALSE(check(std::string(100000, '{'), 100).ok());
}

TEST(CheckNesting, BracketsInsideStringsDoNotCount) {
  EXPECT_TRUE(check(R"(["[[[[[[[[[[[[[[[[[[[[", "\"[[[[[[[[[[[[[[[["])").ok());
  EXPECT_TRUE(check("a: '[[[[[[[[[[[[[[[[[[[[[['\nb: \"{{{{{{{{{{{{{{{{{\"\n").ok());
  // A quote inside a plain YAML scalar opens no string, so it hides nothing after it.
  EXPECT_FALSE(check("a: it's\nb: " + std::string(20, '[') + "\n").ok());
}

TEST(CheckNesting, YamlBlockLevelsAndItemsCount) {
  std::string ok_yaml = "a:\n  b:\n    c:\n      - d\n      - e: 1\n";
  EXPECT_TRUE(check(ok_yaml).ok());
  std::string deep;
  for (int i = 0; i < 12; ++i) deep += std::string(2 * i, ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_FALSE(check(deep).ok());
  std::string items;
  for (int i = 0; i < 12; ++i) items += "- ";
  EXPECT_FALSE(check(items + "x\n").ok());
  EXPECT_TRUE(check("- - - x\n").ok());
}

TEST(CheckNesting, SizeIsBounded) {
  auto big = check_nesting(std::string(2 * kMB, ' '), 10, kMB, "input");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message().find("more than the"), std::string::npos);
}

}  // namespace
}  // namespace rtenv
