#pragma once
// An image's root filesystem assembled from its unpacked layers without copying file contents:
// every file is a hard link to the layer's own, and the OCI whiteouts of each layer remove what
// the layers below it hold.

#include <filesystem>
#include <vector>

#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

struct RootfsStats {
  size_t files = 0, dirs = 0, symlinks = 0, whiteouts = 0;
};

/// Assembles `layers` (directories pack::extract_layer made, lowest layer first) into the new
/// directory `dest`. Within each directory of a layer, its whiteouts apply first: ".wh..wh..opq"
/// empties the directory of what lower layers put there, ".wh.<name>" removes <name>; then its
/// entries replace what lower layers have at the same path (a directory merges with a directory,
/// anything else replaces). Files are hard links to the layers' files (the layers' trees must stay
/// unchanged while the rootfs is in use: the rootfs is mounted read-only or under an overlay);
/// symlinks are copied, never followed; other entry types are skipped. Every path is opened
/// component by component without following symlinks, so nothing outside `dest` is touched.
/// kIo if a file system call fails.
Result<RootfsStats> assemble_rootfs(const std::vector<fs::path>& layers, const fs::path& dest);

}  // namespace rtenv::env
