#pragma once
// The caches installers keep on a node: uv's ($RTENV_HOME/uv-cache), pip's (pip-cache) and
// rattler's package cache for conda envs (conda/pkgs). They are no resource (nothing leases
// them, envs keep hard links or copies of what they took from them), but disk the node's cache
// limit counts; the agent prunes them when the cache is over its limit and when `rtenv gc` asks.

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "env/home.h"
#include "util/result.h"

namespace rtenv::env {

/// One cache and what pruning it did (or, for a dry run or a cache left alone, its size).
struct ToolCache {
  std::string name;  ///< "uv", "pip", "conda"
  fs::path dir;
  uint64_t bytes_before =
      0;  ///< on disk, hard-linked files counted once with the rest of the cache
  uint64_t bytes_after = 0;
  bool pruned = false;
  std::string note;  ///< why it was left alone, if it was
};

/// The node's tool caches with their sizes on disk, counting a file that is hard-linked from
/// elsewhere in the cache (an env's file that uv or rattler linked) once across `seen`.
std::vector<ToolCache> measure_tool_caches(const Home& home,
                                           std::set<std::pair<uint64_t, uint64_t>>* seen);

/// Prunes the caches `caches` lists: uv's by `uv cache prune` (uv removes what no longer serves
/// it, and is safe while other uv processes run); pip's and rattler's are emptied (renamed aside
/// into tmp/, then deleted), which only the caller may decide is safe: `installs_running` leaves
/// them alone with a note, since an install in flight reads from them. Sizes after are measured
/// again, files in `counted_elsewhere` left out as measure_tool_caches left them.
void prune_tool_caches(const Home& home, bool installs_running,
                       const std::set<std::pair<uint64_t, uint64_t>>& counted_elsewhere,
                       std::vector<ToolCache>* caches);

}  // namespace rtenv::env
