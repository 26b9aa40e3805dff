#include "env/package_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "pack/walk.h"
#include "util/lines.h"
#include "util/parallel.h"

namespace rtenv::env {

using pack::EntryKind;
using pack::Manifest;
using pack::PackageUri;

namespace {

struct FileJob {
  Digest digest;
  fs::path dest;
  mode_t mode;
  std::string rel;  ///< relative to the package's root
  uint64_t size;    ///< as its manifest says
};

// The manifests of a package's tree, each distinct one fetched once. The manifests of one level
// are fetched at once: a network store answers them in one round trip's time.
Result<std::map<Digest, Manifest>> fetch_manifests(store::BlobStore& store, const Digest& root,
                                                   unsigned threads, const TreeLimits& limits,
                                                   const auto& too_large) {
  std::map<Digest, Manifest> out;
  std::vector<Digest> level = {root};
  for (unsigned depth = 0; !level.empty(); ++depth) {
    if (depth >= limits.max_depth) {
      return too_large(fmt::format("more than {} directory levels", limits.max_depth));
    }
    std::vector<std::string> texts(level.size());
    RTENV_TRY(parallel_for(level.size(), threads, [&](size_t i) -> Result<void> {
      RTENV_ASSIGN_OR_RETURN(texts[i], store.get(level[i]));
      return ok_result();
    }));
    std::vector<Digest> next;
    for (size_t i = 0; i < level.size(); ++i) {
      auto manifest = Manifest::parse(texts[i]);
      if (!manifest) {
        return make_error(ErrorCode::kCorrupt, "package manifest {}: {}", level[i].hex(),
                          manifest.error().message());
      }
      for (const auto& e : manifest->entries()) {
        if (e.kind == EntryKind::kDirectory && !out.contains(e.digest)) next.push_back(e.digest);
      }
      out.emplace(level[i], std::move(manifest).value());
    }
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    std::erase_if(next, [&](const Digest& d) { return out.contains(d); });
    if (out.size() + next.size() > limits.max_entries) {
      return too_large(fmt::format("more than {} entries", limits.max_entries));
    }
    level = std::move(next);
  }
  return out;
}

// Creates the directories and symlinks of the tree and lists its files, within `limits`: the
// tree's size is worked out from its distinct manifests before anything is made, so a small set
// of manifests that unfolds into billions of entries costs nothing.
Result<void> build_dirs(store::BlobStore& store, const Digest& root, const fs::path& dest,
                        unsigned threads, const TreeLimits& limits, std::vector<FileJob>* files) {
  auto too_large = [&](std::string_view what) {
    return make_error(ErrorCode::kTooLarge,
                      "package {} has {}; this node takes at most {} files, {} bytes and {} "
                      "directory levels (max_package_size): it was not made here",
                      PackageUri(root).str(), what, limits.max_entries, limits.max_bytes,
                      limits.max_depth);
  };
  RTENV_ASSIGN_OR_RETURN(auto manifests, fetch_manifests(store, root, threads, limits, too_large));
  // Entries and file bytes below each manifest, deepest first (saturating: no overflow).
  struct Size {
    uint64_t entries = 0, bytes = 0;
  };
  std::map<Digest, Size> below;
  const uint64_t cap = std::numeric_limits<uint64_t>::max() / 2;
  auto size_of = [&](auto&& self, const Digest& d) -> Size {
    if (auto it = below.find(d); it != below.end()) return it->second;
    Size total;
    for (const auto& e : manifests.at(d).entries()) {
      Size sub = e.kind == EntryKind::kDirectory ? self(self, e.digest)
                 : e.kind == EntryKind::kSymlink ? Size{}
                                                 : Size{0, e.size};
      total.entries = std::min(cap, total.entries + 1 + sub.entries);
      total.bytes = std::min(cap, total.bytes + std::min(cap, sub.bytes));
    }
    return below[d] = total;
  };
  const Size total = size_of(size_of, root);
  if (total.entries > limits.max_entries) {
    return too_large(fmt::format("{} entries", total.entries));
  }
  if (total.bytes > limits.max_bytes)
    return too_large(fmt::format("{} bytes of files", total.bytes));

  struct Link {
    std::string dir;  ///< the link's directory, relative to the package's root
    std::string target;
    std::string rel;
  };
  std::vector<Link> links;
  struct Dir {
    const Manifest* manifest;
    fs::path path;
    std::string rel;
  };
  std::vector<Dir> todo = {{&manifests.at(root), dest, ""}};
  while (!todo.empty()) {
    Dir d = std::move(todo.back());
    todo.pop_back();
    for (const auto& e : d.manifest->entries()) {
      fs::path path = d.path / e.name;
      std::string rel = d.rel.empty() ? e.name : d.rel + "/" + e.name;
      switch (e.kind) {
        case EntryKind::kDirectory:
          if (::mkdir(path.c_str(), 0755) != 0) return io_error("cannot create", path, errno);
          todo.push_back({&manifests.at(e.digest), path, rel});
          break;
        case EntryKind::kFile:
        case EntryKind::kExecutable:
          files->push_back(
              {e.digest, path, e.kind == EntryKind::kExecutable ? 0755u : 0644u, rel, e.size});
          break;
        case EntryKind::kSymlink:
          if (::symlink(e.target.c_str(), path.c_str()) != 0) {
            return io_error("cannot create symlink", path, errno);
          }
          links.push_back({d.rel, e.target, rel});
          break;
      }
    }
  }
  // Once every link exists (a link may lead through others): the packer's rule, applied to what
  // the store said.
  UniqueFd root_fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root_fd.valid()) return io_error("cannot open", dest, errno);
  for (const Link& l : links) {
    if (!pack::link_stays_inside(root_fd.get(), l.dir, l.target)) {
      return make_error(ErrorCode::kUnsafe,
                        "package {}: the symbolic link {} -> {} leads out of the package; it was "
                        "not made here (a package made by rtenv pack never has one)",
                        PackageUri(root).str(), l.rel, l.target);
    }
  }
  return ok_result();
}

// Copies `src` to the new file `dest` if its content hashes to `want`; false (nothing left at
// `dest`) if it does not, or cannot be read: a copy on the node that a job changed is no source.
Result<bool> copy_if_digest(const fs::path& src, const fs::path& dest, mode_t mode,
                            const Digest& want) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return false;
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!out.valid()) return io_error("cannot create", dest, errno);
  Sha256 sha;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0 && sha.finish() == want) break;
      ::unlink(dest.c_str());
      return false;
    }
    sha.update(buf, static_cast<size_t>(n));
    if (auto w = write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)), dest); !w) {
      ::unlink(dest.c_str());
      return w.error();
    }
  }
  ::fchmod(out.get(), mode);  // the umask may have narrowed it
  return true;
}

unsigned fetch_threads(const store::BlobStore& store) {
  unsigned n = store.parallel_reads();
  return n ? n : default_threads();
}

void append_state(std::string& out, const std::string& rel, const struct stat& st) {
  out += rel;
  out.push_back('\0');
  int64_t fields[] = {static_cast<int64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_mode),
                      static_cast<int64_t>(st.st_size),
                      st.st_mtim.tv_sec,
                      st.st_mtim.tv_nsec,
                      st.st_ctim.tv_sec,
                      st.st_ctim.tv_nsec};
  out.append(reinterpret_cast<const char*>(fields), sizeof fields);
}

Result<void> capture_dir(int dirfd, const std::string& rel, std::string& out) {
  int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  DIR* d = dup_fd >= 0 ? ::fdopendir(dup_fd) : nullptr;
  if (!d) {
    if (dup_fd >= 0) ::close(dup_fd);
    return io_error("cannot read directory", rel, errno);
  }
  std::vector<std::string> names;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    struct stat st;
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    std::string child = rel.empty() ? n : rel + "/" + n;
    append_state(out, child, st);
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.valid()) return io_error("cannot open directory", child, errno);
      RTENV_TRY(capture_dir(sub.get(), child, out));
    }
  }
  return ok_result();
}

}  // namespace

void sweep_tmp(const fs::path& tmp) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(tmp, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    // Names are "<prefix>.<pid>.<counter>.<random>" (unique_name).
    std::string name = it->path().filename().string();
    size_t a = name.find('.'), b = a == std::string::npos ? a : name.find('.', a + 1);
    if (b == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.substr(a + 1, b - a - 1).c_str()));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) (void)remove_tree(it->path());
  }
}

// Fetches one file of a package, no bigger than its manifest says (a store that sends more is
// refused as it does, before it fills the disk: the manifest lies, or the store does).
Result<void> fetch_file(store::BlobStore& store, const PackageUri& uri, const FileJob& file) {
  auto r = store.get_to_file(file.digest, file.dest, file.mode, file.size);
  if (r || r.error().code() != ErrorCode::kTooLarge) return r;
  return make_error(ErrorCode::kCorrupt,
                    "package {}: {} is bigger than the {} bytes its manifest says", uri.str(),
                    file.rel, file.size);
}

Result<void> materialize_tree(store::BlobStore& store, const PackageUri& uri, const fs::path& dest,
                              const MaterializeProgress& progress, const LocalBlobs& local,
                              std::string* file_list, const TreeLimits& limits) {
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create", dest, errno);
  const unsigned threads = fetch_threads(store);
  std::vector<FileJob> files;
  RTENV_TRY(build_dirs(store, uri.root(), dest, threads, limits, &files));
  // Each distinct blob is fetched once (or copied from a file the node has); files with the same
  // content are copied from the first one written.
  std::map<Digest, std::vector<size_t>> by_digest;
  for (size_t i = 0; i < files.size(); ++i) by_digest[files[i].digest].push_back(i);
  std::vector<const std::vector<size_t>*> groups;
  groups.reserve(by_digest.size());
  for (const auto& [digest, indexes] : by_digest) groups.push_back(&indexes);
  std::atomic<size_t> done{0};
  std::mutex progress_mu;
  RTENV_TRY(parallel_for(groups.size(), threads, [&](size_t g) -> Result<void> {
    const FileJob& first = files[groups[g]->front()];
    bool copied = false;
    if (local) {
      for (const fs::path& src : local(first.digest)) {
        RTENV_ASSIGN_OR_RETURN(copied, copy_if_digest(src, first.dest, first.mode, first.digest));
        if (copied) break;
      }
    }
    // No more than the manifest says: a store that sends more is refused before it fills the disk.
    if (!copied) RTENV_TRY(fetch_file(store, uri, first));
    // The size a manifest states is what the limits were checked against: a lie is corruption.
    struct stat st;
    if (::lstat(first.dest.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != first.size) {
      return make_error(ErrorCode::kCorrupt, "package {}: {} is {} bytes, but its manifest says {}",
                        uri.str(), first.rel, static_cast<uint64_t>(st.st_size), first.size);
    }
    for (size_t k = 1; k < groups[g]->size(); ++k) {
      const FileJob& twin = files[(*groups[g])[k]];
      RTENV_ASSIGN_OR_RETURN(bool ok,
                             copy_if_digest(first.dest, twin.dest, twin.mode, twin.digest));
      if (!ok) RTENV_TRY(fetch_file(store, uri, twin));
    }
    size_t n = done += groups[g]->size();
    if (progress && (n % 256 < groups[g]->size() || n == files.size())) {
      std::lock_guard lock(progress_mu);
      progress(n, files.size());
    }
    return ok_result();
  }));
  if (file_list) {
    for (const auto& f : files) *file_list += f.digest.hex() + " " + f.rel + "\n";
  }
  return ok_result();
}

uint64_t disk_usage(const fs::path& dir, std::set<std::pair<uint64_t, uint64_t>>* seen) {
  uint64_t total = 0;
  std::error_code ec;
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0 && seen->emplace(st.st_dev, st.st_ino).second) {
    total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen->emplace(st.st_dev, st.st_ino).second) {
      continue;
    }
    total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

Result<std::string> capture_tree_state(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return io_error("cannot open", dir, errno);
  std::string out;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat", dir, errno);
  append_state(out, ".", st);
  RTENV_TRY(capture_dir(fd.get(), "", out));
  return out;
}

fs::path PackageCache::dir_of(const PackageUri& uri) const {
  return home_.pkgs() / uri.root().hex();
}

fs::path PackageCache::sidecar(const PackageUri& uri, std::string_view ext) const {
  return home_.pkgs() / (uri.root().hex() + std::string(ext));
}

Result<void> PackageCache::rebuild(const PackageUri& uri, const MaterializeProgress& progress) {
  sweep_tmp(home_.tmp());
  fs::path dir = dir_of(uri);
  fs::path fresh = home_.tmp() / unique_name("pkg-" + uri.root().hex().substr(0, 12));
  std::string file_list;
  TreeLimits limits;
  limits.max_bytes = home_.config().max_package_size();
  if (auto r = materialize_tree(store_, uri, fresh, progress, local_blobs(uri), &file_list, limits);
      !r) {
    (void)remove_tree(fresh);
    return r;
  }
  // Move any old tree aside first: rename cannot replace a non-empty directory.
  fs::path old = home_.tmp() / unique_name("old-" + uri.root().hex().substr(0, 12));
  bool had_old = ::rename(dir.c_str(), old.c_str()) == 0;
  if (::rename(fresh.c_str(), dir.c_str()) != 0) {
    int err = errno;
    (void)remove_tree(fresh);
    return io_error("cannot publish package", dir, err);
  }
  if (had_old) (void)remove_tree(old);
  RTENV_TRY(write_file_atomic(sidecar(uri, ".files"), file_list));
  RTENV_ASSIGN_OR_RETURN(std::string state, capture_tree_state(dir));
  return write_file_atomic(sidecar(uri, ".state"), state);
}

LocalBlobs PackageCache::local_blobs(const PackageUri& except) const {
  // The file lists of the other packages on the node, read once per materialization: a new
  // version of a working_dir copies its unchanged files from the old one instead of fetching.
  auto where = std::make_shared<std::unordered_map<std::string, std::vector<fs::path>>>();
  for (const auto& other : list()) {
    if (other == except || !is_ready(other)) continue;
    auto text = read_file(sidecar(other, ".files"));
    if (!text) continue;
    const fs::path root = dir_of(other);
    std::string_view rest = *text;
    while (!rest.empty()) {
      std::string_view line = next_line(&rest);
      if (line.size() > 65 && line[64] == ' ') {
        (*where)[std::string(line.substr(0, 64))].push_back(root / line.substr(65));
      }
    }
  }
  if (where->empty()) return nullptr;
  return [where](const Digest& d) -> std::vector<fs::path> {
    auto it = where->find(d.hex());
    return it == where->end() ? std::vector<fs::path>() : it->second;
  };
}

Result<void> PackageCache::make_pristine(const PackageUri& uri, bool* restored, bool* materialized,
                                         const MaterializeProgress& progress) {
  *restored = *materialized = false;
  fs::path dir = dir_of(uri);
  auto recorded = read_file(sidecar(uri, ".state"));
  struct stat st;
  if (!recorded || ::stat(dir.c_str(), &st) != 0) {
    *materialized = true;
    return rebuild(uri, progress);
  }
  if (::access(sidecar(uri, ".dirty").c_str(), F_OK) != 0) return ok_result();
  RTENV_ASSIGN_OR_RETURN(std::string now, capture_tree_state(dir));
  if (now != *recorded) {
    RTENV_TRY(rebuild(uri));
    *restored = true;
  }
  if (::unlink(sidecar(uri, ".dirty").c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", sidecar(uri, ".dirty"), errno);
  }
  return ok_result();
}

Result<PackageCache::Lease> PackageCache::acquire(const PackageUri& uri) {
  fs::path lock_path = sidecar(uri, ".lock");
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_path, FileLock::Mode::kExclusive));
  if (!lock.held()) {
    // In use by others (shared), or being built or checked (exclusive): join them once ready.
    RTENV_ASSIGN_OR_RETURN(lock, FileLock::acquire(lock_path, FileLock::Mode::kShared));
    struct stat st;
    if (::stat(sidecar(uri, ".state").c_str(), &st) == 0) {
      return make_lease(uri, std::move(lock), /*materialized=*/false);
    }
    // Whoever built it failed: build it ourselves.
    lock.release();
    RTENV_ASSIGN_OR_RETURN(lock, FileLock::acquire(lock_path, FileLock::Mode::kExclusive));
  }
  bool restored = false, materialized = false;
  RTENV_TRY(make_pristine(uri, &restored, &materialized));
  // Marked before use: if this process dies, the next user checks the tree first.
  UniqueFd mark(::open(sidecar(uri, ".dirty").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!mark.valid()) return io_error("cannot create", sidecar(uri, ".dirty"), errno);
  RTENV_TRY(lock.convert(FileLock::Mode::kShared));
  return make_lease(uri, std::move(lock), materialized);
}

PackageCache::Lease PackageCache::make_lease(const PackageUri& uri, FileLock lock,
                                             bool materialized) {
  lock.touch();  // the "last used" stamp eviction reads
  Lease lease;
  lease.cache_ = this;
  lease.uri_ = uri;
  lease.dir_ = dir_of(uri);
  lease.lock_ = std::move(lock);
  lease.materialized_ = materialized;
  return lease;
}

Result<bool> PackageCache::ensure(const PackageUri& uri, const MaterializeProgress& progress) {
  fs::path lock_path = sidecar(uri, ".lock");
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_path, FileLock::Mode::kExclusive));
  if (!lock.held()) {
    // Leased by running jobs (shared), or being built or checked (exclusive). Wait only for the
    // latter: a package jobs are using is there.
    RTENV_ASSIGN_OR_RETURN(lock, FileLock::acquire(lock_path, FileLock::Mode::kShared));
    if (is_ready(uri)) return false;
    lock.release();  // whoever built it failed: build it
    RTENV_ASSIGN_OR_RETURN(lock, FileLock::acquire(lock_path, FileLock::Mode::kExclusive));
  }
  bool restored = false, materialized = false;
  RTENV_TRY(make_pristine(uri, &restored, &materialized, progress));
  return materialized;
}

bool PackageCache::is_ready(const PackageUri& uri) const {
  return dirs_.is_ready(uri.root().hex());
}

Result<bool> PackageCache::evict(const PackageUri& uri) { return dirs_.evict(uri.root().hex()); }

size_t PackageCache::process_leases(const PackageUri& uri) const {
  return dirs_.process_leases(uri.root().hex());
}

int64_t PackageCache::last_leased_ms(const PackageUri& uri) const {
  return dirs_.last_leased_ms(uri.root().hex());
}

std::vector<PackageUri> PackageCache::list() const {
  std::vector<PackageUri> out;
  for (const auto& name : dirs_.list_ready()) {
    if (auto d = Digest::from_hex(name)) out.emplace_back(*d);
  }
  return out;
}

bool PackageCache::Lease::release() {
  if (!cache_) return false;
  PackageCache* cache = cache_;
  cache_ = nullptr;
  lock_.release();
  auto exclusive = FileLock::try_acquire(cache->sidecar(uri_, ".lock"), FileLock::Mode::kExclusive);
  if (!exclusive || !exclusive->held()) return false;  // another user checks when it lets go
  bool restored = false, materialized = false;
  // A failure here leaves the dirty mark, so the next user checks again.
  (void)cache->make_pristine(uri_, &restored, &materialized);
  return restored;
}

}  // namespace rtenv::env
