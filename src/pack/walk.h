#pragma once
// Walking a package's source directory: ignore rules, symlink policy, stat of every entry.

#include <sys/stat.h>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pack/manifest.h"
#include "util/result.h"

namespace rtenv::pack {

namespace fs = std::filesystem;

/// What the index compares to decide that a file is unchanged (git's "stat info").
struct FileStat {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t ino = 0;
  uint64_t dev = 0;
  bool operator==(const FileStat&) const = default;
};

FileStat file_stat_of(const struct stat& st);

struct WalkedFile {
  std::string rel_path;  ///< '/'-separated, relative to the walk root
  FileStat stat;
  bool executable = false;
  Digest digest;  ///< filled in by the packer
};

/// A directory of the walked tree. Children are in no particular order.
struct WalkedDir {
  struct Child {
    std::string name;
    EntryKind kind;
    size_t file_index = 0;           ///< kFile / kExecutable: index into WalkResult::files
    std::unique_ptr<WalkedDir> dir;  ///< kDirectory
    std::string target;              ///< kSymlink
  };
  std::vector<Child> children;
};

struct WalkResult {
  WalkedDir root;
  std::vector<WalkedFile> files;
  uint64_t file_bytes = 0;
  size_t dirs = 0;  ///< not counting the root
  size_t symlinks = 0;
  std::vector<std::string> warnings;  ///< one line each, e.g. skipped sockets
};

/// Walks `root` (a directory), honouring `excludes` (gitignore syntax, relative to root), every
/// `.gitignore` (as git does) and `.rtenvignore` (same syntax; with `excludes`, it overrides
/// .gitignore files), and skipping every `.git` directory.
///
/// Symlinks are kept as links when they resolve inside the tree (also through other links in it);
/// a link that leads out of the tree (absolute, or through "..") is an error (kUnsafe) naming the
/// link and saying how to exclude it. Sockets, FIFOs and devices are skipped with a warning.
/// Directories in `skip_dirs` (by device and inode; e.g. $RTENV_HOME inside a working_dir) are
/// left out as if excluded. `ignore_files` false: `.gitignore` and `.rtenvignore` files are
/// packed as files and not obeyed (an archive's contents are the package, as Ray keeps them).
Result<WalkResult> walk_tree(const fs::path& root, const std::vector<std::string>& excludes,
                             const std::vector<std::pair<uint64_t, uint64_t>>& skip_dirs = {},
                             bool ignore_files = true);

/// True if the link at `link_rel_dir` (relative to the tree open at `root_fd`) with `target`
/// resolves inside the tree, following links inside it component by component (at most 40).
bool link_stays_inside(int root_fd, const std::string& link_rel_dir, const std::string& target);

/// The error for an entry of a tree being packed that cannot be opened: "<what> <path>: <reason>",
/// and for a permission error the way out (leave it out with excludes or .rtenvignore).
Error unreadable_entry_error(std::string_view what, const fs::path& path, int err);

}  // namespace rtenv::pack
