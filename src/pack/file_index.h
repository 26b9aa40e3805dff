#pragma once
// The client-side index: for each file of a packed directory, the stat info it had when it was
// hashed and its digest, so an unchanged file is never read again (git's index does the same).

#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pack/walk.h"
#include "util/digest.h"
#include "util/result.h"

namespace rtenv::pack {

/// Not thread-safe: one owner (the packer), which looks up from one thread.
class FileIndex {
 public:
  /// Loads the index file; any problem (absent, truncated, other version) gives an empty index:
  /// it is only a cache.
  static FileIndex load(const std::filesystem::path& file);

  /// The digest recorded for `rel_path` if its stat info is unchanged, else nullptr.
  const Digest* lookup(const std::string& rel_path, const FileStat& stat) const;

  /// Replaces the whole content (the files of the latest walk). Entries whose ctime or mtime is
  /// not older than `hashed_at_ns` minus the filesystem's timestamp granularity are left out: a
  /// change in the same clock tick would not show in their stat info ("racily clean" in git).
  void replace(const std::vector<WalkedFile>& files, int64_t hashed_at_ns);

  /// Writes the index atomically if replace() changed it.
  Result<void> save(const std::filesystem::path& file) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    FileStat stat;
    Digest digest;
    bool operator==(const Entry&) const = default;
  };
  std::unordered_map<std::string, Entry> entries_;
  bool changed_ = false;
};

/// Nanoseconds since the epoch, from the clock file timestamps come from.
int64_t now_realtime_ns();

}  // namespace rtenv::pack
