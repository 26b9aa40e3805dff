#pragma once
// Everything materialized on this node, whatever its kind, named by resource URI: what the agent
// counts, sizes and evicts.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "env/exec_plugin.h"
#include "env/kind.h"
#include "env/package_cache.h"
#include "env/python_env.h"

namespace rtenv::env {

/// The resource kinds of a node: packages, virtualenvs and one per exec plugin.
/// Thread-compatible, like the caches it holds.
class NodeCache {
 public:
  /// Python envs are shared through `store` when other nodes may use it too: when it is not
  /// this home's own directory, or the config's share_builds says so ("1": always, "0": never).
  NodeCache(const Home& home, store::BlobStore& store, const std::vector<PluginSpec>& plugins);

  PackageCache packages;
  PythonEnvCache python;

  const Home& home() const { return packages.home(); }
  /// The kind of the resource `uri` names, or nullptr.
  ResourceKind* kind_of(std::string_view uri) const;
  /// Every kind, built-in ones first.
  const std::vector<std::unique_ptr<ResourceKind>>& kinds() const { return kinds_; }

  /// Makes the resource present on the node; true if it had to be built. `timeout_ms` bounds
  /// helper processes (negative: none).
  Result<bool> ensure(const Resource& r, const InstallProgress& progress, int64_t timeout_ms);
  bool is_ready(const Resource& r) const { return r.kind->is_ready(r.uri); }

  // By URI, for resources known only from the agent's records.
  bool is_ready(const std::string& uri) const;
  /// Deletes it if no process leases it; false if one does (or the URI is not a resource).
  Result<bool> evict(const std::string& uri);
  size_t process_leases(const std::string& uri) const;
  int64_t last_leased_ms(const std::string& uri) const;
  /// Bytes on disk, hard links counted once across calls sharing `seen`; 0 if absent.
  uint64_t disk_bytes(const std::string& uri, std::set<std::pair<uint64_t, uint64_t>>* seen) const;

  /// The ready resources on the node: (kind name, uri).
  std::vector<std::pair<std::string, std::string>> list_ready() const;

 private:
  std::vector<std::unique_ptr<ResourceKind>> kinds_;
};

}  // namespace rtenv::env
