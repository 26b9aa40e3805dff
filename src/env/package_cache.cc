#include "env/package_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>

#include <fmt/format.h>

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
};

Result<void> build_dirs(store::BlobStore& store, const Digest& manifest_digest, const fs::path& dir,
                        std::vector<FileJob>* files) {
  RTENV_ASSIGN_OR_RETURN(std::string text, store.get(manifest_digest));
  auto manifest = Manifest::parse(text);
  if (!manifest) {
    return make_error(ErrorCode::kCorrupt, "package manifest {}: {}", manifest_digest.hex(),
                      manifest.error().message());
  }
  for (const auto& e : manifest->entries()) {
    fs::path path = dir / e.name;
    switch (e.kind) {
      case EntryKind::kDirectory:
        if (::mkdir(path.c_str(), 0755) != 0) return io_error("cannot create", path, errno);
        RTENV_TRY(build_dirs(store, e.digest, path, files));
        break;
      case EntryKind::kFile:
      case EntryKind::kExecutable:
        files->push_back({e.digest, path, e.kind == EntryKind::kExecutable ? 0755u : 0644u});
        break;
      case EntryKind::kSymlink:
        if (::symlink(e.target.c_str(), path.c_str()) != 0) {
          return io_error("cannot create symlink", path, errno);
        }
        break;
    }
  }
  return ok_result();
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

Result<void> materialize_tree(store::BlobStore& store, const PackageUri& uri, const fs::path& dest,
                              const MaterializeProgress& progress) {
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create", dest, errno);
  std::vector<FileJob> files;
  RTENV_TRY(build_dirs(store, uri.root(), dest, &files));
  std::atomic<size_t> done{0};
  std::mutex progress_mu;
  return parallel_for(files.size(), default_threads(), [&](size_t i) -> Result<void> {
    RTENV_TRY(store.get_to_file(files[i].digest, files[i].dest, files[i].mode));
    size_t n = ++done;
    if (progress && (n % 256 == 0 || n == files.size())) {
      std::lock_guard lock(progress_mu);
      progress(n, files.size());
    }
    return ok_result();
  });
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
  if (auto r = materialize_tree(store_, uri, fresh, progress); !r) {
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
  RTENV_ASSIGN_OR_RETURN(std::string state, capture_tree_state(dir));
  return write_file_atomic(sidecar(uri, ".state"), state);
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
  struct stat st;
  return ::stat(sidecar(uri, ".state").c_str(), &st) == 0 && ::stat(dir_of(uri).c_str(), &st) == 0;
}

Result<bool> PackageCache::evict(const PackageUri& uri) {
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(sidecar(uri, ".lock"), FileLock::Mode::kExclusive));
  if (!lock.held()) return false;
  // Unpublish first (state, then the tree by rename), so nobody trusts a half-deleted tree.
  for (const char* ext : {".state", ".dirty"}) {
    if (::unlink(sidecar(uri, ext).c_str()) != 0 && errno != ENOENT) {
      return io_error("cannot remove", sidecar(uri, ext), errno);
    }
  }
  fs::path doomed = home_.tmp() / unique_name("evict-" + uri.root().hex().substr(0, 12));
  if (::rename(dir_of(uri).c_str(), doomed.c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", dir_of(uri), errno);
  }
  RTENV_TRY(remove_tree(doomed));
  return true;
}

size_t PackageCache::process_leases(const PackageUri& uri) const {
  return shared_lock_holders(sidecar(uri, ".lock"));
}

int64_t PackageCache::last_leased_ms(const PackageUri& uri) const {
  return mtime_ms(sidecar(uri, ".lock"));
}

std::vector<PackageUri> PackageCache::list() const {
  std::vector<PackageUri> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(home_.pkgs(), ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    auto d = Digest::from_hex(it->path().filename().string());
    if (d) out.emplace_back(*d);
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
