#pragma once
// Collecting a store (a directory, S3): removing the blobs nothing needs any more.
//
// What is kept: everything reachable from the roots the caller names (packages of node copies
// and envs, records, locks), everything written, found present or fetched within the grace
// window (LocalStore refreshes a blob's mtime then), and everything below any manifest kept:
// a store holds a manifest only with its whole subtree, which packs rely on when they find a
// manifest present. The same holds for an image's index and manifest (JSON naming its config
// and layers by digest), which the image's users rely on. Everything else is removed. On a
// directory store packs wait meanwhile (a pack holds the store's collection lock shared from its
// first presence query to its root manifest); S3 has no such lock, and the window (days) protects
// what packs rely on (store/collectable.h).

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "store/collectable.h"
#include "util/digest.h"
#include "util/result.h"

namespace rtenv::pack {

/// The digests `text` names as "sha256/<64 hex>" (package URIs) or "sha256:<64 hex>" (store
/// locks, wheel hashes): how the records, env specs and lock files a collection reads refer to
/// blobs. Keeping a digest that is not a blob costs nothing, so every such name counts.
std::vector<Digest> digests_named_in(std::string_view text);

struct StoreCollection {
  uint64_t blobs = 0;  ///< in the store before
  uint64_t bytes = 0;
  std::vector<std::pair<Digest, uint64_t>> collected;  ///< removed (dry run: would be)
  uint64_t bytes_collected = 0;
};

/// Collects `store`: removes every blob not reachable from `roots`, not touched since
/// `keep_after_ms` (ms since the epoch) and not below a manifest kept. `dry_run`: removes
/// nothing and takes no lock. Errors: the store cannot be listed or locked (a blob that cannot be
/// removed is kept, not an error).
Result<StoreCollection> collect_store(store::CollectableStore& store,
                                      const std::vector<Digest>& roots, int64_t keep_after_ms,
                                      bool dry_run);

}  // namespace rtenv::pack
