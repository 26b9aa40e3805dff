#pragma once
// Resource kinds: what a node keeps on disk for envs (package trees, virtualenvs, what exec
// plugins create), each kind one implementation of one interface. The agent counts, sizes,
// leases and evicts every kind the same way, by URI.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

class ResourceKind;

/// Reports a line of an install's progress.
using InstallProgress = std::function<void(const std::string& line)>;

/// A resource an env needs on a node, and how to make it.
struct Resource {
  std::string field;  ///< where the env asks for it, for messages: "working_dir", "py_modules[0]"
  std::string uri;  ///< its name on the node: "rtenv://sha256/…", "pyenv://…", "plugin://f/…"
  // Set by env::plan, from the field that named it and from the URI:
  std::string owner;  ///< the top-level field whose value needs it: "py_modules"
  ResourceKind* kind = nullptr;
  /// What the kind needs beyond the URI to make it (its own type; see each kind).
  std::shared_ptr<const void> request;
};

/// A resource in use by this process; released on destruction.
class ResourceLease {
 public:
  virtual ~ResourceLease() = default;
  /// The descriptor of the lease's lock: a process started with it inherited keeps the
  /// resource leased even if the process that took the lease dies first.
  virtual int lock_fd() const = 0;
  /// Gives the resource back. True if its content had been changed and was restored.
  virtual bool release() = 0;
};

/// One kind of resource. Implementations are thread-compatible and safe across processes (the
/// files are the truth: locks, ready marks, atomic publication).
class ResourceKind {
 public:
  virtual ~ResourceKind() = default;

  /// The kind's name, the same wherever it is reported or limited ("package", "python",
  /// "plugin:<field>"): config `kind_limits` keys, `rtenv env list`.
  virtual std::string name() const = 0;
  /// True if `uri` names a resource of this kind.
  virtual bool owns(std::string_view uri) const = 0;

  /// Makes the resource present and published; true if it had to be made. `timeout_ms` bounds
  /// helper processes (negative: none). Idempotent; concurrent callers make it once.
  virtual Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                              int64_t timeout_ms) = 0;
  /// ensure(), then a lease that keeps it from being evicted (and, where the kind checks
  /// content, whole) until released.
  virtual Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r,
                                                         const InstallProgress& progress,
                                                         int64_t timeout_ms) = 0;

  // By URI alone, for resources known only from the agent's records.
  virtual bool is_ready(const std::string& uri) const = 0;
  /// Deletes it if no process leases it; false if one does.
  virtual Result<bool> evict(const std::string& uri) = 0;
  virtual size_t process_leases(const std::string& uri) const = 0;
  virtual int64_t last_leased_ms(const std::string& uri) const = 0;
  /// Where its files are (for sizes); empty if it has none.
  virtual fs::path dir_of(const std::string& uri) const = 0;
  /// URIs of the published resources of this kind on the node.
  virtual std::vector<std::string> list_ready() const = 0;
};

}  // namespace rtenv::env
