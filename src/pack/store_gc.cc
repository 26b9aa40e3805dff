#include "pack/store_gc.h"

#include <string>
#include <unordered_map>
#include <unordered_set>

#include "pack/manifest.h"
#include "util/fs.h"

namespace rtenv::pack {

namespace {

constexpr std::string_view kManifestHeader = "rtenv-manifest 1\n";
// A manifest lists one directory; a blob bigger than this that starts like one is a file (or
// planted), not read into memory.
constexpr uint64_t kMaxManifestBytes = 64 << 20;
// An OCI image's index, manifest or config (JSON that names the blobs it needs by digest) is at
// most this big (the distribution spec's limit for manifests).
constexpr uint64_t kMaxJsonBytes = 4 << 20;

// Whether a blob that begins with `head` may name other blobs: an rtenv manifest, or JSON (an
// image's index or manifest, whose config and layers are blobs of the store too).
bool may_name_blobs(std::string_view head) {
  if (head.starts_with(kManifestHeader)) return true;
  size_t i = head.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && head[i] == '{';
}

}  // namespace

std::vector<Digest> digests_named_in(std::string_view text) {
  std::vector<Digest> out;
  for (size_t at = text.find("sha256"); at != std::string_view::npos;
       at = text.find("sha256", at + 1)) {
    size_t hex_at = at + 7;
    if (hex_at + 64 > text.size() || (text[at + 6] != '/' && text[at + 6] != ':')) continue;
    if (auto d = Digest::from_hex(text.substr(hex_at, 64))) out.push_back(*d);
  }
  return out;
}

Result<StoreCollection> collect_store(store::CollectableStore& store,
                                      const std::vector<Digest>& roots, int64_t keep_after_ms,
                                      bool dry_run) {
  // Packs wait while the store is scanned and swept, so none relies on a blob in between.
  FileLock lock;
  if (!dry_run) {
    RTENV_ASSIGN_OR_RETURN(lock, store.lock_for_collection(FileLock::Mode::kExclusive));
  }
  struct Blob {
    uint64_t bytes;
    int64_t touched_ms;
  };
  std::unordered_map<Digest, Blob> blobs;
  RTENV_TRY(store.scan([&](const Digest& d, uint64_t bytes, int64_t touched_ms) {
    blobs.emplace(d, Blob{bytes, touched_ms});
  }));

  // Mark: the roots, what was touched recently, and everything below a kept manifest.
  std::unordered_set<Digest> marked;
  std::vector<Digest> todo;
  auto keep = [&](const Digest& d) {
    if (blobs.contains(d) && marked.insert(d).second) todo.push_back(d);
  };
  for (const auto& d : roots) keep(d);
  for (const auto& [d, b] : blobs) {
    if (b.touched_ms >= keep_after_ms) keep(d);
  }
  while (!todo.empty()) {
    Digest d = todo.back();
    todo.pop_back();
    if (blobs.at(d).bytes > kMaxManifestBytes) continue;
    RTENV_ASSIGN_OR_RETURN(auto text, store.read_if(d, 64, may_name_blobs, kMaxManifestBytes));
    if (!text) continue;  // a file, gone, or corrupt: nothing below
    if (!text->starts_with(kManifestHeader)) {
      // JSON: every digest it names is kept (a file that merely looks so keeps a little more).
      if (text->size() <= kMaxJsonBytes) {
        for (const auto& named : digests_named_in(*text)) keep(named);
      }
      continue;
    }
    auto manifest = Manifest::parse(*text);
    if (!manifest) continue;  // a file that begins like a manifest
    for (const auto& e : manifest->entries()) {
      if (e.kind != EntryKind::kSymlink) keep(e.digest);
    }
  }

  StoreCollection out;
  for (const auto& [d, b] : blobs) {
    ++out.blobs;
    out.bytes += b.bytes;
    if (marked.contains(d)) continue;
    if (!dry_run) {
      // Touched since the scan (found present by a query outside a pack): kept.
      auto removed = store.remove_if_untouched_since(d, keep_after_ms);
      if (!removed || !*removed) continue;
    }
    out.collected.emplace_back(d, b.bytes);
    out.bytes_collected += b.bytes;
  }
  return out;
}

}  // namespace rtenv::pack
