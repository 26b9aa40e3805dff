#include "util/redact.h"

#include <gtest/gtest.h>

namespace rtenv {
namespace {

TEST(RedactUrlCredentials, HidesPasswordsAndTokens) {
  EXPECT_EQ(redact_url_credentials("--index-url https://user:s3cret@pypi.example/simple/"),
            "--index-url https://user:****@pypi.example/simple/");
  EXPECT_EQ(redact_url_credentials("https://tok3n@host/x and http://a:b@h:8080"),
            "https://****@host/x and http://a:****@h:8080");
  EXPECT_EQ(redact_url_credentials("\"http://u:p@h/\""), "\"http://u:****@h/\"");
  EXPECT_EQ(redact_url_credentials("https://h,https://u:p@h2/"), "https://h,https://u:****@h2/");
}

TEST(RedactUrlCredentials, LeavesOtherTextAlone) {
  EXPECT_EQ(redact_url_credentials("no urls here, user@example.com"),
            "no urls here, user@example.com");
  EXPECT_EQ(redact_url_credentials("http://host/path@v1"), "http://host/path@v1");
  EXPECT_EQ(redact_url_credentials(""), "");
  EXPECT_EQ(redact_url_credentials("trailing://"), "trailing://");
}

TEST(PrintableLine, DropsTerminalEscapesAndCarriageReturnsAndHidesCredentials) {
  EXPECT_EQ(printable_line("\x1b[31merror:\x1b[0m https://u:pw@h/x  \r"),
            "error: https://u:****@h/x");
  EXPECT_EQ(printable_line("plain"), "plain");
  EXPECT_EQ(printable_line("   "), "");
}

TEST(LogEscaped, ControlCharactersCannotForgeOrHideLines) {
  EXPECT_EQ(log_escaped("GET /v1/x\nrtenv store: forged"), "GET /v1/x\\x0artenv store: forged");
  EXPECT_EQ(log_escaped("a\rb\x1b[2Jc\x7f"), "a\\x0db\\x1b[2Jc\\x7f");
  // A backslash is escaped too, so an escape in the log always means a control character.
  EXPECT_EQ(log_escaped("a\\x0a"), "a\\x5cx0a");
  EXPECT_EQ(log_escaped("plain /v1/blobs/ab 204"), "plain /v1/blobs/ab 204");
}

}  // namespace
}  // namespace rtenv
