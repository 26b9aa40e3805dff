#pragma once
// Everything materialized on this node, whatever its kind, named by resource URI: what the agent
// counts, sizes and evicts.

#include <set>
#include <string>
#include <vector>

#include "env/package_cache.h"
#include "env/python_env.h"

namespace rtenv::env {

/// A resource an env needs on a node, and how to make it.
struct Resource {
  std::string field;  ///< "working_dir", "py_modules[0]", "pip"
  std::string kind;   ///< "working_dir", "py_modules", "python": what per-kind limits apply to
  std::string uri;    ///< "rtenv://sha256/<hex>" (a package) or "pyenv://<key>" (a virtualenv)
  std::optional<pack::PackageUri> package;
  std::optional<PythonEnvRequest> python;
};

/// The packages and virtualenvs of a node. Thread-compatible, like the caches it holds.
class NodeCache {
 public:
  /// Python envs are shared through `store` when other nodes may use it too: when it is not
  /// this home's own directory, or RTENV_SHARE_BUILDS says so ("1": always, "0": never).
  NodeCache(const Home& home, store::BlobStore& store);

  PackageCache packages;
  PythonEnvCache python;

  /// Makes the resource present on the node; true if it had to be built. `timeout_ms` bounds
  /// installer processes (negative: none).
  Result<bool> ensure(const Resource& r, const InstallProgress& progress, int64_t timeout_ms);
  bool is_ready(const Resource& r) const;

  // By URI, for resources known only from the agent's records.
  bool is_ready(const std::string& uri) const;
  /// Deletes it if no process leases it; false if one does (or the URI is not a resource).
  Result<bool> evict(const std::string& uri);
  size_t process_leases(const std::string& uri) const;
  int64_t last_leased_ms(const std::string& uri) const;
  /// Bytes on disk, hard links counted once across calls sharing `seen`; 0 if absent.
  uint64_t disk_bytes(const std::string& uri, std::set<std::pair<uint64_t, uint64_t>>* seen) const;

  /// The ready resources on the node: (kind, uri). Packages have the kind "package".
  std::vector<std::pair<std::string, std::string>> list_ready() const;
};

}  // namespace rtenv::env
