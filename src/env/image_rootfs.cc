#include "env/image_rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <fmt/format.h>

#include "util/fs.h"

namespace rtenv::env {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

Error fail(std::string_view what, const std::string& path) {
  return make_error(ErrorCode::kIo, "assembling an image's root filesystem: {} {}: {}", what,
                    path.empty() ? "/" : path, errno_text());
}

UniqueFd open_dir_at(int dirfd, const char* name) {
  return UniqueFd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

Result<std::vector<std::string>> entries_of(int dirfd, const std::string& path) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open", path);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return fail("cannot list", path);
  }
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  ::closedir(d);
  return out;
}

// Removes `name` in `dirfd`, a directory with everything below it; absent is fine.
Result<void> remove_at(int dirfd, const std::string& name, const std::string& path) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? ok_result() : fail("cannot stat", path);
  }
  if (S_ISDIR(st.st_mode)) {
    ::fchmodat(dirfd, name.c_str(), (st.st_mode & 07777) | 0700, 0);
    UniqueFd sub = open_dir_at(dirfd, name.c_str());
    if (!sub.valid()) return fail("cannot open", path);
    RTENV_ASSIGN_OR_RETURN(auto names, entries_of(sub.get(), path));
    for (const auto& n : names) RTENV_TRY(remove_at(sub.get(), n, path + "/" + n));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return fail("cannot remove", path);
    return ok_result();
  }
  if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT)
    return fail("cannot remove", path);
  return ok_result();
}

// Applies the layer directory `src` onto `dst` (both open), `path` naming it for messages.
Result<void> apply_dir(int src, int dst, const std::string& path, RootfsStats* stats) {
  RTENV_ASSIGN_OR_RETURN(auto names, entries_of(src, path));
  // Whiteouts first: they remove what the layers below put here, never this layer's entries.
  for (const auto& n : names) {
    if (n == kOpaqueMarker) {
      RTENV_ASSIGN_OR_RETURN(auto lower, entries_of(dst, path));
      for (const auto& l : lower) RTENV_TRY(remove_at(dst, l, path + "/" + l));
      ++stats->whiteouts;
    }
  }
  for (const auto& n : names) {
    if (n == kOpaqueMarker || !n.starts_with(kWhiteoutPrefix)) continue;
    std::string target = n.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") continue;
    RTENV_TRY(remove_at(dst, target, path + "/" + target));
    ++stats->whiteouts;
  }
  for (const auto& n : names) {
    if (n.starts_with(kWhiteoutPrefix)) continue;
    std::string sub_path = path + "/" + n;
    struct stat st;
    if (::fstatat(src, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return fail("cannot stat", sub_path);
    struct stat have;
    bool exists = ::fstatat(dst, n.c_str(), &have, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISDIR(st.st_mode)) {
      if (exists && !S_ISDIR(have.st_mode)) {
        RTENV_TRY(remove_at(dst, n, sub_path));
        exists = false;
      }
      if (!exists && ::mkdirat(dst, n.c_str(), 0700) != 0) return fail("cannot create", sub_path);
      UniqueFd from = open_dir_at(src, n.c_str());
      UniqueFd to = open_dir_at(dst, n.c_str());
      if (!from.valid() || !to.valid()) return fail("cannot open", sub_path);
      ::fchmod(to.get(), 0700);  // writable while this layer fills it
      RTENV_TRY(apply_dir(from.get(), to.get(), sub_path, stats));
      ::fchmod(to.get(), (st.st_mode & 07777) | 0700);
      ++stats->dirs;
      continue;
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
    if (exists) RTENV_TRY(remove_at(dst, n, sub_path));
    if (S_ISREG(st.st_mode)) {
      if (::linkat(src, n.c_str(), dst, n.c_str(), 0) != 0) return fail("cannot link", sub_path);
      ++stats->files;
      continue;
    }
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t len = ::readlinkat(src, n.c_str(), target.data(), target.size());
    if (len < 0 || static_cast<size_t>(len) >= target.size()) return fail("cannot read", sub_path);
    target.resize(static_cast<size_t>(len));
    if (::symlinkat(target.c_str(), dst, n.c_str()) != 0) return fail("cannot create", sub_path);
    ++stats->symlinks;
  }
  return ok_result();
}

}  // namespace

Result<RootfsStats> assemble_rootfs(const std::vector<fs::path>& layers, const fs::path& dest) {
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create directory", dest, errno);
  UniqueFd root = open_dir_at(AT_FDCWD, dest.c_str());
  if (!root.valid()) return io_error("cannot open directory", dest, errno);
  RootfsStats stats;
  for (const auto& layer : layers) {
    UniqueFd src = open_dir_at(AT_FDCWD, layer.c_str());
    if (!src.valid()) return io_error("cannot open directory", layer, errno);
    RTENV_TRY(apply_dir(src.get(), root.get(), "", &stats));
  }
  return stats;
}

}  // namespace rtenv::env
