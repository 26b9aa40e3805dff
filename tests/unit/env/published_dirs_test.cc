#include "env/published_dirs.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::env {
namespace {

using rtenv::testing::TempDir;

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

TEST(PublishedDirsTest, MakeOnceThenLeaseThenEvictAsideAndRemoveLater) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "tmp");
  PublishedDirs dirs(tmp.path() / "things", tmp.path() / "tmp", ".ready", {".note"});
  int made = 0;
  auto make = [&](const fs::path& dir) -> Result<void> {
    ++made;
    fs::create_directories(dir / "a" / "b");
    RTENV_TRY(write_file_atomic(dir / "a" / "b" / "f", "x"));
    return write_file_atomic(dirs.sidecar("k", ".note"), "n");
  };
  auto first = dirs.make_once("k", -1, "thing k", make);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*dirs.make_once("k", -1, "thing k", make));  // published: not made again
  EXPECT_EQ(made, 1);
  {
    auto lease = dirs.lease("k", -1, "thing k", make);
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(dirs.process_leases("k"), 1u);
    EXPECT_FALSE(*dirs.evict("k")) << "a leased entry is never evicted";
  }
  // Evicted: unpublished at once, its tree renamed aside (one call, whatever its size) and
  // deleted only by remove_evicted, which callers run outside their own locks.
  ASSERT_TRUE(*dirs.evict("k"));
  EXPECT_FALSE(dirs.is_ready("k"));
  EXPECT_FALSE(fs::exists(dirs.dir("k")));
  EXPECT_FALSE(fs::exists(dirs.sidecar("k", ".note")));
  EXPECT_EQ(entries(tmp.path() / "tmp"), 1u);
  remove_evicted(tmp.path() / "tmp");
  EXPECT_EQ(entries(tmp.path() / "tmp"), 0u);
}

TEST(PublishedDirsTest, AFailedMakeLeavesNothingAndTheNextCallMakesItAgain) {
  TempDir tmp;
  PublishedDirs dirs(tmp.path() / "things", tmp.path() / "tmp", ".ready", {".note"});
  auto failing = [&](const fs::path& dir) -> Result<void> {
    fs::create_directories(dir);
    (void)write_file_atomic(dirs.sidecar("k", ".note"), "half");
    return Error(ErrorCode::kIo, "disk full");
  };
  auto r = dirs.make_once("k", -1, "thing k", failing);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(dirs.dir("k")));
  EXPECT_FALSE(fs::exists(dirs.sidecar("k", ".note")));
  auto ok = dirs.make_once("k", -1, "thing k",
                           [](const fs::path& dir) -> Result<void> { return make_dirs(dir); });
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(*ok);
  EXPECT_TRUE(dirs.is_ready("k"));
}

}  // namespace
}  // namespace rtenv::env
