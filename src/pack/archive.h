#pragma once
// Unpacking .zip packages (a local working_dir.zip, or one downloaded from a URL) safely.

#include <cstdint>
#include <filesystem>

#include "util/result.h"

namespace rtenv::pack {

struct ExtractStats {
  size_t files = 0, dirs = 0, symlinks = 0;
  uint64_t bytes = 0;
};

/// Extracts the zip at `zip` into the directory `dest`, which must not exist yet. Refused with
/// kUnsafe, and `dest` removed, when an entry has an absolute path or a ".." component, passes
/// through a symlink, is a symlink leading out of the tree, or is a hard link or device; kTooLarge
/// when the entries add up to more than `max_bytes`; kCorrupt when the zip cannot be read. Nothing
/// is ever written outside `dest`: every path is opened component by component without following
/// symlinks, and symlinks are created only after all files.
Result<ExtractStats> extract_zip(const std::filesystem::path& zip,
                                 const std::filesystem::path& dest, uint64_t max_bytes);

}  // namespace rtenv::pack
