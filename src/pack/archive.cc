#include "pack/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "pack/packer.h"
#include "pack/walk.h"
#include "util/fs.h"

namespace rtenv::pack {
namespace {

struct ArchiveReader {
  struct archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};

// Splits an entry name into components; false if it is absolute or has a ".." component.
bool safe_components(std::string_view name, std::vector<std::string>* out) {
  out->clear();
  if (name.empty() || name[0] == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view c = name.substr(start, slash - start);
    if (c == "..") return false;
    if (!c.empty() && c != ".") out->emplace_back(c);
    start = slash + 1;
  }
  return true;
}

// Opens (creating) the directory `parts[0..n)` below `root_fd`, never following symlinks.
Result<UniqueFd> open_dirs(int root_fd, const std::vector<std::string>& parts, size_t n,
                           const std::string& entry) {
  UniqueFd cur(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  for (size_t i = 0; i < n; ++i) {
    if (::mkdirat(cur.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) {
      return make_error(ErrorCode::kIo, "cannot create directory for archive entry {}: {}", entry,
                        errno_text());
    }
    UniqueFd next(
        ::openat(cur.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      return make_error(ErrorCode::kUnsafe,
                        "archive entry {} passes through '{}', which is not a directory", entry,
                        parts[i]);
    }
    cur = std::move(next);
  }
  return cur;
}

Error unsafe(const std::string& entry, std::string_view why) {
  return make_error(ErrorCode::kUnsafe, "archive entry '{}' {}; refusing to unpack", entry, why);
}

const char* format_name(ArchiveFormat format) {
  return format == ArchiveFormat::kZip ? "zip" : "tar archive";
}

// A hard link entry: a second name for a regular file extracted before it, inside the tree.
Result<void> make_hard_link(int root_fd, const std::vector<std::string>& parts,
                            const std::string& name, const std::string& target) {
  std::vector<std::string> target_parts;
  if (!safe_components(target, &target_parts) || target_parts.empty()) {
    return unsafe(name, fmt::format("is a hard link to '{}', outside the package", target));
  }
  RTENV_ASSIGN_OR_RETURN(UniqueFd from_dir,
                         open_dirs(root_fd, target_parts, target_parts.size() - 1, name));
  struct stat st;
  if (::fstatat(from_dir.get(), target_parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode)) {
    return unsafe(name, fmt::format("is a hard link to '{}', which is not a file unpacked before "
                                    "it",
                                    target));
  }
  RTENV_ASSIGN_OR_RETURN(UniqueFd to_dir, open_dirs(root_fd, parts, parts.size() - 1, name));
  if (::linkat(from_dir.get(), target_parts.back().c_str(), to_dir.get(), parts.back().c_str(),
               0) != 0) {
    if (errno == EEXIST) return unsafe(name, "appears twice");
    return make_error(ErrorCode::kIo, "cannot create hard link {}: {}", name, errno_text());
  }
  return ok_result();
}

// What differs between a package's archive and an image layer.
struct Rules {
  bool layer = false;  // modes kept (less setuid/setgid), devices and FIFOs skipped, symlinks
                       // may point anywhere (they resolve inside the image's root at run time)
};

Result<ExtractStats> extract_into(struct archive* a, int root_fd, const std::filesystem::path& path,
                                  ArchiveFormat format, uint64_t max_bytes, const Rules& rules) {
  ExtractStats stats;
  struct PendingLink {
    std::vector<std::string> parts;
    std::string target, entry;
  };
  std::vector<PendingLink> links;
  struct PendingMode {
    std::vector<std::string> parts;
    mode_t mode;
  };
  std::vector<PendingMode> dir_modes;
  std::vector<std::string> parts;
  std::vector<char> buf(1 << 16);
  struct archive_entry* entry;
  for (;;) {
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return make_error(ErrorCode::kCorrupt, "{} is not a readable {}: {}", path.string(),
                        format_name(format),
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
    }
    const char* raw_name = archive_entry_pathname(entry);
    std::string name = raw_name ? raw_name : "";
    if (!safe_components(name, &parts)) return unsafe(name, "has an absolute path or '..'");
    if (parts.empty()) continue;  // "./"
    if (const char* target = archive_entry_hardlink(entry)) {
      // Its data (if any) is the target's: nothing more to read or count.
      RTENV_TRY(make_hard_link(root_fd, parts, name, target));
      ++stats.files;
      continue;
    }
    mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      RTENV_ASSIGN_OR_RETURN(UniqueFd d, open_dirs(root_fd, parts, parts.size(), name));
      // Set once everything is written, so a read-only directory still receives its entries.
      if (rules.layer) dir_modes.push_back({parts, (archive_entry_perm(entry) & 01777) | 0700});
      ++stats.dirs;
      continue;
    }
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      links.push_back({parts, target ? target : "", name});
      continue;
    }
    if (type != AE_IFREG) {
      // Device nodes and FIFOs of an image cannot be made without privileges, and an image runs
      // with the host's /dev: skipped.
      if (rules.layer && type != AE_IFSOCK) continue;
      return unsafe(name, "is not a file, directory or symlink");
    }
    RTENV_ASSIGN_OR_RETURN(UniqueFd dir, open_dirs(root_fd, parts, parts.size() - 1, name));
    // A layer keeps its modes (readable by the owner, never setuid or setgid).
    mode_t mode = rules.layer                          ? ((archive_entry_perm(entry) & 0777) | 0400)
                  : (archive_entry_perm(entry) & 0111) ? 0755
                                                       : 0644;
    UniqueFd out(::openat(dir.get(), parts.back().c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!out.valid()) {
      if (errno == EEXIST) return unsafe(name, "appears twice");
      return make_error(ErrorCode::kIo, "cannot create {}: {}", name, errno_text());
    }
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
      if (n < 0) {
        return make_error(ErrorCode::kCorrupt, "{}: cannot read entry {}: {}", path.string(), name,
                          archive_error_string(a) ? archive_error_string(a) : "bad data");
      }
      if (n == 0) break;
      stats.bytes += static_cast<uint64_t>(n);
      if (stats.bytes > max_bytes) {
        return make_error(ErrorCode::kTooLarge,
                          "{} unpacks to more than the package limit of {}; raise it with "
                          "--max-package-size / RTENV_MAX_PACKAGE_SIZE if that is intended",
                          path.string(), format_bytes(max_bytes));
      }
      RTENV_TRY(write_all(out.get(), std::string_view(buf.data(), static_cast<size_t>(n)), name));
    }
    ::fchmod(out.get(), mode);
    ++stats.files;
  }
  // Links last: no file above was written through one.
  for (const auto& l : links) {
    RTENV_ASSIGN_OR_RETURN(UniqueFd dir, open_dirs(root_fd, l.parts, l.parts.size() - 1, l.entry));
    if (l.target.empty()) return unsafe(l.entry, "is a symlink without a target");
    if (::symlinkat(l.target.c_str(), dir.get(), l.parts.back().c_str()) != 0) {
      if (errno == EEXIST) return unsafe(l.entry, "appears twice");
      return make_error(ErrorCode::kIo, "cannot create symlink {}: {}", l.entry, errno_text());
    }
    ++stats.symlinks;
  }
  for (auto it = dir_modes.rbegin(); it != dir_modes.rend(); ++it) {
    RTENV_ASSIGN_OR_RETURN(UniqueFd d,
                           open_dirs(root_fd, it->parts, it->parts.size(), path.string()));
    ::fchmod(d.get(), it->mode);
  }
  if (rules.layer) return stats;
  // Checked once all links exist, so chains of links are followed as they will be at run time.
  for (const auto& l : links) {
    std::string rel_dir;
    for (size_t i = 0; i + 1 < l.parts.size(); ++i) rel_dir += (i ? "/" : "") + l.parts[i];
    if (!link_stays_inside(root_fd, rel_dir, l.target)) {
      return unsafe(l.entry,
                    fmt::format("is a symlink to '{}', which leads out of the package", l.target));
    }
  }
  return stats;
}

}  // namespace

Result<ExtractStats> extract_archive(const std::filesystem::path& archive, ArchiveFormat format,
                                     const std::filesystem::path& dest, uint64_t max_bytes) {
  ArchiveReader reader;
  if (format == ArchiveFormat::kZip) {
    archive_read_support_format_zip(reader.a);
  } else {
    archive_read_support_format_tar(reader.a);
    archive_read_support_format_gnutar(reader.a);
    archive_read_support_filter_gzip(reader.a);
    archive_read_support_filter_xz(reader.a);
    archive_read_support_filter_bzip2(reader.a);
  }
  if (archive_read_open_filename(reader.a, archive.c_str(), 1 << 16) != ARCHIVE_OK) {
    if (::access(archive.c_str(), R_OK) != 0) return io_error("cannot open", archive, errno);
    return make_error(ErrorCode::kCorrupt, "{} is not a readable {}: {}", archive.string(),
                      format_name(format),
                      archive_error_string(reader.a) ? archive_error_string(reader.a) : "unknown");
  }
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create directory", dest, errno);
  UniqueFd root_fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root_fd.valid()) return io_error("cannot open directory", dest, errno);
  auto stats = extract_into(reader.a, root_fd.get(), archive, format, max_bytes, Rules{});
  if (!stats) (void)remove_tree(dest);
  return stats;
}

Result<ExtractStats> extract_layer(const std::filesystem::path& layer,
                                   const std::filesystem::path& dest, uint64_t max_bytes) {
  ArchiveReader reader;
  archive_read_support_format_tar(reader.a);
  archive_read_support_format_gnutar(reader.a);
  archive_read_support_filter_gzip(reader.a);
  archive_read_support_filter_zstd(reader.a);
  if (archive_read_open_filename(reader.a, layer.c_str(), 1 << 16) != ARCHIVE_OK) {
    if (::access(layer.c_str(), R_OK) != 0) return io_error("cannot open", layer, errno);
    return make_error(ErrorCode::kCorrupt, "{} is not a readable layer: {}", layer.string(),
                      archive_error_string(reader.a) ? archive_error_string(reader.a) : "unknown");
  }
  if (::mkdir(dest.c_str(), 0755) != 0) return io_error("cannot create directory", dest, errno);
  UniqueFd root_fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root_fd.valid()) return io_error("cannot open directory", dest, errno);
  Rules rules;
  rules.layer = true;
  auto stats = extract_into(reader.a, root_fd.get(), layer, ArchiveFormat::kTar, max_bytes, rules);
  if (!stats) (void)remove_tree(dest);
  return stats;
}

}  // namespace rtenv::pack
