#pragma once
// What a collector (pack/store_gc) needs of a store, beside the BlobStore interface: every blob
// with the time it was last used, a manifest read without marking it used, and the removal of a
// blob only if it was not used since. LocalStore (a directory) and S3Store implement it; rtenv's
// blob server is collected on the server, over its LocalStore (`rtenv store serve --gc-every`).
//
// A store marks a blob used when it is written, found present by `missing` or read, refreshing
// its time at most every `touch_interval_ms()`. A collector that keeps what was used within a
// window much longer than that never takes a blob a pack has just found present (and relies on)
// or a node has just fetched.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "util/digest.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::store {

class CollectableStore {
 public:
  virtual ~CollectableStore() = default;

  /// How stale a blob's time may get before a use refreshes it. A collection window must be at
  /// least twice this.
  virtual int64_t touch_interval_ms() const = 0;
  /// Calls `fn(digest, stored_bytes, used_ms)` for every blob (used_ms: ms since the epoch).
  virtual Result<void> scan(const std::function<void(const Digest&, uint64_t, int64_t)>& fn) = 0;
  /// Records bigger than this are skipped by scan_records (none is written that big).
  static constexpr uint64_t kMaxRecordBytes = 1 << 20;
  /// Calls `fn(name, text)` for every record (unreadable or bigger ones are skipped).
  virtual Result<void> scan_records(
      const std::function<void(const std::string&, const std::string&)>& fn) = 0;
  /// The blob's content if `wanted` says yes to its first `head_bytes` bytes (all of it if it is
  /// shorter) and it is at most `max_bytes` (nullopt otherwise, and for a blob that is gone or
  /// does not hash to its name), read without marking it used. Only the first bytes are read when
  /// they are not wanted.
  using HeadTest = std::function<bool(std::string_view head)>;
  virtual Result<std::optional<std::string>> read_if(const Digest& digest, size_t head_bytes,
                                                     const HeadTest& wanted,
                                                     uint64_t max_bytes) = 0;
  /// Removes the blob if it was still not used since `cutoff_ms` (one used since it was scanned
  /// stays): true if removed.
  virtual Result<bool> remove_if_untouched_since(const Digest& digest, int64_t cutoff_ms) = 0;
  /// Held exclusive while a collection runs: packs that hold it shared
  /// (BlobStore::hold_against_collection) wait. Stores without such a lock return an empty one.
  virtual Result<FileLock> lock_for_collection(FileLock::Mode mode) = 0;
};

}  // namespace rtenv::store
