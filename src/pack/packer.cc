#include "pack/packer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <unordered_set>

#include <fmt/format.h>

#include "pack/file_index.h"
#include "pack/walk.h"
#include "util/fs.h"
#include "util/parallel.h"

namespace rtenv::pack {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

Result<Digest> hash_file(const fs::path& root, const WalkedFile& f) {
  fs::path path = root / f.rel_path;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return unreadable_entry_error("cannot open", path, errno);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return hash_fd(fd.get(), path.string());
}

struct BuiltManifest {
  Digest digest;
  std::string text;
  std::vector<size_t> child_manifests;  // indices into the manifest list
  std::vector<size_t> files;            // indices into WalkResult::files
};

// Serializes the manifests of `dir` bottom-up; appends them (children first) to `out` and returns
// the index of `dir`'s own.
size_t build_manifests(const WalkedDir& dir, const std::vector<WalkedFile>& files,
                       std::vector<BuiltManifest>* out, uint64_t* bytes_below) {
  Manifest m;
  BuiltManifest built;
  uint64_t total = 0;
  for (const auto& c : dir.children) {
    ManifestEntry e{c.kind, c.name, Digest(), 0, {}};
    switch (c.kind) {
      case EntryKind::kDirectory: {
        uint64_t sub = 0;
        size_t child = build_manifests(*c.dir, files, out, &sub);
        built.child_manifests.push_back(child);
        e.digest = (*out)[child].digest;
        e.size = sub;
        break;
      }
      case EntryKind::kFile:
      case EntryKind::kExecutable:
        built.files.push_back(c.file_index);
        e.digest = files[c.file_index].digest;
        e.size = files[c.file_index].stat.size;
        break;
      case EntryKind::kSymlink:
        e.target = c.target;
        break;
    }
    total += e.size;
    m.add(std::move(e));
  }
  built.text = m.serialize();
  built.digest = Digest::of(built.text);
  out->push_back(std::move(built));
  *bytes_below = total;
  return out->size() - 1;
}

Error too_large(const fs::path& path, const WalkResult& walk, uint64_t limit) {
  std::vector<const WalkedFile*> largest;
  for (const auto& f : walk.files) largest.push_back(&f);
  size_t shown = std::min<size_t>(5, largest.size());
  std::partial_sort(largest.begin(), largest.begin() + shown, largest.end(),
                    [](auto* a, auto* b) { return a->stat.size > b->stat.size; });
  std::string list;
  for (size_t i = 0; i < shown; ++i) {
    list += fmt::format("{}{} ({})", i ? ", " : "", largest[i]->rel_path,
                        format_bytes(largest[i]->stat.size));
  }
  return make_error(ErrorCode::kTooLarge,
                    "{} holds {} of files, over the package limit of {}; largest: {}. Add what the "
                    "job does not need to excludes (or .rtenvignore), or raise the limit with "
                    "--max-package-size / RTENV_MAX_PACKAGE_SIZE",
                    path.string(), format_bytes(walk.file_bytes), format_bytes(limit), list);
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, kUnits[u]);
}

Result<PackResult> pack_path(const fs::path& path, store::BlobStore& store,
                             const PackOptions& options, const PackProgressFn& progress) {
  auto t_start = Clock::now();
  PackStats stats;
  unsigned threads = options.threads ? options.threads : default_threads();

  // 1. Walk (or take the single file).
  struct stat root_st;
  if (::stat(path.c_str(), &root_st) != 0) return io_error("cannot read", path, errno);
  fs::path root_dir = path;
  WalkResult walk;
  int64_t walked_at = now_realtime_ns();
  if (S_ISDIR(root_st.st_mode)) {
    std::vector<std::pair<uint64_t, uint64_t>> skip;
    for (const auto& dir : options.skip_dirs) {
      struct stat st;
      if (::stat(dir.c_str(), &st) == 0) skip.emplace_back(st.st_dev, st.st_ino);
    }
    RTENV_ASSIGN_OR_RETURN(walk, walk_tree(path, options.excludes, skip, options.ignore_files));
  } else if (S_ISREG(root_st.st_mode)) {
    root_dir = path.parent_path();
    bool exec = (root_st.st_mode & S_IXUSR) != 0;
    std::string name = path.filename().string();
    walk.files.push_back(WalkedFile{name, file_stat_of(root_st), exec, Digest()});
    walk.file_bytes = static_cast<uint64_t>(root_st.st_size);
    walk.root.children.push_back(
        {name, exec ? EntryKind::kExecutable : EntryKind::kFile, 0, nullptr, {}});
  } else {
    return make_error(ErrorCode::kInvalidArgument, "{} is not a directory or a regular file",
                      path.string());
  }
  stats.walk_ms = ms_since(t_start);
  stats.files = walk.files.size();
  stats.dirs = walk.dirs;
  stats.symlinks = walk.symlinks;
  stats.file_bytes = walk.file_bytes;
  stats.warnings = std::move(walk.warnings);
  if (walk.file_bytes > options.max_package_bytes) {
    return too_large(path, walk, options.max_package_bytes);
  }
  for (const auto& f : walk.files) {
    if (f.stat.size > options.warn_file_bytes) {
      stats.warnings.push_back(
          fmt::format("{} is {} (large files are uploaded once, but every node stores a copy)",
                      (root_dir / f.rel_path).string(), format_bytes(f.stat.size)));
    }
  }

  // 2. Digests: from the index when the stat info is unchanged, else hashed (on every core).
  auto t_hash = Clock::now();
  FileIndex index = options.index_file.empty() ? FileIndex() : FileIndex::load(options.index_file);
  std::vector<size_t> to_hash;
  uint64_t bytes_to_hash = 0;
  for (size_t i = 0; i < walk.files.size(); ++i) {
    if (const Digest* d = index.lookup(walk.files[i].rel_path, walk.files[i].stat)) {
      walk.files[i].digest = *d;
    } else {
      to_hash.push_back(i);
      bytes_to_hash += walk.files[i].stat.size;
    }
  }
  // Largest first, so the two cores finish together.
  std::sort(to_hash.begin(), to_hash.end(),
            [&](size_t a, size_t b) { return walk.files[a].stat.size > walk.files[b].stat.size; });
  std::atomic<size_t> files_done{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<int64_t> last_report{0};
  RTENV_TRY(parallel_for(to_hash.size(), threads, [&](size_t k) -> Result<void> {
    WalkedFile& f = walk.files[to_hash[k]];
    RTENV_ASSIGN_OR_RETURN(f.digest, hash_file(root_dir, f));
    size_t done = files_done.fetch_add(1) + 1;
    uint64_t bytes = bytes_done.fetch_add(f.stat.size) + f.stat.size;
    if (progress) {
      int64_t now = now_realtime_ns(), last = last_report.load();
      if (now - last > 50'000'000 && last_report.compare_exchange_strong(last, now)) {
        progress(PackProgress{done, to_hash.size(), bytes, bytes_to_hash});
      }
    }
    return ok_result();
  }));
  stats.files_hashed = to_hash.size();
  stats.bytes_hashed = bytes_to_hash;
  stats.hash_ms = ms_since(t_hash);

  // 3. Manifests, bottom-up.
  std::vector<BuiltManifest> manifests;
  uint64_t below = 0;
  size_t root = build_manifests(walk.root, walk.files, &manifests, &below);
  if (options.wrap_in_dir) {
    Manifest wrapper;
    wrapper.add({EntryKind::kDirectory, *options.wrap_in_dir, manifests[root].digest, below, {}});
    BuiltManifest top{Digest(), wrapper.serialize(), {root}, {}};
    top.digest = Digest::of(top.text);
    manifests.push_back(std::move(top));
    root = manifests.size() - 1;
  }
  Digest root_digest = manifests[root].digest;
  {
    std::unordered_set<Digest> distinct;
    distinct.reserve(walk.files.size() + manifests.size());
    for (const auto& f : walk.files) distinct.insert(f.digest);
    for (const auto& m : manifests) distinct.insert(m.digest);
    stats.blobs = distinct.size();
  }

  // 4. Which blobs does the store lack? Asked top-down, one batch per level of the tree: a
  // store holds a manifest only with everything below it (uploads go bottom-up), so the subtree
  // under a manifest it has needs no question. An unchanged tree costs one lookup; a change, the
  // lookups along its path.
  auto t_query = Clock::now();
  // What is found present here is relied on until the root is published: no collection of the
  // store may run in between.
  RTENV_ASSIGN_OR_RETURN(FileLock held, store.hold_against_collection());
  std::unordered_set<Digest> asked;
  std::vector<size_t> missing_manifests;  // indices, to upload bottom-up
  std::vector<size_t> missing_files;      // one file per missing content
  std::vector<size_t> level_manifests = {root};
  std::vector<size_t> level_files;
  while (!level_manifests.empty() || !level_files.empty()) {
    std::vector<Digest> batch;
    std::vector<std::pair<bool, size_t>> what;  // (is manifest, index)
    for (size_t m : level_manifests) {
      if (asked.insert(manifests[m].digest).second) {
        batch.push_back(manifests[m].digest);
        what.emplace_back(true, m);
      }
    }
    for (size_t f : level_files) {
      if (asked.insert(walk.files[f].digest).second) {
        batch.push_back(walk.files[f].digest);
        what.emplace_back(false, f);
      }
    }
    level_manifests.clear();
    level_files.clear();
    if (batch.empty()) break;
    RTENV_ASSIGN_OR_RETURN(std::vector<bool> missing, store.missing(batch));
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!missing[i]) continue;
      auto [is_manifest, index] = what[i];
      if (!is_manifest) {
        missing_files.push_back(index);
        continue;
      }
      missing_manifests.push_back(index);
      const auto& m = manifests[index];
      level_manifests.insert(level_manifests.end(), m.child_manifests.begin(),
                             m.child_manifests.end());
      level_files.insert(level_files.end(), m.files.begin(), m.files.end());
    }
  }
  stats.query_ms = ms_since(t_query);

  // 5. Upload what is missing: files first (in parallel), then manifests bottom-up, the root
  // last, so a store that has a manifest has everything below it.
  auto t_upload = Clock::now();
  std::atomic<uint64_t> uploaded_bytes{0};
  RTENV_TRY(parallel_for(missing_files.size(), threads, [&](size_t k) -> Result<void> {
    const WalkedFile& f = walk.files[missing_files[k]];
    fs::path file = root_dir / f.rel_path;
    // The store hashes what it copies and refuses it unless it is the content hashed at the
    // walk, so a file changed since is never stored under its old digest. Nothing is removed
    // from the store here, whatever happens: another pack may already rely on a blob it found.
    auto put = store.put_file(f.digest, file);
    struct stat now;
    bool changed = ::lstat(file.c_str(), &now) != 0 || !(file_stat_of(now) == f.stat);
    if ((!put && put.error().code() == ErrorCode::kCorrupt) || changed) {
      return make_error(ErrorCode::kUnavailable, "{} changed while it was being packed; pack again",
                        file.string());
    }
    RTENV_TRY(put);
    uploaded_bytes += f.stat.size;
    return ok_result();
  }));
  // Children precede parents in `manifests`, so ascending indices upload bottom-up.
  std::sort(missing_manifests.begin(), missing_manifests.end());
  for (size_t m : missing_manifests) {
    RTENV_TRY(store.put(manifests[m].digest, manifests[m].text));
    uploaded_bytes += manifests[m].text.size();
  }
  stats.upload_ms = ms_since(t_upload);
  stats.blobs_uploaded = missing_files.size() + missing_manifests.size();
  stats.blobs_present = stats.blobs - stats.blobs_uploaded;
  stats.bytes_uploaded = uploaded_bytes;

  if (!options.index_file.empty()) {
    index.replace(walk.files, walked_at);
    if (auto r = index.save(options.index_file); !r) {
      stats.warnings.push_back("could not save the file index: " + r.error().message());
    }
  }
  stats.total_ms = ms_since(t_start);
  return PackResult{PackageUri(root_digest), std::move(stats)};
}

Result<std::string> read_package_file(store::BlobStore& store, const PackageUri& uri,
                                      std::string_view path, uint64_t max_bytes) {
  Digest manifest = uri.root();
  std::string_view rest = path;
  for (;;) {
    size_t slash = rest.find('/');
    std::string_view name = rest.substr(0, slash);
    if (name.empty() || name == "." || name == "..") {
      return make_error(ErrorCode::kInvalidArgument, "{}: not a path inside a package", path);
    }
    RTENV_ASSIGN_OR_RETURN(std::string text, store.get(manifest));
    RTENV_ASSIGN_OR_RETURN(Manifest m, Manifest::parse(text));
    auto it = std::find_if(m.entries().begin(), m.entries().end(),
                           [&](const ManifestEntry& e) { return e.name == name; });
    if (it == m.entries().end()) {
      return make_error(ErrorCode::kNotFound, "{} has no {}", uri.str(), path);
    }
    const bool last = slash == std::string_view::npos;
    if (!last) {
      if (it->kind != EntryKind::kDirectory) {
        return make_error(ErrorCode::kNotFound, "{} has no {}", uri.str(), path);
      }
      manifest = it->digest;
      rest = rest.substr(slash + 1);
      continue;
    }
    if (it->kind != EntryKind::kFile && it->kind != EntryKind::kExecutable) {
      return make_error(ErrorCode::kInvalidArgument, "{} in {} is not a regular file", path,
                        uri.str());
    }
    if (it->size > max_bytes) {
      return make_error(ErrorCode::kTooLarge, "{} in {} is {} bytes (at most {} are read)", path,
                        uri.str(), it->size, max_bytes);
    }
    return store.get(it->digest);
  }
}

}  // namespace rtenv::pack
