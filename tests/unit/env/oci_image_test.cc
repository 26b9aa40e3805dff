#include "env/oci_image.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace rtenv::env {
namespace {

std::string desc(const std::string& type, char hex, uint64_t size, const std::string& extra = "") {
  return fmt::format(R"({{"mediaType":"{}","digest":"sha256:{}","size":{}{}}})", type,
                     std::string(64, hex), size, extra);
}

TEST(OciImageTest, AManifestGivesItsConfigAndLayersInOrder) {
  std::string text =
      fmt::format(R"({{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{},{}]}})",
                  kOciManifestType, desc("application/vnd.oci.image.config.v1+json", 'c', 10),
                  desc("application/vnd.oci.image.layer.v1.tar+gzip", '1', 100),
                  desc("application/vnd.oci.image.layer.v1.tar+zstd", '2', 200));
  auto m = parse_oci_manifest(text, "m");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->config.digest.hex(), std::string(64, 'c'));
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].size, 100u);
  EXPECT_EQ(*layer_compression(m->layers[0].media_type), LayerCompression::kGzip);
  EXPECT_EQ(*layer_compression(m->layers[1].media_type), LayerCompression::kZstd);
  EXPECT_EQ(*layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            LayerCompression::kGzip);
  auto foreign = layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), ErrorCode::kUnsupported);
}

TEST(OciImageTest, MalformedManifestsAreRefusedNamingWhat) {
  std::string layer = desc("application/vnd.oci.image.layer.v1.tar", '1', 1);
  std::string config = desc("application/vnd.oci.image.config.v1+json", 'c', 1);
  std::vector<std::string> bad = {
      "not json",
      "[]",
      fmt::format(R"({{"schemaVersion":1,"config":{},"layers":[]}})", config),
      fmt::format(R"({{"schemaVersion":2,"layers":[{}]}})", layer),
      fmt::format(R"({{"schemaVersion":2,"config":{},"layers":{{}}}})", config),
      fmt::format(R"({{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[]}})",
                  kOciIndexType, config),
      R"({"schemaVersion":2,"config":{"digest":"sha256:abc","size":1},"layers":[]})",
      fmt::format(
          R"({{"schemaVersion":2,"config":{{"digest":"sha256:{}","size":-1}},"layers":[]}})",
          std::string(64, 'c')),
  };
  for (const auto& text : bad) {
    auto m = parse_oci_manifest(text, "image x: manifest");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_EQ(m.error().code(), ErrorCode::kCorrupt) << text;
    EXPECT_EQ(m.error().message().rfind("image x: manifest: ", 0), 0u) << m.error().message();
  }
}

TEST(OciImageTest, DocumentsAreBoundedInSizeDepthAndLayers) {
  std::string deep = std::string(100, '[') + std::string(100, ']');
  auto d = parse_oci_manifest(R"({"a":)" + deep + "}", "m");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("nested deeper"), std::string::npos);

  std::string big =
      R"({"schemaVersion":2,"pad":")" + std::string(kMaxImageDocumentBytes, 'x') + R"("})";
  auto b = parse_oci_manifest(big, "m");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("bigger than"), std::string::npos);

  std::string layers;
  for (size_t i = 0; i <= kMaxImageLayers; ++i) {
    layers += (i ? "," : "") + desc("application/vnd.oci.image.layer.v1.tar", '1', 1);
  }
  auto many = parse_oci_manifest(
      fmt::format(R"({{"schemaVersion":2,"config":{},"layers":[{}]}})",
                  desc("application/vnd.oci.image.config.v1+json", 'c', 1), layers),
      "m");
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.error().message().find("more than"), std::string::npos);
}

TEST(OciImageTest, AnIndexResolvesToTheNodesPlatformOrSaysWhatItHas) {
  std::string text = fmt::format(
      R"({{"schemaVersion":2,"manifests":[{},{},{}]}})",
      desc(kOciManifestType, 'a', 1, R"(,"platform":{"os":"linux","architecture":"amd64"})"),
      desc(kOciManifestType, 'b', 1,
           R"(,"platform":{"os":"linux","architecture":"arm64","variant":"v8"})"),
      desc(kOciManifestType, 'c', 1, R"(,"platform":{"os":"windows","architecture":"amd64"})"));
  auto index = parse_oci_index(text, "i");
  ASSERT_TRUE(index.ok()) << index.error().message();
  auto amd = select_platform(*index, {"linux", "amd64", ""}, "img");
  ASSERT_TRUE(amd.ok());
  EXPECT_EQ(amd->digest.hex(), std::string(64, 'a'));
  auto arm = select_platform(*index, {"linux", "arm64", "v8"}, "img");
  ASSERT_TRUE(arm.ok());
  EXPECT_EQ(arm->digest.hex(), std::string(64, 'b'));
  auto none = select_platform(*index, {"linux", "s390x", ""}, "img");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(none.error().message().find("linux/amd64, linux/arm64/v8, windows/amd64"),
            std::string::npos)
      << none.error().message();
}

TEST(OciImageTest, ALayoutsIndexIsSelectedByTag) {
  std::string text =
      fmt::format(R"({{"schemaVersion":2,"manifests":[{},{}]}})",
                  desc(kOciManifestType, 'a', 1,
                       R"(,"annotations":{"org.opencontainers.image.ref.name":"v1"})"),
                  desc(kOciManifestType, 'b', 1,
                       R"(,"annotations":{"org.opencontainers.image.ref.name":"v2"})"));
  auto index = parse_oci_index(text, "i");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(select_tag(*index, "v2", "img")->digest.hex(), std::string(64, 'b'));
  auto missing = select_tag(*index, "v3", "img");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("(it has: v1, v2)"), std::string::npos);
  EXPECT_FALSE(select_tag(*index, "", "img").ok());  // two manifests: a tag is needed
}

TEST(OciImageTest, TheConfigGivesEnvEntrypointCmdAndWorkingDir) {
  auto c = parse_oci_config(
      R"({"os":"linux","architecture":"amd64","config":{"Env":["PATH=/bin","A=b=c"],
          "Entrypoint":["/init"],"Cmd":null,"WorkingDir":"/app"}})",
      "c");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/bin", "A=b=c"}));
  EXPECT_EQ(c->entrypoint, (std::vector<std::string>{"/init"}));
  EXPECT_TRUE(c->cmd.empty());
  EXPECT_EQ(c->working_dir, "/app");
  EXPECT_FALSE(parse_oci_config(R"({"config":{"Env":["NOEQUALS"]}})", "c").ok());
  EXPECT_FALSE(parse_oci_config(R"({"config":{"Cmd":[1]}})", "c").ok());
  EXPECT_FALSE(parse_oci_config(R"({"config":"x"})", "c").ok());
}

}  // namespace
}  // namespace rtenv::env
