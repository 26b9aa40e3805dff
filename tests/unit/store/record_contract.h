#pragma once
// The records contract every BlobStore keeps (see BlobStore::create_record): shared by the tests
// of each backend.

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/blob_store.h"

namespace rtenv::testing {

inline void expect_record_contract(store::BlobStore& store) {
  // Absent, then created once; a second create is refused and leaves the first value.
  EXPECT_EQ(store.get_record("builds/env-1.lease").error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(*store.remove_record("builds/env-1.lease"));
  ASSERT_TRUE(store.create_record("builds/env-1.lease", "first").ok());
  auto again = store.create_record("builds/env-1.lease", "second");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists) << again.error().message();
  EXPECT_EQ(*store.get_record("builds/env-1.lease"), "first");
  // put replaces; remove deletes; create works again after.
  ASSERT_TRUE(store.put_record("builds/env-1.lease", "replaced").ok());
  EXPECT_EQ(*store.get_record("builds/env-1.lease"), "replaced");
  EXPECT_TRUE(*store.remove_record("builds/env-1.lease"));
  EXPECT_EQ(store.get_record("builds/env-1.lease").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store.create_record("builds/env-1.lease", "third").ok());
  EXPECT_EQ(*store.get_record("builds/env-1.lease"), "third");
  // Binary-safe values; records are not blobs.
  std::string binary("\0\x01\xff{}\n", 6);
  ASSERT_TRUE(store.put_record("pyenvs/k.json", binary).ok());
  EXPECT_EQ(*store.get_record("pyenvs/k.json"), binary);
  size_t blobs = 0;
  ASSERT_TRUE(store.list([&](const Digest&, uint64_t) { ++blobs; }).ok());
  EXPECT_EQ(blobs, 0u);
  // Bad names are refused before anything is written.
  for (const char* bad : {"", "../x", "a//b", ".hidden", "a/.b", "sp ace", "a/", "/abs"}) {
    auto r = store.put_record(bad, "x");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  // Many racing creators: exactly one wins.
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = store.create_record("builds/race.lease", fmt::format("holder {}", i));
      if (r.ok()) {
        ++won;
      } else if (r.error().code() == ErrorCode::kAlreadyExists) {
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), 7);
}

}  // namespace rtenv::testing
