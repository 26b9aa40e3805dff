#include "env/remote_url.h"

#include <gtest/gtest.h>

namespace rtenv::env {
namespace {

TEST(RemoteUrlTest, TheSha256FragmentIsSplitOff) {
  std::string hex(64, 'a');
  auto u = RemoteUrl::parse("https://host/w/x-1.0-py3-none-any.whl#sha256=" + hex);
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->url, "https://host/w/x-1.0-py3-none-any.whl");
  EXPECT_EQ(u->scheme, "https");
  ASSERT_TRUE(u->sha256.has_value());
  EXPECT_EQ(u->sha256->hex(), hex);
  EXPECT_EQ(u->file_name(), "x-1.0-py3-none-any.whl");

  auto plain = RemoteUrl::parse("s3://bucket/k/x.zip");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->url, "s3://bucket/k/x.zip");
  EXPECT_EQ(plain->scheme, "s3");
  EXPECT_FALSE(plain->sha256.has_value());
}

TEST(RemoteUrlTest, OtherFragmentsAreRefusedWithoutTheCredentials) {
  for (const char* bad : {"https://u:pw@h/x.whl#md5=abc", "https://u:pw@h/x.whl#sha256=abc",
                          "https://u:pw@h/x.whl#sha256=", "https://u:pw@h/x.whl#"}) {
    auto r = RemoteUrl::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("https://u:****@h/x.whl"), std::string::npos)
        << r.error().message();
    EXPECT_EQ(r.error().message().find("pw@"), std::string::npos) << r.error().message();
  }
}

TEST(RemoteUrlTest, FileNamesAreDecodedWithoutTheQuery) {
  auto name = [](const char* url) { return RemoteUrl::parse(url)->file_name(); };
  EXPECT_EQ(name("https://h/a/pkg-1.0%2Blocal-py3-none-any.whl?X-Token=abc"),
            "pkg-1.0+local-py3-none-any.whl");
  EXPECT_EQ(name("file:///tmp/w/x.whl"), "x.whl");
  EXPECT_EQ(name("https://h"), "");
  EXPECT_EQ(name("https://h/"), "");
  EXPECT_EQ(name("https://h/a/%2E%2E"), "");
  EXPECT_EQ(name("https://h/a%2Fb.whl"), "");  // decodes to a path, not a name
  EXPECT_EQ(name("https://h/bad%zz.whl"), "bad%zz.whl");
  EXPECT_EQ(RemoteUrl::parse("https://alice:pw@h/x.whl")->shown(), "https://alice:****@h/x.whl");
}

}  // namespace
}  // namespace rtenv::env
