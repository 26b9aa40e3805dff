#include "store/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <dirent.h>

#include "util/fs.h"
#include "util/redact.h"

namespace rtenv::store {

namespace {
constexpr mode_t kBlobMode = 0444;

int64_t mtime_ms(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

int64_t now_ms() {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

// Sets the blob's mtime to now if it is older than the touch interval. Best effort: a blob of
// another user on a shared directory may refuse (its age then counts from its last write).
void touch_if_stale(int dirfd, const char* rel, const struct stat& st) {
  if (now_ms() - mtime_ms(st) < LocalStore::kTouchIntervalMs) return;
  timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  (void)::utimensat(dirfd, rel, times, 0);
}
constexpr size_t kChunk = 256 * 1024;

// Reads `fd` to the end, handing each chunk to `sink` and hashing it.
Result<Digest> stream_hashed(int fd, const fs::path& path,
                             const std::function<Result<void>(std::string_view)>& sink) {
  thread_local std::unique_ptr<char[]> buf(new char[kChunk]);
  Sha256 sha;
  for (;;) {
    ssize_t n = ::read(fd, buf.get(), kChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", path, errno);
    }
    if (n == 0) break;
    std::string_view chunk(buf.get(), static_cast<size_t>(n));
    sha.update(chunk);
    RTENV_TRY(sink(chunk));
  }
  return sha.finish();
}
}  // namespace

Result<std::unique_ptr<LocalStore>> LocalStore::open(const fs::path& root) {
  if (!root.is_absolute()) {
    return make_error(ErrorCode::kInvalidArgument, "store directory {} is not an absolute path",
                      root.string());
  }
  RTENV_TRY(make_dirs(root));
  return std::unique_ptr<LocalStore>(new LocalStore(root));
}

std::string LocalStore::url() const { return "file://" + root_.string(); }

fs::path LocalStore::blob_path(const Digest& digest) const {
  std::string hex = digest.hex();
  return root_ / hex.substr(0, 2) / hex;
}

Result<std::vector<bool>> LocalStore::missing(const std::vector<Digest>& digests) {
  std::vector<bool> out(digests.size());
  UniqueFd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return io_error("cannot open store", root_, errno);
  // "ab/<64 hex>", relative to the store's root: no path objects in this loop.
  char rel[2 + 1 + 64 + 1];
  struct stat st;
  for (size_t i = 0; i < digests.size(); ++i) {
    std::string hex = digests[i].hex();
    std::memcpy(rel, hex.data(), 2);
    rel[2] = '/';
    std::memcpy(rel + 3, hex.data(), 64);
    rel[67] = '\0';
    out[i] = ::fstatat(root.get(), rel, &st, 0) != 0;
    // Found present: the caller will rely on it (a pack publishes a manifest naming it).
    if (!out[i]) touch_if_stale(root.get(), rel, st);
  }
  return out;
}

Result<void> LocalStore::publish(const Digest& digest,
                                 const std::function<Result<void>(int fd)>& fill) {
  fs::path final_path = blob_path(digest);
  struct stat st;
  if (::stat(final_path.c_str(), &st) == 0) return ok_result();
  fs::path dir = final_path.parent_path();
  fs::path tmp = dir / unique_name(".tmp");
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kBlobMode));
  if (!fd.valid() && errno == ENOENT) {
    RTENV_TRY(make_dirs(dir));
    fd = UniqueFd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kBlobMode));
  }
  if (!fd.valid()) return io_error("cannot create", tmp, errno);
  if (auto r = fill(fd.get()); !r) {
    ::unlink(tmp.c_str());
    return r;
  }
  fd.reset();
  // rename() replaces an existing blob atomically; a concurrent writer of the same digest wrote
  // the same bytes, so either copy is right.
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot publish blob", final_path, err);
  }
  return ok_result();
}

Result<void> LocalStore::put(const Digest& digest, std::string_view data) {
  return publish(digest, [&](int fd) -> Result<void> {
    Digest actual = Digest::of(data);
    if (actual != digest) return content_mismatch(digest, actual, "the data");
    return write_all(fd, data, blob_path(digest));
  });
}

Result<void> LocalStore::put_file(const Digest& digest, const fs::path& path) {
  return publish(digest, [&](int fd) -> Result<void> {
    UniqueFd src(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!src.valid()) return io_error("cannot open", path, errno);
    // Hashed as it is copied: what is published is what was hashed, whatever the file does.
    RTENV_ASSIGN_OR_RETURN(Digest actual, stream_hashed(src.get(), path, [&](std::string_view c) {
                             return write_all(fd, c, path);
                           }));
    if (actual != digest) return content_mismatch(digest, actual, path.string());
    return ok_result();
  });
}

Result<void> LocalStore::put_stream(const Digest& digest,
                                    const std::function<Result<void>(const ChunkSink&)>& produce,
                                    std::string_view source) {
  return publish(digest, [&](int fd) -> Result<void> {
    Sha256 sha;
    fs::path path = blob_path(digest);
    RTENV_TRY(produce([&](std::string_view chunk) -> Result<void> {
      sha.update(chunk);
      return write_all(fd, chunk, path);
    }));
    Digest actual = sha.finish();
    if (actual != digest) return content_mismatch(digest, actual, source);
    return ok_result();
  });
}

Error LocalStore::corrupt(const Digest& digest, const Digest& actual) const {
  // Moved aside (not deleted: it may be looked at), so that the store lacks the blob and the
  // next upload of the right content replaces it.
  fs::path path = blob_path(digest);
  fs::path aside = root_ / "corrupt" / unique_name(digest.hex());
  std::error_code ec;
  fs::create_directories(aside.parent_path(), ec);
  bool moved = !ec && ::rename(path.c_str(), aside.c_str()) == 0;
  return make_error(ErrorCode::kCorrupt,
                    "blob {} in store {} was corrupt (its content hashes to {}){}; pack the "
                    "package again to replace it",
                    digest.hex(), url(), actual.hex(),
                    moved ? ", moved aside to " + aside.string() : "");
}

Result<std::string> LocalStore::get(const Digest& digest) {
  fs::path path = blob_path(digest);
  auto data = read_file(path);
  if (!data) {
    if (data.error().code() == ErrorCode::kNotFound) {
      return make_error(ErrorCode::kNotFound, "blob {} is not in store {}", digest.hex(), url());
    }
    return std::move(data).error();
  }
  Digest actual = Digest::of(*data);
  if (actual != digest) return corrupt(digest, actual);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) touch_if_stale(AT_FDCWD, path.c_str(), st);  // in use
  return std::move(data).value();
}

Result<void> LocalStore::get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                                     uint64_t max_bytes) {
  fs::path path = blob_path(digest);
  UniqueFd src(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src.valid()) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::kNotFound, "blob {} is not in store {}", digest.hex(), url());
    }
    return io_error("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(src.get(), &st) == 0) touch_if_stale(AT_FDCWD, path.c_str(), st);  // in use
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!out.valid()) return io_error("cannot create", dest, errno);
  uint64_t written = 0;
  auto actual = stream_hashed(src.get(), path, [&](std::string_view chunk) -> Result<void> {
    if (chunk.size() > max_bytes - std::min(written, max_bytes)) {
      return make_error(ErrorCode::kTooLarge,
                        "blob {} in store {} is larger than the {} bytes expected", digest.hex(),
                        url(), max_bytes);
    }
    written += chunk.size();
    return write_all(out.get(), chunk, dest);
  });
  if (actual && *actual != digest) actual = corrupt(digest, *actual);
  if (!actual) {
    ::unlink(dest.c_str());
    return std::move(actual).error();
  }
  ::fchmod(out.get(), mode);  // the umask may have narrowed it
  return ok_result();
}

Result<bool> LocalStore::remove(const Digest& digest) {
  fs::path path = blob_path(digest);
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return io_error("cannot remove", path, errno);
}

Result<void> LocalStore::list(const std::function<void(const Digest&, uint64_t)>& fn) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory() || it->path().filename().string().size() != 2) continue;
    for (auto blob = fs::directory_iterator(it->path(), ec);
         !ec && blob != fs::directory_iterator(); blob.increment(ec)) {
      auto d = Digest::from_hex(blob->path().filename().string());
      if (!d) continue;  // temp files and strangers
      std::error_code size_ec;
      uint64_t size = blob->file_size(size_ec);
      if (!size_ec) fn(*d, size);
    }
  }
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot list store {}: {}", url(), ec.message());
  }
  return ok_result();
}

Result<void> LocalStore::scan(const std::function<void(const Digest&, uint64_t, int64_t)>& fn) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory() || it->path().filename().string().size() != 2) continue;
    UniqueFd dir(::open(it->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return io_error("cannot list", it->path(), errno);
    for (auto blob = fs::directory_iterator(it->path(), ec);
         !ec && blob != fs::directory_iterator(); blob.increment(ec)) {
      std::string name = blob->path().filename().string();
      auto d = Digest::from_hex(name);
      if (!d) continue;  // temp files and strangers
      struct stat st;
      if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
      fn(*d, static_cast<uint64_t>(st.st_size), mtime_ms(st));
    }
  }
  if (ec) return make_error(ErrorCode::kIo, "cannot list store {}: {}", url(), ec.message());
  return ok_result();
}

Result<void> LocalStore::scan_records(
    const std::function<void(const std::string&, const std::string&)>& fn) {
  fs::path records = root_ / "records";
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(records, ec);
  if (ec) return ok_result();  // none yet
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string name = it->path().lexically_relative(records).string();
    if (!check_record_name(name)) continue;  // temp files
    // Records are small values; a planted big file is not read into memory.
    std::error_code size_ec;
    if (it->file_size(size_ec) > kMaxRecordBytes || size_ec) continue;
    if (auto text = read_file(it->path())) fn(name, *text);
  }
  if (ec) return make_error(ErrorCode::kIo, "cannot list records of {}: {}", url(), ec.message());
  return ok_result();
}

Result<std::optional<std::string>> LocalStore::read_if(const Digest& digest, size_t head_bytes,
                                                       const HeadTest& wanted, uint64_t max_bytes) {
  // Read past `get`, which would mark the blob used.
  UniqueFd fd(::open(blob_path(digest).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return std::optional<std::string>();
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) > max_bytes) {
    return std::optional<std::string>();
  }
  std::string text(head_bytes, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  if (!wanted(text)) return std::optional<std::string>();
  char buf[kChunk];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes) return std::optional<std::string>();
    text.append(buf, static_cast<size_t>(n));
  }
  if (Digest::of(text) != digest) return std::optional<std::string>();  // corrupt
  return std::optional<std::string>(std::move(text));
}

Result<bool> LocalStore::remove_if_untouched_since(const Digest& digest, int64_t cutoff_ms) {
  fs::path path = blob_path(digest);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return io_error("cannot stat", path, errno);
  }
  if (mtime_ms(st) >= cutoff_ms) return false;
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return io_error("cannot remove", path, errno);
}

Result<FileLock> LocalStore::lock_for_collection(FileLock::Mode mode) {
  auto lock = FileLock::acquire(root_ / ".collection.lock", mode);
  // A store this user may read but not write (a shared directory) is never collected by them, and
  // their packs fail at the first upload anyway: nothing to hold.
  if (!lock && mode == FileLock::Mode::kShared) return FileLock();
  return lock;
}

Result<fs::path> LocalStore::record_path(std::string_view name, bool create_dir) const {
  RTENV_TRY(check_record_name(name));
  fs::path path = root_ / "records" / std::string(name);
  if (create_dir) RTENV_TRY(make_dirs(path.parent_path()));
  return path;
}

Result<void> LocalStore::create_record(std::string_view name, std::string_view data) {
  RTENV_ASSIGN_OR_RETURN(fs::path path, record_path(name, /*create_dir=*/true));
  fs::path tmp = path.parent_path() / unique_name(".record");
  RTENV_TRY(write_file_atomic(tmp, data));
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return ok_result();
  if (err == EEXIST) {
    return make_error(ErrorCode::kAlreadyExists, "record {} exists in store {}", name, url());
  }
  return io_error("cannot create record", path, err);
}

Result<void> LocalStore::put_record(std::string_view name, std::string_view data) {
  RTENV_ASSIGN_OR_RETURN(fs::path path, record_path(name, /*create_dir=*/true));
  return write_file_atomic(path, data);
}

Result<std::string> LocalStore::get_record(std::string_view name) {
  RTENV_ASSIGN_OR_RETURN(fs::path path, record_path(name, /*create_dir=*/false));
  auto data = read_file(path);
  if (!data && data.error().code() == ErrorCode::kNotFound) {
    return make_error(ErrorCode::kNotFound, "record {} is not in store {}", name, url());
  }
  return data;
}

Result<bool> LocalStore::remove_record(std::string_view name) {
  RTENV_ASSIGN_OR_RETURN(fs::path path, record_path(name, /*create_dir=*/false));
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return io_error("cannot remove record", path, errno);
}

Result<void> check_record_name(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::kInvalidArgument, "bad record name \"{}\": {}", name, why);
  };
  if (name.empty() || name.size() > 512) return bad("must have 1 to 512 characters");
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view segment = name.substr(start, end - start);
    if (segment.empty()) return bad("empty path segment");
    if (segment[0] == '.') return bad("a segment starts with '.'");
    for (char c : segment) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-';
      if (!ok) return bad("only letters, digits, '.', '_', '-' and '/' are allowed");
    }
    start = end + 1;
  }
  return ok_result();
}

Result<std::unique_ptr<BlobStore>> open_store(std::string_view url) {
  RTENV_ASSIGN_OR_RETURN(auto store, LocalStore::open_url(url));
  return std::unique_ptr<BlobStore>(std::move(store));
}

Result<std::unique_ptr<LocalStore>> LocalStore::open_url(std::string_view url) {
  std::string_view path = url;
  if (url.starts_with("file://")) {
    path = url.substr(7);
  } else if (auto pos = url.find("://"); pos != std::string_view::npos) {
    const std::string_view scheme = url.substr(0, pos);
    if (scheme == "s3" || scheme == "http" || scheme == "https") {
      return make_error(ErrorCode::kUnsupported,
                        "store URL {}: {}:// stores are opened by open_store_any "
                        "(store/open_store_any.h), which this program does not link",
                        redact_url_credentials(url), scheme);
    }
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: rtenv has no {}:// store; a store is a directory "
                      "(/abs/dir or file:///abs/dir), an S3-compatible bucket "
                      "(s3://bucket[/prefix]) or rtenv's blob server (http://host:port or "
                      "https://host:port, `rtenv store serve`)",
                      redact_url_credentials(url), scheme);
  }
  if (path.empty() || path[0] != '/') {
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: expected file:///absolute/dir or an absolute directory", url);
  }
  return LocalStore::open(fs::path(path));
}

}  // namespace rtenv::store
