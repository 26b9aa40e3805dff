#include "env/fields/packing.h"

#include <fmt/format.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "env/fields/fields.h"
#include "env/records.h"
#include "env/remote_url.h"
#include "pack/packer.h"
#include "util/fs.h"
#include "util/redact.h"

namespace rtenv::env {

namespace {

std::string short_uri(const pack::PackageUri& uri) {
  return std::string(pack::PackageUri::kPrefix) + uri.root().hex().substr(0, 12) + "…";
}

}  // namespace

bool is_archive_or_remote(const std::string& value) {
  if (pack::PackageUri::is_package_uri(value) || spec::local_uri_path(value)) return false;
  return spec::is_uri(value) || !spec::archive_suffix(value).empty();
}

bool is_fetchable_scheme(std::string_view scheme) {
  return scheme == "http" || scheme == "https" || scheme == "s3" || scheme == "file";
}

namespace {

// A wheel or a jar is a zip archive: a server's error page saved under its name is not.
Result<void> check_is_zip(const fs::path& path, const std::string& shown) {
  char magic[4] = {};
  FILE* f = std::fopen(path.c_str(), "rb");
  size_t n = f ? std::fread(magic, 1, sizeof magic, f) : 0;
  if (f) std::fclose(f);
  if (n != sizeof magic || std::string_view(magic, 4) != std::string_view("PK\x03\x04", 4)) {
    return make_error(ErrorCode::kCorrupt, "{}: the file fetched is not a zip archive", shown);
  }
  return ok_result();
}

std::string url_record(const std::string& url) { return "urls/" + Digest::of(url).hex(); }

}  // namespace

Result<FileUri> PathPacker::pack_remote_file(const std::string& field, const std::string& text,
                                             std::string_view suffix) const {
  const PrepareContext& ctx = ctx_;
  std::string where = "runtime_env." + field;
  auto url = RemoteUrl::parse(text);
  if (!url) return url.error().with_context(where);
  std::string name = url->file_name();
  if (!name.ends_with(suffix) || name.size() == suffix.size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: {}: the URL's path must end in a file name ending in {}", where,
                      url->shown(), suffix);
  }
  if (!ctx.options.fetch) {
    return make_error(ErrorCode::kUnsupported, "{}: this rtenv binary cannot fetch URLs ({})",
                      where, url->shown());
  }
  bool remote = url->scheme != "file";
  // Fetched before, by this machine or another using the store: the package is still there.
  std::string record = url_record(text);
  if (remote) {
    RTENV_ASSIGN_OR_RETURN(std::optional<std::string> known, known_url(record, where));
    if (known) {
      auto file = FileUri::parse(*known, suffix);
      if (file && file->file == name && package_present(file->package)) {
        report(fmt::format("{} {}: fetched before, as {}", field, url->shown(), *known));
        return *file;
      }
    }
  }
  fs::path staging = ctx.home.tmp() / unique_name("fetch");
  std::error_code ec;
  fs::create_directories(staging, ec);
  if (ec) {
    return make_error(ErrorCode::kIo, "{}: cannot create {}: {}", where, staging.string(),
                      ec.message());
  }
  auto packed = [&]() -> Result<FileUri> {
    auto file = ctx.options.fetch(text, staging / name);
    if (!file) return file.error().with_context(where);
    if (auto zip = check_is_zip(*file, url->shown()); !zip) return zip.error().with_context(where);
    // pack() names the field in its errors.
    RTENV_ASSIGN_OR_RETURN(auto uri, pack(field, *file, std::nullopt, /*use_index=*/!remote));
    return FileUri{uri, file->filename().string()};
  }();
  (void)remove_tree(staging);
  if (!packed) return packed.error();
  if (remote) remember_url(record, field, packed->str(), url->shown());
  return packed;
}

Result<std::optional<std::string>> PathPacker::known_url(const std::string& record,
                                                         const std::string& where) const {
  auto known = ctx_.store.get_record(record);
  if (!known) {
    if (known.error().code() == ErrorCode::kNotFound) return std::optional<std::string>();
    return known.error().with_context(where);
  }
  // A record is read, not trusted: one that does not parse is as good as none.
  auto parsed = parse_url_record(*known);
  if (!parsed) return std::optional<std::string>();
  return std::optional<std::string>(std::move(parsed->uri));
}

bool PathPacker::package_present(const pack::PackageUri& uri) const {
  auto missing = ctx_.store.missing({uri.root()});
  return missing && !missing->front();
}

void PathPacker::remember_url(const std::string& record, const std::string& field,
                              const std::string& uri, const std::string& shown) const {
  if (auto r = ctx_.store.put_record(record, record_text(UrlRecord{uri, shown})); !r) {
    report(fmt::format("warning: {}: cannot remember that {} was fetched: {}", field, shown,
                       r.error().message()));
  }
}

void PathPacker::report(const std::string& line) const {
  if (ctx_.options.report) ctx_.options.report(line);
}

Result<pack::PackageUri> PathPacker::pack(const std::string& field, const fs::path& path,
                                          std::optional<std::string> wrap, bool use_index,
                                          bool archive) const {
  const PrepareContext& ctx = ctx_;
  pack::PackOptions po;
  po.excludes = ctx.env.excludes();
  po.max_package_bytes = ctx.options.max_package_bytes;
  po.warn_file_bytes = ctx.options.warn_file_bytes;
  po.wrap_in_dir = std::move(wrap);
  po.skip_dirs = {ctx.home.root};
  // What an archive holds is the package, as Ray keeps it: its own ignore files are not obeyed
  // (the env's `excludes` still are).
  po.ignore_files = !archive;
  if (use_index) po.index_file = ctx.home.index_for(path);
  pack::PackProgressFn progress;
  if (ctx.options.progress) {
    progress = [&](const pack::PackProgress& p) { ctx.options.progress(field, p); };
  }
  auto r = pack::pack_path(path, ctx.store, po, progress);
  if (!r) return r.error().with_context("runtime_env." + field);
  for (const auto& w : r->stats.warnings) report(fmt::format("warning: {}", w));
  const auto& s = r->stats;
  report(fmt::format("{} {} -> {}: {} files, {}; {} read, {} of {} blobs uploaded ({:.0f} ms)",
                     field, path.string(), short_uri(r->uri), s.files,
                     pack::format_bytes(s.file_bytes), pack::format_bytes(s.bytes_hashed),
                     s.blobs_uploaded, s.blobs, s.total_ms));
  return r->uri;
}

Result<pack::PackageUri> PathPacker::pack_archive(const std::string& field,
                                                  const std::string& source, bool remote) const {
  const PrepareContext& ctx = ctx_;
  if (!ctx.options.unpack_archive) {
    return make_error(ErrorCode::kUnsupported,
                      "runtime_env.{}: this rtenv binary cannot unpack archives ({})", field,
                      redact_url_credentials(source));
  }
  // Remote working_dir archives are usually made as `zip -r x.zip project/` or
  // `tar czf x.tar.gz project/`: strip that wrapper.
  const bool strip = remote && field == "working_dir";
  // A URL is fetched once per store, as a wheel's is: what it was packed into is remembered
  // with what else decided the package (the wrapper stripped, the env's excludes).
  const std::string where = "runtime_env." + field;
  std::optional<RemoteUrl> url;
  if (spec::is_uri(source)) {
    if (auto parsed = RemoteUrl::parse(source)) url = std::move(parsed).value();
  }
  const bool fetched = url && url->scheme != "file";
  std::string record;
  if (fetched) {
    record = url_record(fmt::format("archive\n{}\n{}\n{}", source, strip ? "strip" : "keep",
                                    nlohmann::json(ctx.env.excludes()).dump()));
    RTENV_ASSIGN_OR_RETURN(std::optional<std::string> known, known_url(record, where));
    if (known) {
      auto uri = pack::PackageUri::parse(*known);
      if (uri && package_present(*uri)) {
        report(fmt::format("{} {}: fetched before, as {}", field, url->shown(), uri->str()));
        return *uri;
      }
    }
  }
  fs::path staging = ctx.home.tmp() / unique_name("unpack");
  if (auto r = ctx.options.unpack_archive(source, staging); !r) {
    (void)remove_tree(staging);
    return r.error().with_context(where);
  }
  fs::path root = strip ? single_top_level_dir(staging) : staging;
  auto uri = pack(field, root, std::nullopt, /*use_index=*/false, /*archive=*/true);
  (void)remove_tree(staging);
  if (uri && fetched) remember_url(record, field, uri->str(), url->shown());
  return uri;
}

std::string FileUri::str() const { return package.str() + "/" + file; }

Result<FileUri> FileUri::parse(std::string_view uri, std::string_view suffix) {
  size_t slash = pack::PackageUri::kPrefix.size() + 64;
  if (!pack::PackageUri::is_package_uri(uri) || uri.size() <= slash + 1 || uri[slash] != '/' ||
      !uri.ends_with(suffix)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a {} file in the store (rtenv://sha256/<digest>/<name>{})", uri,
                      suffix, suffix);
  }
  RTENV_ASSIGN_OR_RETURN(auto package, pack::PackageUri::parse(uri.substr(0, slash)));
  std::string file(uri.substr(slash + 1));
  if (file.find('/') != std::string::npos || file == suffix) {
    return make_error(ErrorCode::kInvalidArgument, "'{}': the file's name is not a file name", uri);
  }
  return FileUri{package, file};
}

fs::path single_top_level_dir(const fs::path& dir) {
  std::error_code ec;
  auto it = fs::directory_iterator(dir, ec);
  if (ec || it == fs::directory_iterator()) return dir;
  fs::path only = it->path();
  bool is_dir = it->is_directory(ec) && !it->is_symlink(ec);
  if (it.increment(ec); ec || it != fs::directory_iterator()) return dir;
  return is_dir ? only : dir;
}

}  // namespace rtenv::env
