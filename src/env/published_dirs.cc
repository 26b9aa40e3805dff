#include "env/published_dirs.h"

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>

#include "util/clock.h"
#include "util/fs.h"

namespace rtenv::env {

Result<FileLock> lock_until(const fs::path& path, FileLock::Mode mode, int64_t deadline,
                            const std::string& what) {
  if (deadline < 0) return FileLock::acquire(path, mode);
  while (true) {
    RTENV_ASSIGN_OR_RETURN(FileLock lock, FileLock::try_acquire(path, mode));
    if (lock.held()) return lock;
    if (steady_ms() >= deadline) {
      return make_error(ErrorCode::kTimeout,
                        "timed out (config.setup_timeout_seconds) waiting for another process "
                        "that is making {}",
                        what);
    }
    ::usleep(10'000);
  }
}

PublishedDirs::PublishedDirs(fs::path root, fs::path tmp, std::string ready_ext,
                             std::vector<std::string> sidecars)
    : root_(std::move(root)),
      tmp_(std::move(tmp)),
      ready_ext_(std::move(ready_ext)),
      sidecars_(std::move(sidecars)) {}

fs::path PublishedDirs::sidecar(std::string_view name, std::string_view ext) const {
  return root_ / (std::string(name) + std::string(ext));
}

Result<bool> PublishedDirs::make_once(std::string_view name, int64_t deadline,
                                      const std::string& what, const Make& make) const {
  if (is_ready(name)) return false;
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return io_error("cannot create", root_, ec.value());
  fs::path lock_file = lock_path(name);
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_file, FileLock::Mode::kExclusive));
  if (!lock.held()) {
    // In use (shared) or being made (exclusive): wait for the maker, if any.
    RTENV_ASSIGN_OR_RETURN(lock, lock_until(lock_file, FileLock::Mode::kShared, deadline, what));
    if (is_ready(name)) return false;
    lock.release();  // its maker failed: make it
    RTENV_ASSIGN_OR_RETURN(lock, lock_until(lock_file, FileLock::Mode::kExclusive, deadline, what));
  }
  if (is_ready(name)) return false;
  // Whatever a failed maker left is not trusted.
  (void)::unlink(ready_mark(name).c_str());
  for (const auto& ext : sidecars_) (void)::unlink(sidecar(name, ext).c_str());
  RTENV_TRY(remove_tree(dir(name)));
  auto made = make(dir(name));
  if (made) made = write_file_atomic(ready_mark(name), "");
  if (!made) {
    for (const auto& ext : sidecars_) (void)::unlink(sidecar(name, ext).c_str());
    (void)remove_tree(dir(name));
    return made.error();
  }
  return true;
}

Result<FileLock> PublishedDirs::lease(std::string_view name, int64_t deadline,
                                      const std::string& what, const Make& make) const {
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (is_ready(name)) {
      RTENV_ASSIGN_OR_RETURN(FileLock lock,
                             lock_until(lock_path(name), FileLock::Mode::kShared, deadline, what));
      if (is_ready(name)) {
        lock.touch();  // the "last used" stamp eviction reads
        return lock;
      }
    }
    RTENV_TRY(make_once(name, deadline, what, make));
  }
  return make_error(ErrorCode::kUnavailable,
                    "{} was removed each time it was made; is another process evicting it?", what);
}

bool PublishedDirs::is_ready(std::string_view name) const {
  struct stat st;
  return ::stat(ready_mark(name).c_str(), &st) == 0 && ::stat(dir(name).c_str(), &st) == 0;
}

Result<bool> PublishedDirs::evict(
    std::string_view name, const std::function<void(const fs::path& dir)>& before_remove) const {
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_path(name), FileLock::Mode::kExclusive));
  if (!lock.held()) return false;
  // Unpublished first: whatever happens next, nobody uses the entry again.
  if (::unlink(ready_mark(name).c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", ready_mark(name), errno);
  }
  if (before_remove) before_remove(dir(name));
  std::vector<std::string> exts = sidecars_;
  for (const auto& ext : exts) {
    if (::unlink(sidecar(name, ext).c_str()) != 0 && errno != ENOENT) {
      return io_error("cannot remove", sidecar(name, ext), errno);
    }
  }
  // Renamed aside now (one call, whatever its size); removed by remove_evicted, which callers
  // run outside their own locks.
  fs::path doomed = tmp_ / unique_name(kEvictedPrefix);
  if (::rename(dir(name).c_str(), doomed.c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", dir(name), errno);
  }
  return true;
}

void remove_evicted(const fs::path& tmp) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(tmp, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->path().filename().string().starts_with(std::string(kEvictedPrefix) + ".")) {
      (void)remove_tree(it->path());
    }
  }
}

size_t PublishedDirs::process_leases(std::string_view name) const {
  return shared_lock_holders(lock_path(name));
}

int64_t PublishedDirs::last_leased_ms(std::string_view name) const {
  return mtime_ms(lock_path(name));
}

std::vector<std::string> PublishedDirs::list_ready() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(ready_ext_)) continue;
    name.resize(name.size() - ready_ext_.size());
    if (!name.empty() && name[0] != '.' && is_ready(name)) out.push_back(name);
  }
  return out;
}

std::vector<std::string> PublishedDirsKind::list_ready() const {
  std::vector<std::string> out;
  for (const auto& k : dirs_.list_ready()) out.push_back(prefix_ + k);
  return out;
}

}  // namespace rtenv::env
