#pragma once
// The node agent's logic, independent of the RPC layer: create envs once, count references by
// holder, release dead holders, and evict unused resources when the cache is over its limit.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_metrics.h"
#include "agent/state_db.h"
#include "env/home.h"
#include "env/node_cache.h"
#include "env/setup.h"
#include "env/tool_caches.h"
#include "store/blob_store.h"

namespace rtenv::agent {

struct AgentOptions {
  /// The built-in defaults below.
  AgentOptions() = default;
  /// From the configuration: cache_limit, cache_low, kind_limits, failure_ttl_seconds
  /// (config.json, RTENV_CACHE_LIMIT, RTENV_CACHE_LOW, RTENV_FAILURE_TTL); checked when `config`
  /// was built.
  explicit AgentOptions(const config::Config& config);

  /// Evict unused resources when the cache exceeds `high` bytes, down to `low`.
  uint64_t cache_high_bytes = uint64_t{10} << 30;
  uint64_t cache_low_bytes = uint64_t{8} << 30;
  /// The same per resource kind ("package", "python", "plugin:<field>"); absent: no limit of its
  /// own.
  std::map<std::string, uint64_t> kind_high_bytes;
  /// How long a failed env's error is served again without retrying the install.
  int64_t failure_ttl_ms = 10'000;
  /// Different envs installed at the same time, at most.
  unsigned max_parallel_installs = 4;
  /// How often holders that are processes are checked for life.
  int64_t reap_interval_ms = 250;
  /// How often a node whose store is shared writes what it uses into the store
  /// (env::NodeReportRecord), besides after each env it sets up.
  int64_t node_report_interval_ms = 60 * 60 * 1000;
};

/// A phase of an env's setup and how long it took.
struct Timing {
  std::string phase;
  double ms;
};

struct CreateResult {
  std::string env_id;
  env::LaunchPlan plan;  ///< env_vars' ${NAME} not yet expanded
  std::vector<std::string> resource_uris;
  std::vector<Timing> timings;
  bool installed = false;  ///< false: everything was on the node already
};

struct GcReport {
  std::vector<std::string> evicted;
  std::vector<uint64_t> evicted_bytes;  ///< the size of each of `evicted`
  uint64_t bytes_freed = 0;
  uint64_t cache_bytes = 0;  ///< after eviction (or what it would be, for a dry run)
  /// The installers' caches, counted in cache_bytes (env/tool_caches.h).
  std::vector<env::ToolCache> tool_caches;
};

/// Holder names: "pid:<pid>:<start time in clock ticks>" for a process (released when it dies),
/// anything else ("job:<id>", an engine handle) until released explicitly.
std::string process_holder(pid_t pid);
/// The agent's log of a job's envs in `home`: logs/job-<job>.log (the job id made safe for a file
/// name), or logs/agent.log without a job.
std::filesystem::path log_file(const env::Home& home, const std::string& job_id);
/// True if `holder` names a process that no longer exists (or a reused pid).
bool holder_is_dead(const std::string& holder);

/// Thread-safe. One per node ($RTENV_HOME); the RPC service calls it from many threads.
class Agent {
 public:
  /// Opens the state, sweeps what a crash left half done, adopts packages already on the node,
  /// and starts the holder reaper.
  /// `registry`: the fields this node handles (built-in and exec plugins).
  static Result<std::unique_ptr<Agent>> open(env::Home home,
                                             std::unique_ptr<store::BlobStore> store,
                                             AgentOptions options,
                                             std::shared_ptr<const env::Registry> registry);
  ~Agent();

  using Progress = std::function<void(const std::string& message)>;

  /// Makes the env ready on this node and adds `holder`'s reference (once per holder: a retried
  /// call does not count twice). The reference is taken before anything is installed. Concurrent
  /// calls for one env install it once; all get the same result. `serialized_env` must name
  /// resources by URI. Errors carry the step, the resource and the reason; a failure is
  /// remembered for failure_ttl_ms.
  Result<CreateResult> get_or_create(const std::string& serialized_env,
                                     const std::string& serialized_config,
                                     const std::string& job_id, const std::string& holder,
                                     const Progress& progress = nullptr);

  /// Gives `holder`'s reference on the env back. Returns false if it had none.
  Result<bool> release(const std::string& serialized_env, const std::string& holder);
  /// Gives every reference of `holder` back; returns how many.
  Result<uint32_t> release_holder(const std::string& holder);
  /// `field`'s value in `serialized_env` prepared here, for a client on this node: only for
  /// fields that ask for it (Field::prepares_in_agent: their helper stays warm in the agent);
  /// kInvalidArgument for any other. Returns the prepared value as JSON.
  Result<std::string> prepare_field(const std::string& field, const std::string& serialized_env);

  struct Info {
    std::vector<EnvRow> envs;
    std::vector<ResourceRow> resources;
    std::vector<uint32_t> process_leases;  ///< per resource
    std::vector<std::string> paths;        ///< per resource: its directory on this node
    uint64_t cache_bytes = 0;
  };
  Result<Info> info();

  /// Evicts unused resources, least recently used first, while the cache (or a kind) is over
  /// its high watermark, down to the low one. Never evicts a resource an env with a holder uses,
  /// one a process has leased, or one being installed.
  /// `in_background`: the evicted trees are deleted by a thread of their own, so the caller (an
  /// install that made the cache grow) does not wait for it.
  /// `prune_tool_caches`: prune the installers' caches (env/tool_caches.h) even when the cache is
  /// under its limit (an explicit `rtenv gc`); over the limit they are pruned anyway, before any
  /// resource is evicted.
  Result<GcReport> gc(bool dry_run, bool in_background = false, bool prune_tool_caches = false);

  /// The agent's metrics in Prometheus text format (docs/metrics.md), the gauges computed from
  /// its state now. Not a call into the agent: a scraper does not keep an idle agent alive.
  std::string metrics_text();

  const AgentOptions& options() const { return options_; }
  const env::Home& home() const { return home_; }
  /// Milliseconds since the last call into the agent, or 0 while an install runs.
  int64_t idle_ms() const;
  /// True while a call is being served (an install may be running).
  bool busy() const { return busy_.load() > 0; }

 private:
  Agent(env::Home home, std::unique_ptr<store::BlobStore> store, AgentOptions options,
        std::shared_ptr<const env::Registry> registry, std::unique_ptr<StateDb> db);
  /// What an install did, for the metrics: the kinds of the resources it built, or the kind of
  /// the one that failed.
  struct InstallOutcome {
    std::set<std::string> built_kinds;
    std::string failed_kind = AgentMetrics::kNoKind;
  };
  Result<CreateResult> install(const spec::RuntimeEnv& env, const std::string& env_id,
                               const spec::SetupConfig& config, const std::string& job_id,
                               const Progress& progress, InstallOutcome* outcome);
  /// Sets the gauges computed when scraped (on_render of the metrics' registry).
  void refresh_gauges();
  void reap_loop();
  /// Writes this node's NodeReportRecord into the store when the store is shared (best effort: a
  /// failure is logged and the next report tries again).
  void report_to_store();
  /// Records resources on the node that the state does not know (with their size).
  Result<void> adopt_unknown_resources();
  void log(const std::string& job_id, const std::string& line);
  void note_activity();

  env::Home home_;
  std::unique_ptr<store::BlobStore> store_;
  AgentOptions options_;
  std::shared_ptr<const env::Registry> registry_;
  env::NodeCache cache_;
  AgentMetrics metrics_;

  std::mutex mu_;  // guards db_, inflight_, failures_, installing_
  std::unique_ptr<StateDb> db_;
  std::map<std::string, std::shared_future<Result<CreateResult>>> inflight_;
  std::map<std::string, std::pair<int64_t, Error>> failures_;
  std::multiset<std::string> installing_;  // resource URIs being installed
  // The fast path for a repeated call: ready envs with the holders known to hold them (their
  // references are in the database already), and the ids of envs by their serialized form. A
  // call from a known holder for a ready env is answered from here with no parsing, no
  // database write and no disk access.
  struct ReadyEnv {
    CreateResult result;
    std::set<std::string> holders;
  };
  std::map<std::string, ReadyEnv> ready_;
  std::map<std::string, std::string> ids_;
  /// Drops `holder` from the fast path of `env_id`, or of every env if `env_id` is empty.
  void forget_holder_locked(const std::string& env_id, const std::string& holder);
  std::mutex gc_mu_;                         // one GC at a time; guards the two below
  std::vector<env::ToolCache> tool_caches_;  ///< their last measure
  int64_t tool_caches_measured_ms_ = 0;
  std::mutex log_mu_;

  std::mutex slots_mu_;
  std::condition_variable slots_cv_;
  unsigned free_slots_;

  std::atomic<int64_t> last_activity_ms_;
  std::atomic<int> busy_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> report_due_{true};  ///< the reaper writes the node's report when set
  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::thread reaper_;
};

}  // namespace rtenv::agent
