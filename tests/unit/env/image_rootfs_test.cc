#include "env/image_rootfs.h"

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "util/fs.h"

namespace rtenv::env {
namespace {

class ImageRootfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / unique_name("rootfs-test");
    fs::create_directories(dir_);
  }
  void TearDown() override { (void)remove_tree(dir_); }

  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string read(const fs::path& p) {
    auto t = read_file(p);
    return t ? *t : "<absent>";
  }

  fs::path dir_;
};

TEST_F(ImageRootfsTest, UpperLayersReplaceFilesAndMergeDirectoriesByHardLinks) {
  fs::path l1 = dir_ / "l1", l2 = dir_ / "l2", root = dir_ / "root";
  write(l1 / "etc/a", "a1");
  write(l1 / "etc/b", "b1");
  write(l2 / "etc/a", "a2");
  write(l2 / "etc/c", "c2");
  fs::create_directories(l2 / "usr");
  fs::create_symlink("../etc/a", l2 / "usr/link");
  auto stats = assemble_rootfs({l1, l2}, root);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(read(root / "etc/a"), "a2");
  EXPECT_EQ(read(root / "etc/b"), "b1");
  EXPECT_EQ(read(root / "etc/c"), "c2");
  EXPECT_EQ(fs::read_symlink(root / "usr/link"), "../etc/a");
  EXPECT_EQ(fs::status(root / "etc/c").type(), fs::file_type::regular);
  struct stat linked, original;
  ASSERT_EQ(::stat((root / "etc/b").c_str(), &linked), 0);
  ASSERT_EQ(::stat((l1 / "etc/b").c_str(), &original), 0);
  EXPECT_EQ(linked.st_ino, original.st_ino);  // not copied
}

TEST_F(ImageRootfsTest, WhiteoutsRemoveLowerEntriesAndOpaqueDirectoriesHideThem) {
  fs::path l1 = dir_ / "l1", l2 = dir_ / "l2", root = dir_ / "root";
  write(l1 / "data/keep", "k");
  write(l1 / "data/gone", "g");
  write(l1 / "tree/deep/file", "d");
  write(l1 / "opq/old", "o");
  write(l2 / "data/.wh.gone", "");
  write(l2 / ".wh.tree", "");
  write(l2 / "opq/.wh..wh..opq", "");
  write(l2 / "opq/new", "n");
  write(l2 / ".wh.never-existed", "");
  auto stats = assemble_rootfs({l1, l2}, root);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(read(root / "data/keep"), "k");
  EXPECT_FALSE(fs::exists(root / "data/gone"));
  EXPECT_FALSE(fs::exists(root / "tree"));
  EXPECT_FALSE(fs::exists(root / "opq/old"));
  EXPECT_EQ(read(root / "opq/new"), "n");
  EXPECT_FALSE(fs::exists(root / "data/.wh.gone"));
  EXPECT_FALSE(fs::exists(root / "opq/.wh..wh..opq"));
  EXPECT_EQ(stats->whiteouts, 4u);
}

TEST_F(ImageRootfsTest, ALowerSymlinkIsReplacedNeverFollowed) {
  fs::path l1 = dir_ / "l1", l2 = dir_ / "l2", root = dir_ / "root", outside = dir_ / "outside";
  fs::create_directories(l1);
  fs::create_directories(outside);
  fs::create_symlink(outside, l1 / "lib");
  write(l2 / "lib/file", "inside");
  write(l2 / "etc/.wh..wh..opq", "");
  auto stats = assemble_rootfs({l1, l2}, root);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_TRUE(fs::is_empty(outside));
  EXPECT_FALSE(fs::is_symlink(root / "lib"));
  EXPECT_EQ(read(root / "lib/file"), "inside");
}

TEST_F(ImageRootfsTest, AWhiteoutNamingAParentIsIgnored) {
  fs::path l1 = dir_ / "l1", l2 = dir_ / "l2", root = dir_ / "root";
  write(l1 / "a/file", "x");
  write(l2 / "a/.wh..", "");
  write(dir_ / "sibling", "s");
  auto stats = assemble_rootfs({l1, l2}, root);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(read(root / "a/file"), "x");
  EXPECT_EQ(read(dir_ / "sibling"), "s");
}

}  // namespace
}  // namespace rtenv::env
