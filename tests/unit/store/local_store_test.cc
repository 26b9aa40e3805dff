#include "store/local_store.h"

#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "record_contract.h"
#include "store/blob_codec.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::store {
namespace {

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(LocalStore::open(tmp_ / "store")).value(); }
  testing::TempDir tmp_;
  std::unique_ptr<LocalStore> store_;
};

TEST_F(LocalStoreTest, PutGetMissingRemoveList) {
  Digest a = Digest::of("alpha"), b = Digest::of("beta");
  EXPECT_EQ(*store_->missing({a, b}), (std::vector<bool>{true, true}));
  ASSERT_TRUE(store_->put(a, "alpha").ok());
  EXPECT_EQ(*store_->missing({a, b}), (std::vector<bool>{false, true}));
  EXPECT_EQ(*store_->get(a), "alpha");
  EXPECT_EQ(store_->get(b).error().code(), ErrorCode::kNotFound);
  std::set<std::string> listed;
  ASSERT_TRUE(store_
                  ->list([&](const Digest& d, uint64_t size) {
                    listed.insert(d.hex());
                    EXPECT_EQ(size, 5u);
                  })
                  .ok());
  EXPECT_EQ(listed, std::set<std::string>{a.hex()});
  EXPECT_TRUE(*store_->remove(a));
  EXPECT_FALSE(*store_->remove(a));
}

TEST_F(LocalStoreTest, Records) {
  testing::expect_record_contract(*store_);
  // No temp files are left beside the records.
  size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(tmp_ / "store" / "records")) {
    if (e.is_regular_file()) ++entries;
  }
  EXPECT_EQ(entries, 3u);  // builds/env-1.lease, builds/race.lease, pyenvs/k.json
}

TEST_F(LocalStoreTest, PutIsIdempotentAndPutFileCopies) {
  auto src = tmp_.write("src.bin", std::string(300000, 'x'));
  Digest d = Digest::of(std::string(300000, 'x'));
  ASSERT_TRUE(store_->put_file(d, src).ok());
  ASSERT_TRUE(store_->put_file(d, src).ok());
  ASSERT_TRUE(store_->put(d, std::string(300000, 'x')).ok());
  EXPECT_EQ(store_->get(d)->size(), 300000u);
  ASSERT_TRUE(store_->get_to_file(d, tmp_ / "out", 0755).ok());
  EXPECT_EQ(testing::slurp(tmp_ / "out"), std::string(300000, 'x'));
  EXPECT_TRUE((fs::status(tmp_ / "out").permissions() & fs::perms::owner_exec) != fs::perms::none);
  // Bigger than the caller expects: refused, nothing left behind.
  auto capped = store_->get_to_file(d, tmp_ / "capped", 0644, 299999);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code(), ErrorCode::kTooLarge);
  EXPECT_FALSE(fs::exists(tmp_ / "capped"));
  ASSERT_TRUE(store_->get_to_file(d, tmp_ / "exact", 0644, 300000).ok());
}

TEST_F(LocalStoreTest, ACorruptBlobIsDetectedMovedAsideAndReplacedByTheNextUpload) {
  Digest d = Digest::of("good");
  auto corrupt_it = [&] {
    ASSERT_TRUE(store_->put(d, "good").ok());
    fs::permissions(store_->blob_path(d), fs::perms::owner_write, fs::perm_options::add);
    std::ofstream(store_->blob_path(d), std::ios::trunc) << "evil";
  };
  corrupt_it();
  auto got = store_->get(d);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(got.error().message().find(d.hex()), std::string::npos);
  // Not kept: the store lacks it now, and the next upload of the right content replaces it.
  EXPECT_TRUE(store_->missing({d})->at(0));
  ASSERT_TRUE(store_->put(d, "good").ok());
  EXPECT_EQ(*store_->get(d), "good");

  fs::remove(store_->blob_path(d));
  corrupt_it();
  auto to_file = store_->get_to_file(d, tmp_ / "dest", 0644);
  ASSERT_FALSE(to_file.ok());
  EXPECT_EQ(to_file.error().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(fs::exists(tmp_ / "dest")) << "a corrupt blob must leave no file behind";
  EXPECT_TRUE(store_->missing({d})->at(0));
  // What was moved aside is kept for a look, outside the blobs (list() does not see it).
  size_t listed = 0;
  ASSERT_TRUE(store_->list([&](const Digest&, uint64_t) { ++listed; }).ok());
  EXPECT_EQ(listed, 0u);
  EXPECT_EQ(
      std::distance(fs::directory_iterator(tmp_ / "store" / "corrupt"), fs::directory_iterator()),
      2);
}

TEST_F(LocalStoreTest, WritesAreHashedAndRefusedUnlessTheyMatchTheirDigest) {
  Digest d = Digest::of("what was hashed");
  auto put = store_->put(d, "something else");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code(), ErrorCode::kCorrupt);
  auto src = tmp_.write("changed.bin", "changed since it was hashed");
  auto put_file = store_->put_file(d, src);
  ASSERT_FALSE(put_file.ok());
  EXPECT_EQ(put_file.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(put_file.error().message().find(src.string()), std::string::npos)
      << put_file.error().message();
  EXPECT_TRUE(store_->missing({d})->at(0)) << "nothing may be stored under the wrong digest";
  // No temp file is left behind either.
  for (const auto& e : fs::recursive_directory_iterator(tmp_ / "store")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST_F(LocalStoreTest, ConcurrentWritersOfOneBlobAreHarmless) {
  std::string data(1 << 20, 'z');
  Digest d = Digest::of(data);
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (!store_->put(d, data).ok()) ++failures;
        if (store_->remove(d).ok()) {
        }  // churn: readers must still never see a partial blob
        auto got = store_->get(d);
        if (got.ok() && *got != data) ++failures;
        if (!got.ok() && got.error().code() != ErrorCode::kNotFound) ++failures;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failures.load(), 0);
  // No temp files left behind.
  for (auto& e : fs::recursive_directory_iterator(tmp_ / "store")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(OpenStoreTest, SchemesAndErrors) {
  testing::TempDir tmp;
  auto s = open_store("file://" + (tmp / "s").string());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->url(), "file://" + (tmp / "s").string());
  EXPECT_TRUE(open_store((tmp / "plain").string()).ok());
  auto s3 = open_store("s3://bucket/prefix");
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(s3.error().message().find("s3"), std::string::npos);
  EXPECT_EQ(open_store("relative/dir").error().code(), ErrorCode::kInvalidArgument);
  // A scheme rtenv has no store for: every kind of store there is, named.
  auto foo = open_store("foo://user:secret@x/y");
  ASSERT_FALSE(foo.ok());
  EXPECT_EQ(foo.error().code(), ErrorCode::kInvalidArgument);
  for (const char* named :
       {"no foo:// store", "file:///abs/dir", "s3://bucket", "http://host:port"}) {
    EXPECT_NE(foo.error().message().find(named), std::string::npos) << foo.error().message();
  }
  EXPECT_EQ(foo.error().message().find("secret"), std::string::npos);
}

TEST(BlobCodecTest, CompressesOnlyWhenItPays) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "def f(x): return x + 1\n";
  std::string wire = encode_blob(text);
  EXPECT_EQ(wire[0], 1) << "repetitive text should be compressed";
  EXPECT_LT(wire.size(), text.size() / 4);
  EXPECT_EQ(*decode_blob(wire), text);

  std::string noise(100000, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : noise) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  std::string raw = encode_blob(noise);
  EXPECT_EQ(raw[0], 0) << "incompressible data should travel raw";
  EXPECT_EQ(raw.size(), noise.size() + 1);
  EXPECT_EQ(*decode_blob(raw), noise);
  EXPECT_EQ(encode_blob("tiny")[0], 0);

  EXPECT_EQ(decode_blob("").error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(decode_blob(std::string("\x07zz", 3)).error().code(), ErrorCode::kCorrupt);
  std::string broken = wire.substr(0, wire.size() / 2);
  EXPECT_FALSE(decode_blob(broken).ok());
}

}  // namespace
}  // namespace rtenv::store
