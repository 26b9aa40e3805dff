#pragma once
// Directory manifests: the nodes of a package's Merkle tree. A package is named by the digest of
// its root manifest; every file is a blob named by the digest of its content.
//
// Format (one directory; golden files in tests/data/pack/):
//
//   rtenv-manifest 1
//   d <sha256> <bytes below> <name>      a directory (its manifest's digest)
//   f <sha256> <size> <name>             a regular file
//   x <sha256> <size> <name>             an executable regular file
//   l <target> <name>                    a symbolic link
//
// Entries are sorted by name (bytes). In names '%', CR and LF are written %25, %0D, %0A; in link
// targets a space is also written %20, so every line splits unambiguously.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/digest.h"
#include "util/result.h"

namespace rtenv::pack {

enum class EntryKind : char {
  kDirectory = 'd',
  kFile = 'f',
  kExecutable = 'x',
  kSymlink = 'l',
};

struct ManifestEntry {
  EntryKind kind;
  std::string name;
  Digest digest;       ///< content (files) or manifest (directories); unset for symlinks
  uint64_t size = 0;   ///< file size, or total file bytes below a directory
  std::string target;  ///< symlinks only

  bool operator==(const ManifestEntry&) const = default;
};

class Manifest {
 public:
  /// Adds an entry; entries may come in any order (serialize() sorts them).
  void add(ManifestEntry entry) { entries_.push_back(std::move(entry)); }
  const std::vector<ManifestEntry>& entries() const { return entries_; }

  /// The canonical text. Sorts the entries in place first.
  std::string serialize();
  /// Parses canonical text; kCorrupt on any deviation (so a blob that is not a manifest, or a
  /// hostile one with "..", "/" or duplicate names, is refused).
  static Result<Manifest> parse(std::string_view text);

 private:
  std::vector<ManifestEntry> entries_;
};

/// True if `text` starts like a manifest (used to tell manifests from file blobs in tools).
bool looks_like_manifest(std::string_view text);

/// The URI of a package: "rtenv://sha256/<64 hex>", naming its root manifest.
class PackageUri {
 public:
  explicit PackageUri(Digest root) : root_(root) {}
  static constexpr std::string_view kPrefix = "rtenv://sha256/";

  /// kInvalidArgument unless `uri` is kPrefix followed by 64 hex digits.
  static Result<PackageUri> parse(std::string_view uri);
  static bool is_package_uri(std::string_view uri) { return uri.starts_with(kPrefix); }

  const Digest& root() const { return root_; }
  std::string str() const { return std::string(kPrefix) + root_.hex(); }
  auto operator<=>(const PackageUri&) const = default;

 private:
  Digest root_;
};

}  // namespace rtenv::pack
