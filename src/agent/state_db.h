#pragma once
// The agent's durable state: envs, the references holders have on them, and the resources they
// use. SQLite in WAL mode, so a crash at any moment leaves the last committed state.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

struct sqlite3;

namespace rtenv::agent {

struct EnvRow {
  std::string env_id;
  std::string job_id;
  std::string state;  ///< "creating", "ready", "failed"
  std::string error;
  std::string summary;  ///< the env with env_var values redacted, for listings
  std::string timings;  ///< JSON [[phase, ms], ...]
  int64_t created_ms = 0, last_used_ms = 0;
  std::vector<std::string> holders;
  std::vector<std::string> resources;
};

struct ResourceRow {
  std::string uri;
  std::string kind;
  uint64_t size_bytes = 0;
  int64_t created_ms = 0, last_used_ms = 0;
  uint32_t env_references = 0;  ///< envs with at least one holder that use this resource
};

/// Totals of the state, for the agent's metrics: cheap aggregate queries, no per-env rows.
struct StateCounts {
  uint64_t references = 0;  ///< (env, holder) pairs
  uint64_t holders = 0;     ///< distinct holders
  std::map<std::string, uint64_t> envs_by_state;
  /// Every resource recorded: (kind, uri, size in bytes).
  struct Resource {
    std::string kind;
    std::string uri;
    uint64_t size_bytes = 0;
  };
  std::vector<Resource> resources;
};

/// Not thread-safe: the Agent serializes all calls with its own mutex.
class StateDb {
 public:
  /// Opens (creating) the database and brings an older schema up to this version's (each
  /// version's migration in order, in one transaction). kInvalidArgument for a database a newer
  /// rtenv wrote (its schema version is above this one's), saying what to do.
  static Result<std::unique_ptr<StateDb>> open(const std::filesystem::path& file);
  ~StateDb();

  Result<void> begin();
  Result<void> commit();

  Result<void> upsert_env(const std::string& env_id, const std::string& job_id,
                          const std::string& summary, int64_t now_ms);
  Result<void> set_env_state(const std::string& env_id, const std::string& state,
                             const std::string& error, const std::string& timings, int64_t now_ms);
  Result<void> touch_env(const std::string& env_id, int64_t now_ms);
  /// touch_env for every env `holder` has a reference on.
  Result<void> touch_holder_envs(const std::string& holder, int64_t now_ms);
  Result<void> link_resource(const std::string& env_id, const std::string& uri,
                             const std::string& kind, int64_t now_ms);
  Result<void> set_resource_size(const std::string& uri, uint64_t bytes);
  /// Records a resource found on the node that no env uses (after a crash, or made without us).
  Result<void> adopt_resource(const std::string& uri, const std::string& kind, uint64_t bytes,
                              int64_t now_ms);

  /// Adds (env, holder); returns false if it was already there (a retried call).
  Result<bool> add_ref(const std::string& env_id, const std::string& holder, int64_t now_ms);
  Result<bool> remove_ref(const std::string& env_id, const std::string& holder);
  Result<uint32_t> remove_holder(const std::string& holder);
  Result<std::vector<std::string>> holders_with_prefix(const std::string& prefix);

  Result<std::vector<EnvRow>> envs();
  Result<std::vector<ResourceRow>> resources();
  Result<StateCounts> counts();
  /// Forgets a resource (evicted) and the envs that used it and have no holders left.
  Result<void> forget_resource(const std::string& uri);
  /// Envs left "creating" by a crash become "failed" (nobody is building them any more).
  Result<void> fail_interrupted(int64_t now_ms);

 private:
  explicit StateDb(sqlite3* db) : db_(db) {}
  Result<void> exec(const std::string& sql);
  sqlite3* db_;
};

}  // namespace rtenv::agent
