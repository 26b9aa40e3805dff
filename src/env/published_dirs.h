#pragma once
// The shape every node-side cache shares: entries published atomically as directories, each
// guarded by a lock file that users hold shared and builders or evictors hold exclusive.

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "env/kind.h"
#include "util/fs.h"
#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

/// The name prefix of evicted trees in a tmp directory.
inline constexpr const char* kEvictedPrefix = "evicted";

/// Deletes the trees eviction renamed aside into `tmp` (slow for big trees: run it outside
/// locks others wait on). Any process may: they are no one's. What a crash leaves is swept
/// with the rest of tmp/ (their names carry the evicting process's pid).
void remove_evicted(const fs::path& tmp);

/// Takes the lock at `path`, waiting at most until `deadline` (steady ms; negative: as long as it
/// takes). kTimeout past it: "... waiting for another process that is making <what>".
Result<FileLock> lock_until(const fs::path& path, FileLock::Mode mode, int64_t deadline,
                            const std::string& what);

/// Entries `<root>/<name>/`, each with sidecars `<root>/<name><ext>`: `.lock` (users hold it
/// shared; builders and eviction exclusive; its mtime is the last lease), the ready mark
/// (written last when an entry is published; an entry without it is never used), and any
/// other sidecars the owner keeps. Deleting unpublishes first (the sidecars, then the tree is
/// renamed aside into `tmp` and removed), so nobody trusts a half-deleted entry. Stateless
/// apart from paths: thread-compatible; safe across processes.
class PublishedDirs {
 public:
  /// `ready_ext` names the ready mark (".ready"); `sidecars` are removed with the entry.
  PublishedDirs(fs::path root, fs::path tmp, std::string ready_ext,
                std::vector<std::string> sidecars = {});

  fs::path dir(std::string_view name) const { return root_ / std::string(name); }
  fs::path sidecar(std::string_view name, std::string_view ext) const;
  fs::path lock_path(std::string_view name) const { return sidecar(name, ".lock"); }
  fs::path ready_mark(std::string_view name) const { return sidecar(name, ready_ext_); }
  const fs::path& root() const { return root_; }
  const fs::path& tmp() const { return tmp_; }

  /// What builds an entry: fills `dir` (the entry's own directory, absent when called; build in
  /// place, or elsewhere and rename it there) and may write sidecars. Runs under the exclusive
  /// lock; the ready mark is written after it succeeds. On error, whatever it left is removed.
  using Make = std::function<Result<void>(const fs::path& dir)>;
  /// Makes the entry once across processes: returns false at once if it is published; else
  /// takes the exclusive lock (waiting for a concurrent maker until `deadline`, steady ms;
  /// negative: no limit), removes what a failed maker left, runs `make` and publishes. True if
  /// this call made it. `what` names the entry in timeouts.
  Result<bool> make_once(std::string_view name, int64_t deadline, const std::string& what,
                         const Make& make) const;
  /// A shared lease on the published entry (its lock held shared, its mtime stamped as "last
  /// used"), making it with make_once first when it is not published (or was evicted
  /// meanwhile). kUnavailable if it keeps disappearing.
  Result<FileLock> lease(std::string_view name, int64_t deadline, const std::string& what,
                         const Make& make) const;

  /// True if the entry is published: its ready mark and its directory exist.
  bool is_ready(std::string_view name) const;
  /// Deletes the entry if no process holds its lock; false if one does. kIo if it cannot.
  /// `before_remove` (if set) runs with the exclusive lock held, before anything is removed.
  /// The tree is renamed aside into `tmp` (quick, whatever its size); remove_evicted deletes it.
  Result<bool> evict(std::string_view name,
                     const std::function<void(const fs::path& dir)>& before_remove = nullptr) const;
  /// Processes holding the entry's lock shared right now (from /proc/locks).
  size_t process_leases(std::string_view name) const;
  /// When a process last took a lease on the entry (the lock's mtime; 0 if never).
  int64_t last_leased_ms(std::string_view name) const;
  /// Names of the published entries.
  std::vector<std::string> list_ready() const;

 private:
  fs::path root_, tmp_;
  std::string ready_ext_;
  std::vector<std::string> sidecars_;
};

/// A kind whose resources are the entries of one PublishedDirs, each named by what its URI has
/// after `prefix`: ownership, readiness, eviction, leases, directories and listing by URI, which
/// every such kind answers the same way. A kind adds making (ensure, acquire) and what it keeps
/// beside an entry.
class PublishedDirsKind : public ResourceKind {
 public:
  bool owns(std::string_view uri) const override { return uri.starts_with(prefix_); }
  bool is_ready(const std::string& uri) const override {
    return owns(uri) && dirs_.is_ready(key(uri));
  }
  Result<bool> evict(const std::string& uri) override {
    return owns(uri) ? dirs_.evict(key(uri)) : Result<bool>(false);
  }
  size_t process_leases(const std::string& uri) const override {
    return owns(uri) ? dirs_.process_leases(key(uri)) : 0;
  }
  int64_t last_leased_ms(const std::string& uri) const override {
    return owns(uri) ? dirs_.last_leased_ms(key(uri)) : 0;
  }
  fs::path dir_of(const std::string& uri) const override {
    return owns(uri) ? dirs_.dir(key(uri)) : fs::path();
  }
  std::vector<std::string> list_ready() const override;

  /// The URI prefix of this kind's resources.
  const std::string& prefix() const { return prefix_; }

 protected:
  PublishedDirsKind(std::string prefix, PublishedDirs dirs)
      : prefix_(std::move(prefix)), dirs_(std::move(dirs)) {}
  /// The entry's name of a URI this kind owns.
  std::string key(std::string_view uri) const { return std::string(uri.substr(prefix_.size())); }
  const PublishedDirs& dirs() const { return dirs_; }

 private:
  std::string prefix_;
  PublishedDirs dirs_;
};

/// A lease that is a shared lock on a published entry (PublishedDirs::lease): the kind of
/// resource whose content nobody checks on release.
class DirLease : public ResourceLease {
 public:
  explicit DirLease(FileLock lock) : lock_(std::move(lock)) {}
  int lock_fd() const override { return lock_.fd(); }
  bool release() override {
    lock_.release();
    return false;
  }

 private:
  FileLock lock_;
};

}  // namespace rtenv::env
