#include "env/image_ref.h"

#include <gtest/gtest.h>

namespace rtenv::env {
namespace {

const std::string kHex(64, 'a');

TEST(ImageRefTest, RegistryReferencesAreNormalizedAsDockerDoes) {
  auto r = ImageRef::parse("busybox");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->source, ImageRef::Source::kRegistry);
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->manifest_reference(), "latest");

  auto h = ImageRef::parse("127.0.0.1:5000/team/app:v1.2");
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->registry, "127.0.0.1:5000");
  EXPECT_EQ(h->repository, "team/app");
  EXPECT_EQ(h->tag, "v1.2");
  EXPECT_EQ(h->to_string(), "127.0.0.1:5000/team/app:v1.2");

  auto u = ImageRef::parse("rayproject/ray:2.47.0");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->registry, "docker.io");
  EXPECT_EQ(u->repository, "rayproject/ray");

  auto l = ImageRef::parse("localhost/app");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->registry, "localhost");
}

TEST(ImageRefTest, ADigestPinsAndReplacesTheTag) {
  auto r = ImageRef::parse("ghcr.io/o/app:v1@sha256:" + kHex);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(r->digest.has_value());
  EXPECT_EQ(r->digest->hex(), kHex);
  EXPECT_EQ(r->manifest_reference(), "sha256:" + kHex);
  Digest other = Digest::of("x");
  EXPECT_EQ(r->pinned(other), "ghcr.io/o/app@sha256:" + other.hex());
  auto back = ImageRef::parse(r->pinned(other));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->digest, other);
  EXPECT_TRUE(back->tag.empty());
}

TEST(ImageRefTest, LayoutsAndArchivesTakeATagAfterTheLastSlash) {
  auto r = ImageRef::parse("oci:/data/img:dir/layout:v2");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->source, ImageRef::Source::kOciLayout);
  EXPECT_EQ(r->path, "/data/img:dir/layout");
  EXPECT_EQ(r->tag, "v2");

  auto untagged = ImageRef::parse("oci:/data/img:dir/layout");
  ASSERT_TRUE(untagged.ok());
  EXPECT_EQ(untagged->path, "/data/img:dir/layout");
  EXPECT_TRUE(untagged->tag.empty());

  auto a = ImageRef::parse("oci-archive:/x/image.tar@sha256:" + kHex);
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(a->source, ImageRef::Source::kOciArchive);
  EXPECT_EQ(a->path, "/x/image.tar");
  EXPECT_EQ(a->to_string(), "oci-archive:/x/image.tar@sha256:" + kHex);
}

TEST(ImageRefTest, MalformedReferencesAreRefusedNamingThem) {
  for (const std::string& bad : std::vector<std::string>{
           "", "oci:relative/dir", "oci:", "https://host/app", "Upper/Case", "app:bad tag",
           "app@sha256:abc", "app@md5:" + kHex, "a//b", "app:", "/app", "app:-x"}) {
    auto r = ImageRef::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ImageRef::parse("oci:rel:v1").error().message().find("absolute path"),
            std::string::npos);
  EXPECT_FALSE(ImageRef::parse(std::string(5000, 'a')).ok());
}

}  // namespace
}  // namespace rtenv::env
