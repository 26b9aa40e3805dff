#include "env/shared_build.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/local_store.h"
#include "testing/temp_dir.h"
#include "util/clock.h"

namespace rtenv::env {
namespace {

class SharedBuildsTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(store::LocalStore::open(tmp_ / "store")).value(); }
  SharedBuilds builds(int64_t lease_ms = 600) {
    return SharedBuilds(*store_, SharedBuilds::Options{lease_ms, 20, 50});
  }
  testing::TempDir tmp_;
  std::unique_ptr<store::LocalStore> store_;
};

TEST_F(SharedBuildsTest, PublishedRecordComesFirst) {
  ASSERT_TRUE(store_->put_record("x.json", "published").ok());
  auto claim = builds().claim("x.json", "x.lease", -1, nullptr);
  ASSERT_TRUE(claim.ok()) << claim.error().message();
  EXPECT_EQ(claim->published, "published");
  EXPECT_EQ(claim->lease, nullptr);
  EXPECT_EQ(store_->get_record("x.lease").error().code(), ErrorCode::kNotFound);
}

TEST_F(SharedBuildsTest, OneClaimantBuildsTheOthersGetWhatItPublished) {
  std::atomic<int> leases{0}, published{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      std::vector<std::string> reports;
      auto claim = builds().claim("x.json", "x.lease", steady_ms() + 10'000,
                                  [&](const std::string& r) { reports.push_back(r); });
      ASSERT_TRUE(claim.ok()) << claim.error().message();
      if (claim->lease) {
        ++leases;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // "building"
        ASSERT_TRUE(store_->put_record("x.json", "the env").ok());
        claim->lease->release();
      } else {
        EXPECT_EQ(claim->published, "the env");
        ++published;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(leases.load(), 1);
  EXPECT_EQ(published.load(), 5);
  EXPECT_EQ(store_->get_record("x.lease").error().code(), ErrorCode::kNotFound);
}

TEST_F(SharedBuildsTest, ALiveLeaseIsRenewedAndWaitedFor) {
  auto first = builds(300).claim("x.json", "x.lease", -1, nullptr);
  ASSERT_TRUE(first.ok() && first->lease);
  // Well past the lease's first expiry its holder still has it: it was renewed.
  std::vector<std::string> reports;
  auto second = builds(300).claim("x.json", "x.lease", steady_ms() + 800,
                                  [&](const std::string& r) { reports.push_back(r); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kTimeout);
  EXPECT_NE(second.error().message().find(SharedBuilds::this_holder()), std::string::npos)
      << second.error().message();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("waiting for"), std::string::npos);
  // Released: the lease record is gone and the next claimant gets it.
  first->lease->release();
  auto third = builds().claim("x.json", "x.lease", steady_ms() + 1000, nullptr);
  ASSERT_TRUE(third.ok() && third->lease);
}

TEST_F(SharedBuildsTest, AnExpiredLeaseIsTakenOver) {
  nlohmann::json dead = {{"holder", "gone:42"}, {"expires_ms", wall_ms() + 150}};
  ASSERT_TRUE(store_->create_record("x.lease", dead.dump()).ok());
  std::vector<std::string> reports;
  int64_t t0 = steady_ms();
  auto claim = builds().claim("x.json", "x.lease", steady_ms() + 5000,
                              [&](const std::string& r) { reports.push_back(r); });
  ASSERT_TRUE(claim.ok()) << claim.error().message();
  EXPECT_TRUE(claim->lease);
  EXPECT_GE(steady_ms() - t0, 100);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0], "waiting for gone:42 to build it");
  EXPECT_EQ(reports[1], "the build lease of gone:42 has expired: taking over");
  auto now_held = nlohmann::json::parse(*store_->get_record("x.lease"));
  EXPECT_EQ(now_held["holder"], SharedBuilds::this_holder());
}

TEST_F(SharedBuildsTest, AnUnreadableLeaseIsTakenOver) {
  ASSERT_TRUE(store_->create_record("x.lease", "not json").ok());
  auto claim = builds().claim("x.json", "x.lease", steady_ms() + 5000, nullptr);
  ASSERT_TRUE(claim.ok()) << claim.error().message();
  EXPECT_TRUE(claim->lease);
}

}  // namespace
}  // namespace rtenv::env
