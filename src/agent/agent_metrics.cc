#include "agent/agent_metrics.h"

namespace rtenv::agent {

AgentMetrics::AgentMetrics(const std::vector<std::string>& kinds)
    : envs_created(registry.counter(
          "rtenv_envs_created_total",
          "Envs this agent set up that had to install resources, by the kind of resource "
          "installed (an env that installed several kinds counts once under each).",
          {"kind"})),
      env_failures(registry.counter(
          "rtenv_env_failures_total",
          "Env setups that failed, by the kind of the resource that failed (none: resolving, "
          "planning or the launch plan failed outside any resource).",
          {"kind"})),
      cache_hits(registry.counter(
          "rtenv_cache_hits_total",
          "GetOrCreateRuntimeEnv requests answered with every resource already on the node.")),
      cache_misses(registry.counter(
          "rtenv_cache_misses_total",
          "GetOrCreateRuntimeEnv requests that needed an install (their own or another "
          "request's for the same env), failed ones included.")),
      failure_cache_hits(registry.counter(
          "rtenv_failure_cache_hits_total",
          "GetOrCreateRuntimeEnv requests answered with the remembered error of a recent failed "
          "setup of the same env (failure_ttl_seconds), without retrying it.")),
      evictions(registry.counter("rtenv_evictions_total",
                                 "Unused resources evicted from the node's cache.", {"kind"})),
      evicted_bytes(registry.counter("rtenv_evicted_bytes_total",
                                     "Bytes on disk of the resources evicted.", {"kind"})),
      setup_seconds(registry.histogram(
          "rtenv_setup_duration_seconds",
          "Phases of an env's setup by the agent: queue (waiting for an install slot), resolve "
          "(resolving unpinned Python package lists), resources (making every resource present), "
          "total (the whole setup, failed ones included).",
          {"phase"}, metrics::duration_buckets())),
      install_seconds(registry.histogram(
          "rtenv_install_duration_seconds",
          "Making one resource present on the node, by kind and outcome: installed (built or "
          "materialized), cached (already there), failed.",
          {"kind", "outcome"}, metrics::duration_buckets())),
      cache_bytes(registry.gauge(
          "rtenv_cache_bytes",
          "Bytes on disk of the resources the agent knows, by kind (as last measured).", {"kind"})),
      resources(registry.gauge("rtenv_resources",
                               "Resources the agent records, by kind (one whose install failed "
                               "too, with 0 bytes, until it is collected).",
                               {"kind"})),
      cache_limit_bytes(registry.gauge(
          "rtenv_cache_limit_bytes",
          "The cache's high watermark (cache_limit): over it, unused resources are evicted.")),
      cache_low_bytes(registry.gauge("rtenv_cache_low_bytes",
                                     "The cache's low watermark (cache_low): eviction stops at "
                                     "it.")),
      kind_limit_bytes(registry.gauge("rtenv_cache_kind_limit_bytes",
                                      "The limit of one kind's share of the cache (kind_limits).",
                                      {"kind"})),
      references(
          registry.gauge("rtenv_references", "References held on envs: (env, holder) pairs.")),
      holders(registry.gauge(
          "rtenv_holders", "Distinct holders (processes, jobs, engine handles) with references.")),
      envs(registry.gauge("rtenv_envs", "Envs the agent records, by state.", {"state"})),
      process_leases(registry.gauge(
          "rtenv_process_leases",
          "Leases processes hold on resources (shared locks, taken by every run using them).",
          {"kind"})),
      setups_in_progress(
          registry.gauge("rtenv_setups_in_progress", "Envs being set up at this moment.")) {
  for (const auto& kind : kinds) {
    envs_created.inc({kind}, 0);
    env_failures.inc({kind}, 0);
    evictions.inc({kind}, 0);
    evicted_bytes.inc({kind}, 0);
  }
  env_failures.inc({kNoKind}, 0);
  cache_hits.inc({}, 0);
  cache_misses.inc({}, 0);
  failure_cache_hits.inc({}, 0);
}

}  // namespace rtenv::agent
