#pragma once
// The shape every node-side cache shares: entries published atomically as directories, each
// guarded by a lock file that users hold shared and builders or evictors hold exclusive.

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

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

  /// True if the entry is published: its ready mark and its directory exist.
  bool is_ready(std::string_view name) const;
  /// Deletes the entry if no process holds its lock; false if one does. kIo if it cannot.
  /// `before_remove` (if set) runs with the exclusive lock held, before anything is removed.
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

}  // namespace rtenv::env
