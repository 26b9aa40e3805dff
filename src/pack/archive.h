#pragma once
// Unpacking archives (a local working_dir.tar.gz, or a zip downloaded from a URL) safely.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

#include "spec/runtime_env.h"
#include "util/result.h"

namespace rtenv::pack {

struct ExtractStats {
  size_t files = 0, dirs = 0, symlinks = 0;
  uint64_t bytes = 0;
};

/// How an archive is read: a zip, or a tar (plain, or compressed with gzip, xz or bzip2).
enum class ArchiveFormat { kZip, kTar };

/// The format of an archive named `name` (a file name or a URL's path), from its suffix
/// (spec::archive_suffix); nullopt if it names none. No libarchive: the lean binary may call it.
inline std::optional<ArchiveFormat> archive_format_of(std::string_view name) {
  std::string_view suffix = spec::archive_suffix(name);
  if (suffix.empty()) return std::nullopt;
  return suffix == ".zip" ? ArchiveFormat::kZip : ArchiveFormat::kTar;
}

/// Extracts the archive at `archive`, read as `format`, into the directory `dest`, which must
/// not exist yet. Refused with kUnsafe, and `dest` removed, when an entry has an absolute path or
/// a ".." component, passes through a symlink, is a symlink leading out of the tree, a hard link
/// to anything but a regular file extracted before it, or a device, FIFO or socket; kTooLarge
/// when the entries add up to more than `max_bytes`; kCorrupt when the archive cannot be read as
/// `format`. Nothing is ever written outside `dest`: every path is opened component by component
/// without following symlinks, and symlinks are created only after all files.
Result<ExtractStats> extract_archive(const std::filesystem::path& archive, ArchiveFormat format,
                                     const std::filesystem::path& dest, uint64_t max_bytes);

/// Extracts an image layer (a tar, plain or compressed with gzip or zstd) into the new directory
/// `dest` as it is: whiteout entries (".wh.<name>", ".wh..wh..opq") stay files for the rootfs
/// assembly (env/image_rootfs.h) to apply. The same refusals as extract_archive for absolute
/// paths, "..", entries through symlinks and hard links outside the tree (kUnsafe, `dest`
/// removed); unlike it, modes are kept (setuid and setgid dropped, the owner always able to
/// read), device nodes and FIFOs are skipped, and symlinks may point anywhere: they are never
/// followed here, and resolve inside the image's root at run time.
Result<ExtractStats> extract_layer(const std::filesystem::path& layer,
                                   const std::filesystem::path& dest, uint64_t max_bytes);

}  // namespace rtenv::pack
