#include "util/fs.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>

namespace rtenv {

std::string errno_text() { return std::strerror(errno); }

Error io_error(std::string_view what, const fs::path& path, int err) {
  return Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
               fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<std::string> read_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("cannot open", path, errno);
  std::string out;
  struct stat st;
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<void> write_all(int fd, std::string_view data, const fs::path& path_for_errors) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path_for_errors, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok_result();
}

Result<void> write_file_atomic(const fs::path& path, std::string_view data, mode_t mode) {
  fs::path tmp = path.parent_path() / unique_name(fmt::format(".{}.tmp", path.filename().string()));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return io_error("cannot create", tmp, errno);
  if (auto r = write_all(fd.get(), data, tmp); !r) {
    ::unlink(tmp.c_str());
    return r;
  }
  ::fchmod(fd.get(), mode);  // the umask may have narrowed it
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot rename into", path, err);
  }
  return ok_result();
}

Result<void> write_new_file(const fs::path& path, std::string_view data, mode_t mode) {
  fs::path tmp = path.parent_path() / unique_name(fmt::format(".{}.new", path.filename().string()));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) return io_error("cannot create", tmp, errno);
  auto fail = [&](Error e) -> Result<void> {
    ::unlink(tmp.c_str());
    return e;
  };
  if (auto r = write_all(fd.get(), data, tmp); !r) return fail(std::move(r).error());
  if (::fchmod(fd.get(), mode) != 0) return fail(io_error("cannot chmod", tmp, errno));
  fd.reset();
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
    return ok_result();
  }
  int err = errno;
  if (err == EINVAL || err == ENOSYS) {  // a filesystem without RENAME_NOREPLACE
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      ::unlink(tmp.c_str());
      return ok_result();
    }
    err = errno;
  }
  if (err == EEXIST) {
    return fail(
        make_error(ErrorCode::kAlreadyExists, "cannot create {}: it exists", path.string()));
  }
  return fail(io_error("cannot create", path, err));
}

Result<void> make_dirs(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec && !fs::is_directory(path)) {
    return Error(ErrorCode::kIo,
                 fmt::format("cannot create directory {}: {}", path.string(), ec.message()));
  }
  return ok_result();
}

Result<void> remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) {
    return Error(ErrorCode::kIo, fmt::format("cannot remove {}: {}", path.string(), ec.message()));
  }
  return ok_result();
}

std::string unique_name(std::string_view prefix) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}.{}.{}.{:08x}", prefix, ::getpid(), counter.fetch_add(1),
                     static_cast<uint32_t>(rng()));
}

Result<void> copy_fd(int src_fd, int dst_fd, const fs::path& src_for_errors) {
  for (;;) {
    ssize_t n = ::copy_file_range(src_fd, nullptr, dst_fd, nullptr, size_t{1} << 30, 0);
    if (n > 0) continue;
    if (n == 0) return ok_result();
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) break;
    return io_error("cannot copy", src_for_errors, errno);
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(src_fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", src_for_errors, errno);
    }
    if (n == 0) return ok_result();
    RTENV_TRY(write_all(dst_fd, std::string_view(buf, static_cast<size_t>(n)), src_for_errors));
  }
}

namespace {
Result<FileLock> lock_impl(const fs::path& path, FileLock::Mode mode, bool wait, UniqueFd* out) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return io_error("cannot open lock file", path, errno);
  int op = (mode == FileLock::Mode::kShared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);
  while (::flock(fd.get(), op) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return FileLock();
    return io_error("cannot lock", path, errno);
  }
  *out = std::move(fd);
  return FileLock();
}
}  // namespace

Result<FileLock> FileLock::acquire(const fs::path& path, Mode mode) {
  FileLock lock;
  RTENV_TRY(lock_impl(path, mode, true, &lock.fd_));
  return lock;
}

Result<FileLock> FileLock::try_acquire(const fs::path& path, Mode mode) {
  FileLock lock;
  RTENV_TRY(lock_impl(path, mode, false, &lock.fd_));
  return lock;
}

void FileLock::touch() {
  if (fd_.valid()) ::futimens(fd_.get(), nullptr);
}

Result<void> FileLock::convert(Mode mode) {
  int op = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
  while (::flock(fd_.get(), op) != 0) {
    if (errno == EINTR) continue;
    return Error(ErrorCode::kIo, "cannot convert file lock: " + errno_text());
  }
  return ok_result();
}

}  // namespace rtenv

namespace rtenv {

size_t shared_lock_holders(const fs::path& lock_file) {
  struct stat st;
  if (::stat(lock_file.c_str(), &st) != 0) return 0;
  auto locks = read_file("/proc/locks");
  if (!locks) return 0;
  // Lines: "1: FLOCK  ADVISORY  READ  1234 fd:01:123456 0 EOF"; the device is major:minor in hex.
  std::string suffix = fmt::format(":{} ", static_cast<uint64_t>(st.st_ino));
  std::string dev = fmt::format("{:02x}:{:02x}", major(st.st_dev), minor(st.st_dev));
  size_t count = 0;
  size_t pos = 0;
  while (pos < locks->size()) {
    size_t end = locks->find('\n', pos);
    if (end == std::string::npos) end = locks->size();
    std::string_view line(locks->data() + pos, end - pos);
    // Waiters ("->") hold nothing yet; READ is a shared lock, i.e. a lease.
    if (line.find("FLOCK") != std::string_view::npos && line.find("->") == std::string_view::npos &&
        line.find(" READ ") != std::string_view::npos &&
        line.find(dev + suffix) != std::string_view::npos) {
      ++count;
    }
    pos = end + 1;
  }
  return count;
}

int64_t mtime_ms(const fs::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mtim.tv_sec * 1000LL + st.st_mtim.tv_nsec / 1000000;
}

}  // namespace rtenv
