#pragma once
// The node agent's metrics (docs/metrics.md): what it counts as it serves, and the gauges it
// computes from its state when scraped. The Agent owns one and feeds it; `rtenv agent
// --metrics-listen` serves its text.

#include <string>
#include <vector>

#include "util/metrics.h"

namespace rtenv::agent {

/// Thread-safe (every family is).
struct AgentMetrics {
  /// Registers every family; the counters of `kinds` (the node's resource kinds) start at 0, so
  /// a series exists before its first event.
  explicit AgentMetrics(const std::vector<std::string>& kinds);

  metrics::Registry registry;

  // Counted as the agent serves.
  metrics::Counter& envs_created;        ///< {kind}: envs whose setup installed resources of kind
  metrics::Counter& env_failures;        ///< {kind}: setups that failed, by the failing kind
  metrics::Counter& cache_hits;          ///< requests answered with nothing to install
  metrics::Counter& cache_misses;        ///< requests that needed an install (theirs or another's)
  metrics::Counter& failure_cache_hits;  ///< requests answered with a remembered failure
  metrics::Counter& evictions;           ///< {kind}
  metrics::Counter& evicted_bytes;       ///< {kind}
  metrics::Histogram& setup_seconds;     ///< {phase}: queue, resolve, resources, total
  metrics::Histogram& install_seconds;   ///< {kind, outcome}: installed, cached, failed

  // Computed when scraped (Agent::metrics_text).
  metrics::Gauge& cache_bytes;         ///< {kind}
  metrics::Gauge& resources;           ///< {kind}
  metrics::Gauge& cache_limit_bytes;   ///< the high watermark
  metrics::Gauge& cache_low_bytes;     ///< the low watermark
  metrics::Gauge& kind_limit_bytes;    ///< {kind}: kinds with a limit of their own
  metrics::Gauge& references;          ///< (env, holder) pairs
  metrics::Gauge& holders;             ///< distinct holders
  metrics::Gauge& envs;                ///< {state}
  metrics::Gauge& process_leases;      ///< {kind}
  metrics::Gauge& setups_in_progress;  ///< envs being set up now

  /// The label of a failure that is not one resource's (planning, the launch plan, a bug).
  static constexpr const char* kNoKind = "none";
};

}  // namespace rtenv::agent
