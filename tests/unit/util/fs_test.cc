#include "util/fs.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "util/parallel.h"

namespace rtenv {
namespace {

TEST(FsTest, WriteAtomicReplacesAndLeavesNoTemp) {
  testing::TempDir tmp;
  ASSERT_TRUE(write_file_atomic(tmp / "a", "one").ok());
  ASSERT_TRUE(write_file_atomic(tmp / "a", "two", 0600).ok());
  EXPECT_EQ(*read_file(tmp / "a"), "two");
  EXPECT_EQ(fs::status(tmp / "a").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(FsTest, WriteNewNeverReplacesAndLeavesNoTemp) {
  testing::TempDir tmp;
  ASSERT_TRUE(write_new_file(tmp / "a", "one", 0751).ok());
  EXPECT_EQ(*read_file(tmp / "a"), "one");
  EXPECT_EQ(fs::status(tmp / "a").permissions() & fs::perms::all, static_cast<fs::perms>(0751));
  auto again = write_new_file(tmp / "a", "two", 0644);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(*read_file(tmp / "a"), "one");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(FsTest, ReadMissingIsNotFound) {
  testing::TempDir tmp;
  auto r = read_file(tmp / "nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.error().message().find("nope"), std::string::npos);
}

TEST(FsTest, ExclusiveLockExcludesSharedAndExclusive) {
  testing::TempDir tmp;
  auto ex = FileLock::try_acquire(tmp / "l", FileLock::Mode::kExclusive);
  ASSERT_TRUE(ex.ok() && ex->held());
  EXPECT_FALSE(FileLock::try_acquire(tmp / "l", FileLock::Mode::kShared)->held());
  EXPECT_FALSE(FileLock::try_acquire(tmp / "l", FileLock::Mode::kExclusive)->held());
  ASSERT_TRUE(ex->convert(FileLock::Mode::kShared).ok());
  auto sh = FileLock::try_acquire(tmp / "l", FileLock::Mode::kShared);
  EXPECT_TRUE(sh->held());
  EXPECT_FALSE(FileLock::try_acquire(tmp / "l", FileLock::Mode::kExclusive)->held());
  ex->release();
  sh->release();
  EXPECT_TRUE(FileLock::try_acquire(tmp / "l", FileLock::Mode::kExclusive)->held());
}

TEST(ParallelTest, RunsEveryIndexOnceAndReportsAnError) {
  std::vector<std::atomic<int>> hits(1000);
  ASSERT_TRUE(parallel_for(hits.size(), 4, [&](size_t i) {
                ++hits[i];
                return ok_result();
              }).ok());
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  auto r = parallel_for(100, 2, [](size_t i) -> Result<void> {
    if (i == 17) return Error(ErrorCode::kIo, "boom");
    return ok_result();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "boom");
}

}  // namespace
}  // namespace rtenv
