#pragma once

#include "store/blob_store.h"
#include "store/collectable.h"

namespace rtenv::store {

/// A store in a directory: `<root>/<first two hex digits>/<64 hex digits>`, blobs stored as is
/// (compression does not pay on a local disk). Safe for several writers on several hosts of a
/// shared filesystem: every write goes to a unique temp name in the final directory, then is
/// renamed into place. The one file lock is between packs and a collection (see below).
/// Thread-safe.
class LocalStore final : public BlobStore, public CollectableStore {
 public:
  /// Creates `root` if needed.
  static Result<std::unique_ptr<LocalStore>> open(const fs::path& root);
  /// Opens the store a URL names: "file:///abs/dir" or an absolute directory path. Other kinds
  /// of store give kUnsupported (s3://, http(s)://) or kInvalidArgument, as open_store says.
  static Result<std::unique_ptr<LocalStore>> open_url(std::string_view url);

  std::string url() const override;
  Result<std::vector<bool>> missing(const std::vector<Digest>& digests) override;
  Result<void> put(const Digest& digest, std::string_view data) override;
  Result<void> put_file(const Digest& digest, const fs::path& path) override;
  Result<std::string> get(const Digest& digest) override;
  Result<void> get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                           uint64_t max_bytes = kAnySize) override;
  Result<bool> remove(const Digest& digest) override;
  Result<void> list(const std::function<void(const Digest&, uint64_t)>& fn) override;
  /// Records live in `<root>/records/<name>`; create_record writes a temp file and hard-links
  /// it to the name (link() fails if the name exists, also on NFS), put_record renames.
  Result<void> create_record(std::string_view name, std::string_view data) override;
  Result<void> put_record(std::string_view name, std::string_view data) override;
  Result<std::string> get_record(std::string_view name) override;
  Result<bool> remove_record(std::string_view name) override;

  /// Stores the bytes `produce` hands to the sink it is given, in order, unless the blob is
  /// already here (then `produce` is not called). They go to a temp file beside the blob and are
  /// hashed on the way; the file is renamed into place only if they hash to `digest`
  /// (content_mismatch naming `source` otherwise, and nothing is kept). An error from `produce`
  /// is returned as it is. Memory: none beyond what `produce` holds, whatever the blob's size.
  Result<void> put_stream(const Digest& digest,
                          const std::function<Result<void>(const ChunkSink&)>& produce,
                          std::string_view source);

  /// Where the blob with this digest lives (whether or not it exists).
  fs::path blob_path(const Digest& digest) const;

  // ---- Collection (store/collectable.h). A blob's mtime says when it was last written, found
  // present by `missing` or read by `get`/`get_to_file` (refreshed at most every
  // kTouchInterval).

  static constexpr int64_t kTouchIntervalMs = 10 * 60 * 1000;
  int64_t touch_interval_ms() const override { return kTouchIntervalMs; }
  Result<void> scan(const std::function<void(const Digest&, uint64_t, int64_t)>& fn) override;
  Result<void> scan_records(
      const std::function<void(const std::string&, const std::string&)>& fn) override;
  Result<std::optional<std::string>> read_if(const Digest& digest, size_t head_bytes,
                                             const HeadTest& wanted, uint64_t max_bytes) override;
  Result<bool> remove_if_untouched_since(const Digest& digest, int64_t cutoff_ms) override;
  /// Held shared by a pack from its `missing` query until its root manifest is published (and by
  /// the blob server while it answers a `missing` query), and exclusive by a collector while it
  /// runs, so a collection never runs between the two.
  Result<FileLock> lock_for_collection(FileLock::Mode mode) override;
  Result<FileLock> hold_against_collection() override {
    return lock_for_collection(FileLock::Mode::kShared);
  }

 private:
  explicit LocalStore(fs::path root) : root_(std::move(root)) {}
  /// Writes through `fill(fd)` into a temp file in the blob's directory, then renames it in.
  Result<void> publish(const Digest& digest, const std::function<Result<void>(int fd)>& fill);
  /// The error for a corrupt blob, which is moved aside into corrupt/ (the next upload of its
  /// content replaces it).
  Error corrupt(const Digest& digest, const Digest& actual) const;
  /// The record's path, its directory created; kInvalidArgument for a bad name.
  Result<fs::path> record_path(std::string_view name, bool create_dir) const;

  fs::path root_;
};

}  // namespace rtenv::store
