#include "pack/store_gc.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <ctime>
#include <thread>

#include <gtest/gtest.h>

#include "pack/packer.h"
#include "store/local_store.h"
#include "testing/temp_dir.h"

namespace rtenv::pack {
namespace {

using rtenv::testing::TempDir;

int64_t now_ms() { return static_cast<int64_t>(std::time(nullptr)) * 1000; }

TEST(DigestsNamedInTest, PackageUrisAndHashesCount) {
  std::string a(64, 'a'), b(64, 'b');
  auto found = digests_named_in("{\"uri\": \"rtenv://sha256/" + a + "\", \"lock\": \"sha256:" + b +
                                "\", \"not\": \"sha256-" + a + "\", \"short\": \"sha256:abc\"}");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].hex(), a);
  EXPECT_EQ(found[1].hex(), b);
}

class StoreGcTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(store::LocalStore::open(tmp_ / "store")).value(); }
  PackageUri pack(TempDir& dir) {
    PackOptions options;
    return std::move(pack_path(dir.path(), *store_, options)).value().uri;
  }
  // Every blob looks last touched an hour ago.
  void age_all() {
    timespec then{std::time(nullptr) - 3600, 0};
    timespec times[2] = {then, then};
    ASSERT_TRUE(store_
                    ->scan([&](const Digest& d, uint64_t, int64_t) {
                      ::utimensat(AT_FDCWD, store_->blob_path(d).c_str(), times, 0);
                    })
                    .ok());
  }
  size_t count() {
    size_t n = 0;
    EXPECT_TRUE(store_->scan([&](const Digest&, uint64_t, int64_t) { ++n; }).ok());
    return n;
  }
  TempDir tmp_;
  std::unique_ptr<store::LocalStore> store_;
};

TEST_F(StoreGcTest, KeepsRootsAndAllBelowAndCollectsTheRest) {
  TempDir kept, lost;
  kept.write("a.txt", "kept");
  kept.write("sub/b.txt", "kept below");
  lost.write("c.txt", "lost");
  PackageUri root = pack(kept);
  pack(lost);
  ASSERT_EQ(count(), 6u);  // 2 files + 2 manifests, 1 file + 1 manifest
  age_all();
  auto dry = collect_store(*store_, {root.root()}, now_ms() - 60'000, /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.error().message();
  EXPECT_EQ(dry->collected.size(), 2u);
  EXPECT_EQ(count(), 6u);
  auto done = collect_store(*store_, {root.root()}, now_ms() - 60'000, /*dry_run=*/false);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->collected.size(), 2u);
  EXPECT_EQ(done->blobs, 6u);
  EXPECT_EQ(count(), 4u);
  auto missing = store_->missing({root.root()});
  EXPECT_FALSE(missing->front());
}

TEST_F(StoreGcTest, WhatWasTouchedRecentlyIsKeptWithEverythingBelowIt) {
  TempDir src;
  src.write("a.txt", "a");
  src.write("sub/b.txt", "b");
  PackageUri root = pack(src);
  age_all();
  // Found present again (as a pack of the same tree finds its root): only the root is touched,
  // and its whole tree must stay.
  ASSERT_TRUE(store_->missing({root.root()}).ok());
  auto done = collect_store(*store_, {}, now_ms() - 60'000, /*dry_run=*/false);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->collected.empty());
  EXPECT_EQ(count(), 4u);
}

TEST_F(StoreGcTest, APackWaitsForACollectionToFinish) {
  auto lock = store_->lock_for_collection(FileLock::Mode::kExclusive);
  ASSERT_TRUE(lock.ok());
  TempDir src;
  src.write("a.txt", "a");
  std::atomic<bool> packed{false};
  std::thread packer([&] {
    pack(src);
    packed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(packed.load());
  lock->release();
  packer.join();
  EXPECT_TRUE(packed.load());
}

}  // namespace
}  // namespace rtenv::pack
