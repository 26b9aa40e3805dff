#pragma once
// Packing: a directory (or one file) into content-addressed blobs in a store, named by a
// package URI. Only blobs the store lacks are uploaded; unchanged files are not even read.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pack/manifest.h"
#include "store/blob_store.h"
#include "util/result.h"

namespace rtenv::pack {

namespace fs = std::filesystem;

struct PackOptions {
  std::vector<std::string> excludes;  ///< gitignore syntax, relative to the root
  /// Fail when the package's files add up to more than this.
  uint64_t max_package_bytes = uint64_t{2} << 30;
  /// Warn about single files larger than this.
  uint64_t warn_file_bytes = uint64_t{100} << 20;
  /// If set, the package holds the directory itself under this name (py_modules: the package
  /// holds `mylib/`, and its root goes on PYTHONPATH).
  std::optional<std::string> wrap_in_dir;
  /// Where the client-side index for this root lives; empty: no index.
  fs::path index_file;
  /// Hashing and upload threads; 0 = one per core.
  unsigned threads = 0;
  /// Directories never packed, wherever they appear in the tree: rtenv's own state directory,
  /// so a working_dir that contains $RTENV_HOME does not pack its own store.
  std::vector<fs::path> skip_dirs;
  /// Obey `.gitignore` and `.rtenvignore` files in the tree (false for an unpacked archive,
  /// whose contents are the package; `excludes` apply either way).
  bool ignore_files = true;
};

struct PackStats {
  size_t files = 0, dirs = 0, symlinks = 0;
  uint64_t file_bytes = 0;
  size_t files_hashed = 0;  ///< files whose content was read (index misses)
  uint64_t bytes_hashed = 0;
  size_t blobs = 0;           ///< distinct blobs in the package (files and manifests)
  size_t blobs_uploaded = 0;  ///< blobs the store lacked and got
  size_t blobs_present = 0;   ///< blobs the store already had
  uint64_t bytes_uploaded = 0;
  double walk_ms = 0, hash_ms = 0, query_ms = 0, upload_ms = 0, total_ms = 0;
  std::vector<std::string> warnings;
};

struct PackResult {
  PackageUri uri;
  PackStats stats;
};

/// Progress of the hashing phase, reported from a worker thread at most every few ms.
struct PackProgress {
  size_t files_done, files_total;
  uint64_t bytes_done, bytes_total;
};
using PackProgressFn = std::function<void(const PackProgress&)>;

/// Packs `path` (a directory, or a single regular file, which becomes a package holding that
/// file under its own name) into `store`. Idempotent. Errors: kNotFound for a missing path,
/// kUnsafe for a link leading out, kTooLarge over max_package_bytes (naming the largest files and
/// how to exclude them), kIo, and the store's errors. A file that changes while it is being
/// packed is detected and the pack fails (kUnavailable: pack again); nothing is removed from the
/// store (what was uploaded was verified as it was written).
Result<PackResult> pack_path(const fs::path& path, store::BlobStore& store,
                             const PackOptions& options, const PackProgressFn& progress = nullptr);

/// The content of the regular file at `path` ("dir/name", no "." or "..") in package `uri`,
/// read through its manifests (a few small reads, whatever the package's size). kNotFound if the
/// package has no such file, kInvalidArgument if it names a directory or a link, kTooLarge over
/// `max_bytes`.
Result<std::string> read_package_file(store::BlobStore& store, const PackageUri& uri,
                                      std::string_view path, uint64_t max_bytes);

/// Human-readable byte count ("1.5 GiB").
std::string format_bytes(uint64_t bytes);

}  // namespace rtenv::pack
