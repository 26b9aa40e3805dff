#include "pack/manifest.h"

#include <cctype>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace rtenv::pack {
namespace {

Manifest sample() {
  Manifest m;
  m.add({EntryKind::kFile, "b.txt", Digest::of("b"), 1, {}});
  m.add({EntryKind::kDirectory, "sub", Digest::of("sub manifest"), 42, {}});
  m.add({EntryKind::kExecutable, "run.sh", Digest::of("#!/bin/sh\n"), 10, {}});
  m.add({EntryKind::kSymlink, "link to b", Digest(), 0, "b.txt"});
  m.add({EntryKind::kSymlink, "spaced", Digest(), 0, "sub/a file"});
  m.add({EntryKind::kFile, "odd%name\nwith newline", Digest::of(""), 0, {}});
  return m;
}

// The on-disk format is pinned by a golden file, checked in both directions.
TEST(ManifestTest, MatchesGoldenFileBothWays) {
  Manifest m = sample();
  std::string text = m.serialize();
  std::string golden = testing::slurp(std::string(RTENV_TEST_DATA_DIR) + "/pack/manifest.golden");
  ASSERT_FALSE(golden.empty()) << "missing tests/data/pack/manifest.golden";
  EXPECT_EQ(text, golden);
  auto parsed = Manifest::parse(golden);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  Manifest again = *parsed;
  EXPECT_EQ(again.serialize(), golden);
  EXPECT_EQ(parsed->entries(), m.entries());
}

TEST(ManifestTest, SerializationIsIndependentOfInsertionOrder) {
  Manifest a = sample(), b;
  auto entries = a.entries();
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) b.add(*it);
  EXPECT_EQ(a.serialize(), b.serialize());
}

TEST(ManifestTest, RejectsMalformedAndHostileInput) {
  std::string d = Digest::of("x").hex();
  const char* header = "rtenv-manifest 1\n";
  for (std::string bad : {
           std::string("not a manifest\n"),
           std::string(header) + "f " + d + " 1 a",                     // no final newline
           std::string(header) + "f " + d + " 1 ..\n",                  // parent name
           std::string(header) + "f " + d + " 1 a/b\n",                 // slash in name
           std::string(header) + "f " + d + " 1 b\nf " + d + " 1 a\n",  // unsorted
           std::string(header) + "f " + d + " 1 a\nf " + d + " 1 a\n",  // duplicate
           std::string(header) + "q " + d + " 1 a\n",                   // unknown kind
           std::string(header) + "f " + d.substr(1) + " 1 a\n",         // short digest
           std::string(header) + "f " + d + " 01 a\n",                  // non-canonical size
           std::string(header) + "f " + d + " -1 a\n",
           std::string(header) + "l  a\n",                // empty target
           std::string(header) + "f " + d + " 1 a%zz\n",  // bad escape
       }) {
    auto r = Manifest::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  }
}

// A manifest that parsed serializes back to the very text it came from: the same tree is never
// two manifest blobs. (The uppercase digest was found by fuzz/manifest_fuzz.cc.)
TEST(ManifestTest, AcceptsOnlyCanonicalText) {
  std::string d = Digest::of("x").hex();
  std::string upper = d;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string header = "rtenv-manifest 1\n";
  for (std::string bad : {
           header + "f " + upper + " 1 b\n",  // uppercase digest
           header + "f " + d + " 1 a%20b\n",  // spaces in names are written as they are
           header + "f " + d + " 1 a\rb\n",   // CR in a name is written %0D
           header + "l x\ry a\n",             // ... and in a link target
       }) {
    auto r = Manifest::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  }
  const std::string good = header + "f " + d + " 1 a b%0Dc%25\nl x%20y%0A z\n";
  auto parsed = Manifest::parse(good);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->serialize(), good);
}

TEST(PackageUriTest, ParseAndFormat) {
  Digest d = Digest::of("root");
  PackageUri uri(d);
  EXPECT_EQ(uri.str(), "rtenv://sha256/" + d.hex());
  EXPECT_EQ(*PackageUri::parse(uri.str()), uri);
  EXPECT_FALSE(PackageUri::parse("rtenv://sha256/abc").ok());
  EXPECT_FALSE(PackageUri::parse("gcs://_ray_pkg_abc.zip").ok());
}

}  // namespace
}  // namespace rtenv::pack
