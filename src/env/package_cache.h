#pragma once
// The node's materialized packages, and the leases that keep them whole while jobs use them.

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "env/home.h"
#include "env/published_dirs.h"
#include "pack/manifest.h"
#include "store/blob_store.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::env {

/// Progress of a materialization: files written so far, of how many.
using MaterializeProgress = std::function<void(size_t files_done, size_t files_total)>;

/// Files on the node that may hold a blob's content (files of packages it materialized); one is
/// used only if its content still hashes to the digest.
using LocalBlobs = std::function<std::vector<fs::path>(const Digest&)>;

/// What a package's manifests may make on disk. Manifests come from a store and are not
/// trusted: a planted one may share one directory manifest under many names (a small tree of
/// manifests that unfolds into billions of files), lie about sizes, or hold links leading out.
struct TreeLimits {
  uint64_t max_bytes = uint64_t{2} << 30;  ///< file bytes in all (the packer's limit)
  uint64_t max_entries = 4'000'000;        ///< files, directories and links
  unsigned max_depth = 512;                ///< directory levels
};

/// Writes the tree of package `uri` from `store` into `dest` (which must not exist), verifying
/// every blob. Directories 0755, files 0644 or 0755, symlinks as recorded. Each distinct blob is
/// fetched once, and not at all if `local` has it. `file_list` (if set) gets a line
/// "<digest hex> <relative path>" per file. kTooLarge beyond `limits` (found before any file is
/// written), kUnsafe for a symlink that leads out of the package (the packer's own rule), kCorrupt
/// for a file whose content is not the size its manifest says.
Result<void> materialize_tree(store::BlobStore& store, const pack::PackageUri& uri,
                              const fs::path& dest, const MaterializeProgress& progress = nullptr,
                              const LocalBlobs& local = nullptr, std::string* file_list = nullptr,
                              const TreeLimits& limits = {});

/// The packages materialized on this node, each in `$RTENV_HOME/pkgs/<digest>/`.
///
/// Jobs run inside these directories and may change them (also as root, which permission bits do
/// not stop). A package is therefore guarded by a lock file: users hold it shared; whoever holds
/// it exclusive (no one is using the package) may build, check or rebuild it. When a package is
/// handed out it is marked dirty; when its last user lets go, its tree is compared with the stat
/// info recorded at publication (inode, size, mode, mtime, ctime of every entry: ctime changes on
/// any write, chmod, link or rename, and cannot be set back by the job) and, if anything
/// differs, rebuilt from the store. A user killed before it could check leaves the mark, and the
/// next user checks first. So a run that starts when no other run of the package is active sees
/// the package exactly as packed; concurrent runs of one package share one copy.
///
/// Builds happen in $RTENV_HOME/tmp and are published by rename: a crash never exposes a partial
/// tree. Thread-compatible; safe across processes.
class PackageCache {
 public:
  PackageCache(Home home, store::BlobStore& store)
      : home_(std::move(home)),
        store_(store),
        dirs_(home_.pkgs(), home_.tmp(), ".state", {".dirty", ".files"}) {}

  /// A package in use. Move-only; release() (or destruction) gives it back.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease() { release(); }

    const fs::path& dir() const { return dir_; }
    /// True if acquire() had to materialize the package (it was not on the node).
    bool materialized() const { return materialized_; }
    /// The descriptor of the shared lock: a process started with it inherited (no FD_CLOEXEC)
    /// keeps the package leased even if the process that took the lease dies first.
    int lock_fd() const { return lock_.fd(); }
    /// Gives the package back; if this was its last user, checks the tree and restores it if the
    /// job changed it. Returns true if it had to be restored.
    bool release();

   private:
    friend class PackageCache;
    PackageCache* cache_ = nullptr;
    pack::PackageUri uri_{Digest()};
    fs::path dir_;
    FileLock lock_;
    bool materialized_ = false;
  };

  /// Materializes the package if it is not on the node yet (fetching blobs from the store), and
  /// returns a lease on it. Errors: the store's (kNotFound for a package the store lacks,
  /// kCorrupt for a damaged blob), kIo.
  Result<Lease> acquire(const pack::PackageUri& uri);

  /// Makes the package present and as packed, without keeping a lease (what the agent does for
  /// a reference held by name). Returns true if it had to be materialized.
  Result<bool> ensure(const pack::PackageUri& uri, const MaterializeProgress& progress = nullptr);

  /// True if the package is materialized (published and recorded).
  bool is_ready(const pack::PackageUri& uri) const;

  /// Deletes the materialized package if no process holds a lease on it; false if one does.
  /// The store keeps its blobs, so it can be materialized again.
  Result<bool> evict(const pack::PackageUri& uri);

  /// Processes holding a lease on the package right now (from /proc/locks).
  size_t process_leases(const pack::PackageUri& uri) const;

  /// When a process last took a lease on the package (ms since the epoch; 0 if never).
  int64_t last_leased_ms(const pack::PackageUri& uri) const;

  /// Packages published on this node.
  std::vector<pack::PackageUri> list() const;

  fs::path dir_of(const pack::PackageUri& uri) const;
  const Home& home() const { return home_; }

 private:
  /// With the exclusive lock held: make the package present and as packed. Sets *restored when
  /// an existing tree had been changed and was rebuilt, *materialized when there was none.
  Result<void> make_pristine(const pack::PackageUri& uri, bool* restored, bool* materialized,
                             const MaterializeProgress& progress = nullptr);
  Result<void> rebuild(const pack::PackageUri& uri, const MaterializeProgress& progress = nullptr);
  /// The blobs the node's other packages hold (from their `.files` lists); nullptr if none.
  LocalBlobs local_blobs(const pack::PackageUri& except) const;

  fs::path sidecar(const pack::PackageUri& uri, std::string_view ext) const;
  /// A lease holding `lock` (shared) on the published package.
  Lease make_lease(const pack::PackageUri& uri, FileLock lock, bool materialized);

  Home home_;
  store::BlobStore& store_;
  PublishedDirs dirs_;
};

/// The stat info of every entry of a tree, in a fixed order (the record a package is checked
/// against). Binary; only compared, never interpreted across versions.
Result<std::string> capture_tree_state(const fs::path& dir);

/// Removes what builds left in $RTENV_HOME/tmp when their process is gone (a crash mid-build).
void sweep_tmp(const fs::path& tmp);

/// Bytes a tree takes on disk (allocated blocks), counting a file with several hard links once
/// across all calls that share `seen` (pairs of device and inode).
uint64_t disk_usage(const fs::path& dir, std::set<std::pair<uint64_t, uint64_t>>* seen);

}  // namespace rtenv::env
