#include "env/fields/packing.h"

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "pack/packer.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

std::string short_uri(const pack::PackageUri& uri) {
  return std::string(pack::PackageUri::kPrefix) + uri.root().hex().substr(0, 12) + "…";
}

}  // namespace

bool is_zip_or_remote(const std::string& value) {
  if (pack::PackageUri::is_package_uri(value)) return false;
  return spec::is_uri(value) || value.ends_with(".zip");
}

void PathPacker::report(const std::string& line) const {
  if (ctx_.options.report) ctx_.options.report(line);
}

Result<pack::PackageUri> PathPacker::pack(const std::string& field, const fs::path& path,
                                          std::optional<std::string> wrap, bool use_index) const {
  const PrepareContext& ctx = ctx_;
  pack::PackOptions po;
  po.excludes = ctx.env.excludes();
  po.max_package_bytes = ctx.options.max_package_bytes;
  po.warn_file_bytes = ctx.options.warn_file_bytes;
  po.wrap_in_dir = std::move(wrap);
  po.skip_dirs = {ctx.home.root};
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

Result<pack::PackageUri> PathPacker::pack_zip(const std::string& field, const std::string& source,
                                              bool remote) const {
  const PrepareContext& ctx = ctx_;
  if (!ctx.options.unpack_zip) {
    return make_error(ErrorCode::kUnsupported,
                      "runtime_env.{}: this rtenv binary cannot unpack zips ({})", field, source);
  }
  fs::path staging = ctx.home.tmp() / unique_name("zip");
  if (auto r = ctx.options.unpack_zip(source, staging); !r) {
    (void)remove_tree(staging);
    return r.error().with_context("runtime_env." + field);
  }
  // Remote working_dir zips are usually made as `zip -r x.zip project/`: strip that wrapper.
  fs::path root = remote && field == "working_dir" ? single_top_level_dir(staging) : staging;
  auto uri = pack(field, root, std::nullopt, /*use_index=*/false);
  (void)remove_tree(staging);
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
