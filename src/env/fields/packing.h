#pragma once
// What the fields that carry local paths share on the submitting side: packing a path (a
// directory, a file, an archive) into the store, and naming one file inside a package.

#include <optional>
#include <string>
#include <string_view>

#include "env/field.h"
#include "pack/manifest.h"

namespace rtenv::env {

/// One file of a package in the store: "rtenv://sha256/<package>/<name>", the package holding
/// the file under its own name (a py_modules wheel, a java_jars jar).
struct FileUri {
  pack::PackageUri package;
  std::string file;

  std::string str() const;
  /// kInvalidArgument unless `uri` is a package URI, a '/', and a file name ending in `suffix`.
  static Result<FileUri> parse(std::string_view uri, std::string_view suffix);
};

/// True if a path value needs archive or network support to be packed: a local archive
/// (spec::archive_suffixes) or a URI to fetch (an archive or a wheel). Package URIs and local://
/// directories need neither.
bool is_archive_or_remote(const std::string& value);

/// True for the URL schemes setup fetches (UploadOptions::fetch): http, https, s3, file.
bool is_fetchable_scheme(std::string_view scheme);

/// Packs one field's local paths into the store, with the env's `excludes`, reporting what it
/// read and uploaded through the context's options.
class PathPacker {
 public:
  explicit PathPacker(const PrepareContext& ctx) : ctx_(ctx) {}

  /// Packs `path` (a directory or one file; wrapped in a directory `wrap` if set); `use_index`
  /// keeps a file index so unchanged files are not read again; `archive`: `path` holds an
  /// unpacked archive, whose own ignore files are not obeyed. Errors name the field.
  Result<pack::PackageUri> pack(const std::string& field, const fs::path& path,
                                std::optional<std::string> wrap, bool use_index,
                                bool archive = false) const;
  /// Fetches the file `url` names (a wheel) and packs it as a one-file package holding it under
  /// the URL's file name, which must end in `suffix`. Remote URLs are fetched once per store: a
  /// record "urls/<SHA-256 of the URL>" in the store remembers the package, and later calls
  /// (from any machine using the store) whose package is still there fetch nothing. A URL's
  /// content is taken never to change, as Ray takes remote URIs: a new version needs a new URL
  /// (or a new #sha256= fragment). file:// URLs are packed in place each time, like local paths.
  /// kUnsupported in a binary without network support; errors name the field and the URL
  /// (credentials hidden).
  Result<FileUri> pack_remote_file(const std::string& field, const std::string& url,
                                   std::string_view suffix) const;
  /// Unpacks an archive (a .zip, .tar.gz, ... : a local path, or a URL UploadOptions::fetch
  /// takes) into a staging directory and packs that as a directory; for a `remote` working_dir
  /// archive, a single top-level directory is stripped. A remote URL is fetched once per store,
  /// like pack_remote_file's (its record also names the stripping and the env's excludes).
  /// kUnsupported in a binary without archive support.
  Result<pack::PackageUri> pack_archive(const std::string& field, const std::string& source,
                                        bool remote) const;

 private:
  /// The URI a "urls/..." record remembers (nullopt if there is none, or it is malformed).
  Result<std::optional<std::string>> known_url(const std::string& record,
                                               const std::string& where) const;
  bool package_present(const pack::PackageUri& uri) const;
  void remember_url(const std::string& record, const std::string& field, const std::string& uri,
                    const std::string& shown) const;
  void report(const std::string& line) const;

  const PrepareContext& ctx_;
};

}  // namespace rtenv::env
