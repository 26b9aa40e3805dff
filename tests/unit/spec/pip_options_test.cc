// pip_install_options: the check and what each installer is given (spec/pip_options.h).

#include "spec/pip_options.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace rtenv::spec {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Args = std::vector<std::string>;

TEST(PipInstallOptions, RaysDefaultsAreAccepted) {
  // What Ray documents as pip_install_options' default.
  EXPECT_TRUE(check_pip_install_options("p", {"--disable-pip-version-check", "--no-cache-dir"}));
}

TEST(PipInstallOptions, ValuesAreTheNextItemOrInline) {
  EXPECT_TRUE(check_pip_install_options("p", {"--index-url", "http://127.0.0.1/simple"}));
  EXPECT_TRUE(check_pip_install_options("p", {"--index-url=http://127.0.0.1/simple", "-q"}));
  EXPECT_TRUE(check_pip_install_options("p", {"-i", "http://127.0.0.1/simple"}));
  auto missing = check_pip_install_options("p", {"--find-links"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            "p[0]: --find-links needs a value: give it as the next item, or as --find-links=VALUE");
  auto value_on_flag = check_pip_install_options("p", {"--pre=1"});
  ASSERT_FALSE(value_on_flag);
  EXPECT_THAT(value_on_flag.error().message(), HasSubstr("--pre takes no value"));
}

TEST(PipInstallOptions, UnknownOptionsAreNamed) {
  auto r =
      check_pip_install_options("runtime_env.pip.pip_install_options", {"--no-deps", "--user"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message(),
              HasSubstr("runtime_env.pip.pip_install_options[1]: \"--user\" is not a pip option"));
}

TEST(PipInstallOptions, PipGetsThemAsGiven) {
  Args given = {"-i", "http://a/simple", "--no-deps", "--extra-index-url=http://b/simple"};
  EXPECT_THAT(pip_install_args(given, /*uv=*/false, /*install=*/false),
              ElementsAre("--index-url", "http://a/simple", "--no-deps", "--extra-index-url",
                          "http://b/simple"));
  // Installing from a lock passes --no-deps already.
  EXPECT_THAT(
      pip_install_args(given, /*uv=*/false, /*install=*/true),
      ElementsAre("--index-url", "http://a/simple", "--extra-index-url", "http://b/simple"));
}

TEST(PipInstallOptions, UvGetsItsOwnSpellingAndNothingForPipOnlyOptions) {
  Args given = {"--disable-pip-version-check",
                "--no-cache-dir",
                "--pre",
                "--trusted-host",
                "127.0.0.1",
                "--progress-bar",
                "off",
                "--no-deps"};
  EXPECT_THAT(pip_install_args(given, /*uv=*/true, /*install=*/false),
              ElementsAre("--no-cache", "--prerelease=allow", "--allow-insecure-host", "127.0.0.1",
                          "--no-deps"));
  EXPECT_THAT(
      pip_install_args(given, /*uv=*/true, /*install=*/true),
      ElementsAre("--no-cache", "--prerelease=allow", "--allow-insecure-host", "127.0.0.1"));
  EXPECT_THAT(pip_install_args({"-q", "--upgrade"}, /*uv=*/true, /*install=*/true), IsEmpty());
}

}  // namespace
}  // namespace rtenv::spec
