#pragma once
// The blob store interface: content-addressed bytes, named by their SHA-256 digest.
// Backends: LocalStore (a directory: the default, and shared filesystems). Network backends
// (S3, rtenv's blob server) implement the same interface.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "util/digest.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::store {

namespace fs = std::filesystem;

/// Where bytes go, chunk by chunk, as they are produced; an error stops the stream.
using ChunkSink = std::function<Result<void>(std::string_view)>;

/// A content-addressed blob store. Every implementation is safe to call from several threads
/// and from several processes (and hosts, where the backend is shared) at once: puts of the same
/// blob race harmlessly, and no reader ever sees a partly written blob.
class BlobStore {
 public:
  virtual ~BlobStore() = default;

  /// The URL this store was opened with (file:///..., s3://..., http://...).
  virtual std::string url() const = 0;

  /// For each digest, true if the store does not have it. One batched call (one round trip for
  /// network stores).
  virtual Result<std::vector<bool>> missing(const std::vector<Digest>& digests) = 0;

  /// Stores `data` under `digest` unless it is already there. Every store hashes what it writes
  /// and refuses bytes that do not hash to `digest` (kCorrupt, content_mismatch): a name in a
  /// store always means its content.
  virtual Result<void> put(const Digest& digest, std::string_view data) = 0;

  /// Stores the content of the regular file at `path` unless the blob is already there; what is
  /// read from the file is hashed as it is copied, and refused (kCorrupt) unless it hashes to
  /// `digest` (a file changed since its digest was computed).
  virtual Result<void> put_file(const Digest& digest, const fs::path& path) = 0;

  /// Reads a whole blob. kNotFound if absent; kCorrupt if its content does not hash to `digest`.
  virtual Result<std::string> get(const Digest& digest) = 0;

  /// What get_to_file's `max_bytes` is when the caller does not know the blob's size.
  static constexpr uint64_t kAnySize = ~uint64_t{0};
  /// Writes a blob into the new file `dest` (which must not exist) with `mode`, verifying its
  /// digest; on any error `dest` is removed. A blob bigger than `max_bytes` (the size the caller
  /// expects, such as a manifest's) is refused (kTooLarge) as soon as it passes that size, so a
  /// hostile store cannot fill the disk.
  virtual Result<void> get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                                   uint64_t max_bytes = kAnySize) = 0;

  /// Deletes a blob; returns false if it was not there.
  virtual Result<bool> remove(const Digest& digest) = 0;

  /// Calls `fn(digest, stored_bytes)` for every blob.
  virtual Result<void> list(const std::function<void(const Digest&, uint64_t)>& fn) = 0;

  /// A hold a pack keeps from its `missing` query until its root manifest is published, so
  /// that a collection of the store cannot take a blob the pack found present in between (a
  /// directory store: a shared lock its collector takes exclusively). Default: none needed.
  virtual Result<FileLock> hold_against_collection() { return FileLock(); }
  /// How many reads are worth keeping in flight at once: a network store is bound by round
  /// trips, a directory by the disk (0: one per core).
  virtual unsigned parallel_reads() const { return 0; }

  // Records: small named values beside the blobs, not content-addressed (build leases, pointers
  // to published envs). A name is one or more '/'-separated segments of [A-Za-z0-9._-], none
  // starting with '.'; records never show up in list().

  /// Creates the record only if no record of that name exists: kAlreadyExists otherwise. Atomic
  /// against writers on other hosts (the one way a cluster agrees on who builds something).
  virtual Result<void> create_record(std::string_view name, std::string_view data) = 0;

  /// Writes the record, replacing any previous value.
  virtual Result<void> put_record(std::string_view name, std::string_view data) = 0;

  /// Reads a record: kNotFound if absent.
  virtual Result<std::string> get_record(std::string_view name) = 0;

  /// Deletes a record; returns false if it was not there.
  virtual Result<bool> remove_record(std::string_view name) = 0;
};

/// Checks a record name (see BlobStore): kInvalidArgument naming the problem.
Result<void> check_record_name(std::string_view name);

/// Opens the store named by `url`: "file:///abs/dir" or a plain absolute directory path.
/// Other schemes give kUnsupported with a message naming the scheme.
Result<std::unique_ptr<BlobStore>> open_store(std::string_view url);

/// The refusal of a write whose bytes do not hash to the digest they are to be stored under.
/// `source` names where they came from (a file, "the data").
inline Error content_mismatch(const Digest& digest, const Digest& actual, std::string_view source) {
  return make_error(ErrorCode::kCorrupt,
                    "refusing to store {} as blob {}: its content hashes to {} (did it change "
                    "while it was read?)",
                    source, digest.hex(), actual.hex());
}

}  // namespace rtenv::store
