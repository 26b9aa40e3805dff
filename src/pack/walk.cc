#include "pack/walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <deque>

#include <fmt/format.h>

#include "pack/ignore.h"
#include "util/fs.h"

namespace rtenv::pack {
namespace {

constexpr int kMaxLinkHops = 40;

std::string join_rel(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out += dir;
  out += '/';
  out += name;
  return out;
}

std::vector<std::string> split_components(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

Result<std::string> read_link_at(int dirfd, const char* name, const std::string& rel) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name, buf.data(), buf.size());
    if (n < 0) return io_error("cannot read symlink", rel, errno);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

struct Walker {
  int root_fd;
  fs::path root;
  WalkResult* out;
  IgnoreStack stack;
  std::deque<IgnoreRules> rule_storage;                  // stable addresses for the stack
  std::vector<std::pair<uint64_t, uint64_t>> skip_dirs;  // (dev, ino)
  bool ignore_files = true;                              // honour .gitignore and .rtenvignore

  Result<void> walk_dir(int dirfd, const std::string& rel, WalkedDir* node);
  Result<bool> push_rules_file(int dirfd, const char* file, const std::string& rel,
                               IgnoreStack::Tier tier);
};

Result<bool> Walker::push_rules_file(int dirfd, const char* file, const std::string& rel,
                                     IgnoreStack::Tier tier) {
  UniqueFd fd(::openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return false;  // absent, or a link: git ignores a symlinked .gitignore too
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", root / join_rel(rel, file), errno);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  rule_storage.emplace_back(rel, text);
  stack.push(&rule_storage.back(), tier);
  return true;
}

Result<void> Walker::walk_dir(int dirfd, const std::string& rel, WalkedDir* node) {
  // Read all names first: ignore files in this directory apply to its other entries.
  std::vector<std::pair<std::string, unsigned char>> names;
  {
    int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return io_error("cannot read directory", root / rel, errno);
    DIR* dir = ::fdopendir(dup_fd);
    if (!dir) {
      ::close(dup_fd);
      return io_error("cannot read directory", root / rel, errno);
    }
    errno = 0;
    while (struct dirent* de = ::readdir(dir)) {
      std::string_view n = de->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n, de->d_type);
    }
    int err = errno;
    ::closedir(dir);
    if (err) return io_error("cannot read directory", root / rel, err);
  }
  bool has_gitignore = false, has_rtenvignore = false;
  for (auto& [n, t] : names) {
    has_gitignore |= ignore_files && n == ".gitignore";
    has_rtenvignore |= ignore_files && n == ".rtenvignore";
  }
  bool pushed_git = false, pushed_rtenv = false;
  if (has_gitignore) {
    RTENV_ASSIGN_OR_RETURN(
        pushed_git, push_rules_file(dirfd, ".gitignore", rel, IgnoreStack::Tier::kGitignore));
  }
  if (has_rtenvignore) {
    RTENV_ASSIGN_OR_RETURN(
        pushed_rtenv, push_rules_file(dirfd, ".rtenvignore", rel, IgnoreStack::Tier::kOverride));
  }

  for (auto& [name, dtype] : names) {
    if (name == ".git") continue;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // deleted while we walk
      return io_error("cannot stat", root / join_rel(rel, name), errno);
    }
    std::string child_rel = join_rel(rel, name);
    bool is_dir = S_ISDIR(st.st_mode);
    if (stack.ignored(child_rel, is_dir)) continue;

    WalkedDir::Child child;
    child.name = name;
    if (is_dir) {
      if (std::find(skip_dirs.begin(), skip_dirs.end(),
                    std::pair<uint64_t, uint64_t>(st.st_dev, st.st_ino)) != skip_dirs.end()) {
        continue;
      }
      UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
      if (!sub.valid()) {
        return unreadable_entry_error("cannot open directory", root / child_rel, errno);
      }
      child.kind = EntryKind::kDirectory;
      child.dir = std::make_unique<WalkedDir>();
      ++out->dirs;
      RTENV_TRY(walk_dir(sub.get(), child_rel, child.dir.get()));
    } else if (S_ISREG(st.st_mode)) {
      bool exec = (st.st_mode & S_IXUSR) != 0;
      child.kind = exec ? EntryKind::kExecutable : EntryKind::kFile;
      child.file_index = out->files.size();
      out->files.push_back(WalkedFile{child_rel, file_stat_of(st), exec, Digest()});
      out->file_bytes += static_cast<uint64_t>(st.st_size);
    } else if (S_ISLNK(st.st_mode)) {
      RTENV_ASSIGN_OR_RETURN(child.target, read_link_at(dirfd, name.c_str(), child_rel));
      if (!link_stays_inside(root_fd, rel, child.target)) {
        return make_error(ErrorCode::kUnsafe,
                          "{}: symlink to '{}' leads out of the package; add '{}' to excludes "
                          "(or .rtenvignore), or replace the link with a copy of what it points to",
                          (root / child_rel).string(), child.target, child_rel);
      }
      child.kind = EntryKind::kSymlink;
      ++out->symlinks;
    } else {
      out->warnings.push_back(fmt::format("skipped {} (not a regular file, directory or symlink)",
                                          (root / child_rel).string()));
      continue;
    }
    node->children.push_back(std::move(child));
  }
  if (pushed_rtenv) stack.pop(IgnoreStack::Tier::kOverride);
  if (pushed_git) stack.pop(IgnoreStack::Tier::kGitignore);
  return ok_result();
}

}  // namespace

FileStat file_stat_of(const struct stat& st) {
  return FileStat{static_cast<uint64_t>(st.st_size),
                  st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                  st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec,
                  static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_dev)};
}

bool link_stays_inside(int root_fd, const std::string& link_rel_dir, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  std::vector<std::string> path = split_components(link_rel_dir);
  std::deque<std::string> todo;
  for (auto& c : split_components(target)) todo.push_back(std::move(c));
  int hops = 0;
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      if (path.empty()) return false;
      path.pop_back();
      continue;
    }
    path.push_back(comp);
    std::string joined;
    for (size_t i = 0; i < path.size(); ++i) {
      if (i) joined += '/';
      joined += path[i];
    }
    struct stat st;
    if (::fstatat(root_fd, joined.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // dangling
    if (!S_ISLNK(st.st_mode)) continue;
    if (++hops > kMaxLinkHops) return false;
    auto next = read_link_at(root_fd, joined.c_str(), joined);
    if (!next || next->empty() || (*next)[0] == '/') return false;
    path.pop_back();
    auto parts = split_components(*next);
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  return true;
}

Result<WalkResult> walk_tree(const fs::path& root, const std::vector<std::string>& excludes,
                             const std::vector<std::pair<uint64_t, uint64_t>>& skip_dirs,
                             bool ignore_files) {
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return io_error("cannot open directory", root, errno);
  WalkResult result;
  Walker walker{root_fd.get(), root, &result, {}, {}, skip_dirs, ignore_files};
  if (!excludes.empty()) {
    walker.rule_storage.emplace_back("", excludes);
    walker.stack.push(&walker.rule_storage.back(), IgnoreStack::Tier::kOverride);
  }
  RTENV_TRY(walker.walk_dir(root_fd.get(), "", &result.root));
  return result;
}

Error unreadable_entry_error(std::string_view what, const fs::path& path, int err) {
  Error e = io_error(what, path, err);
  if (err != EACCES && err != EPERM) return e;
  return Error(e.code(), e.message() +
                             " (if the job does not need it, add it to excludes or to "
                             ".rtenvignore)");
}

}  // namespace rtenv::pack
