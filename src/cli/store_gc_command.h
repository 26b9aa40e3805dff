#pragma once
// What `rtenv gc`, `rtenv store gc` and `rtenv store serve --gc-every` share: collecting a store
// and reporting it.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/home.h"
#include "pack/store_gc.h"

namespace rtenv::cli {

/// Collects this node's own store ($RTENV_HOME/store): keeps what its records, the node's
/// package copies, its kept locks and `agent_texts` (the agent's envs and resources, as text)
/// name, what was touched in the last `keep_ms`, and all below those.
Result<pack::StoreCollection> collect_home_store(const env::Home& home,
                                                 const std::vector<std::string>& agent_texts,
                                                 int64_t keep_ms, bool dry_run);

/// Collects a store shared by nodes (a directory, S3): keeps what its records name (built envs,
/// fetched URLs), what was used in the last `keep_ms`, and all below those.
Result<pack::StoreCollection> collect_shared_store(store::CollectableStore& store, int64_t keep_ms,
                                                   bool dry_run);

/// {"blobs", "bytes", "collected": [{"digest", "bytes"}], "bytes_collected"}.
nlohmann::json collection_json(const pack::StoreCollection& c);
/// "collected 3 blobs (1.2 MiB) of 40 (9.8 MiB)" ("would collect" for a dry run).
std::string collection_summary(const pack::StoreCollection& c, bool dry_run);

}  // namespace rtenv::cli
