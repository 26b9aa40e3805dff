#pragma once
// Filesystem helpers with Result errors. No domain knowledge.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "util/result.h"

namespace rtenv {

namespace fs = std::filesystem;

/// "strerror(errno)" for the current errno.
std::string errno_text();
/// A kIo (or kNotFound for ENOENT) error: "<what> <path>: <strerror>".
Error io_error(std::string_view what, const fs::path& path, int err);

Result<std::string> read_file(const fs::path& path);

/// Writes `data` to a temp file beside `path`, then renames it over `path`: readers see the old
/// content or the new, never a part. `mode` applies to the new file.
Result<void> write_file_atomic(const fs::path& path, std::string_view data, mode_t mode = 0644);

/// Writes `data` to a temp file beside `path`, then moves it to `path` only if nothing is there:
/// kAlreadyExists otherwise (never replaces; readers never see a part). `mode` applies exactly.
Result<void> write_new_file(const fs::path& path, std::string_view data, mode_t mode);

/// Creates `path` and its parents; success if it already is a directory.
Result<void> make_dirs(const fs::path& path);

/// Removes `path` recursively if it exists; never follows symlinks.
Result<void> remove_tree(const fs::path& path);

/// A name unique on this host and over time: "<prefix>.<pid>.<counter>.<random>".
std::string unique_name(std::string_view prefix);

/// Copies the whole of `src_fd` to `dst_fd` in the kernel (copy_file_range), falling back to
/// read/write when the filesystem cannot.
Result<void> copy_fd(int src_fd, int dst_fd, const fs::path& src_for_errors);

/// Writes all of `data` to `fd`.
Result<void> write_all(int fd, std::string_view data, const fs::path& path_for_errors);

/// Processes holding a shared flock on `lock_file` right now (from /proc/locks; waiters do not
/// count). 0 if the file does not exist.
size_t shared_lock_holders(const fs::path& lock_file);

/// The file's mtime in ms since the epoch; 0 if it does not exist.
int64_t mtime_ms(const fs::path& path);

/// An open file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();

 private:
  int fd_ = -1;
};

/// An advisory lock (flock) on a lock file, released on destruction or when the process dies.
/// Thread-compatible: one owner.
class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  FileLock() = default;

  /// Opens (creating) `path` and takes the lock, waiting for it.
  static Result<FileLock> acquire(const fs::path& path, Mode mode);
  /// Like acquire, but returns an invalid lock at once if another process holds a conflicting one.
  static Result<FileLock> try_acquire(const fs::path& path, Mode mode);

  bool held() const { return fd_.valid(); }
  /// Sets the lock file's mtime to now (a cheap "last used" stamp).
  void touch();
  /// The descriptor holding the lock (-1 if none): a child process that inherits it (without
  /// FD_CLOEXEC) holds the lock too, until both have closed it.
  int fd() const { return fd_.get(); }
  /// Converts the held lock (not atomic, as flock(2) says).
  Result<void> convert(Mode mode);
  void release() { fd_.reset(); }

 private:
  UniqueFd fd_;
};

}  // namespace rtenv
