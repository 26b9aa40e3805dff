// Packing a job's local paths into the store (the submitting side of setup).

#include <fmt/format.h>

#include "env/setup.h"
#include "util/fs.h"

namespace rtenv::env {

using spec::Json;
using spec::RuntimeEnv;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) { return s.ends_with(suffix); }

std::string short_uri(const pack::PackageUri& uri) {
  return std::string(pack::PackageUri::kPrefix) + uri.root().hex().substr(0, 12) + "…";
}

struct Uploader {
  const Home& home;
  store::BlobStore& store;
  const UploadOptions& options;
  std::vector<std::string> excludes;

  void report(const std::string& line) const {
    if (options.report) options.report(line);
  }

  Result<pack::PackageUri> pack(const std::string& field, const fs::path& path,
                                std::optional<std::string> wrap, bool use_index) {
    pack::PackOptions po;
    po.excludes = excludes;
    po.max_package_bytes = options.max_package_bytes;
    po.warn_file_bytes = options.warn_file_bytes;
    po.wrap_in_dir = std::move(wrap);
    po.skip_dirs = {home.root};
    if (use_index) po.index_file = home.index_for(path);
    pack::PackProgressFn progress;
    if (options.progress) {
      progress = [&](const pack::PackProgress& p) { options.progress(field, p); };
    }
    auto r = pack::pack_path(path, store, po, progress);
    if (!r) return r.error().with_context("runtime_env." + field);
    for (const auto& w : r->stats.warnings) report(fmt::format("warning: {}", w));
    const auto& s = r->stats;
    report(fmt::format("{} {} -> {}: {} files, {}; {} read, {} of {} blobs uploaded ({:.0f} ms)",
                       field, path.string(), short_uri(r->uri), s.files,
                       pack::format_bytes(s.file_bytes), pack::format_bytes(s.bytes_hashed),
                       s.blobs_uploaded, s.blobs, s.total_ms));
    return r->uri;
  }

  // A .zip, local or remote: unpacked into a staging directory, then packed like a directory.
  Result<pack::PackageUri> pack_zip(const std::string& field, const std::string& source,
                                    bool remote) {
    if (!options.unpack_zip) {
      return make_error(ErrorCode::kUnsupported,
                        "runtime_env.{}: this rtenv binary cannot unpack zips ({})", field, source);
    }
    fs::path staging = home.tmp() / unique_name("zip");
    if (auto r = options.unpack_zip(source, staging); !r) {
      (void)remove_tree(staging);
      return r.error().with_context("runtime_env." + field);
    }
    // Remote working_dir zips are usually made as `zip -r x.zip project/`: strip that wrapper.
    fs::path root = remote && field == "working_dir" ? single_top_level_dir(staging) : staging;
    auto uri = pack(field, root, std::nullopt, /*use_index=*/false);
    (void)remove_tree(staging);
    return uri;
  }

  Result<std::string> resolve(const std::string& field, const std::string& value, bool module) {
    if (pack::PackageUri::is_package_uri(value)) {
      if (module && ends_with(value, ".whl")) {
        auto wheel = WheelUri::parse(value);
        if (!wheel) return wheel.error().with_context("runtime_env." + field);
        return wheel->str();
      }
      RTENV_ASSIGN_OR_RETURN(auto uri, pack::PackageUri::parse(value));
      return uri.str();
    }
    if (spec::is_uri(value)) {
      std::string scheme = value.substr(0, value.find("://"));
      if (scheme != "http" && scheme != "https" && scheme != "file") {
        return make_error(ErrorCode::kUnsupported,
                          "runtime_env.{}: not supported yet: {} URIs ({}); use a local path, "
                          "an http(s):// or file:// .zip, or an rtenv package URI",
                          field, scheme, value);
      }
      if (ends_with(value, ".whl")) return unsupported_wheel(field, value);
      RTENV_ASSIGN_OR_RETURN(auto uri, pack_zip(field, value, /*remote=*/true));
      return uri.str();
    }
    fs::path path(value);
    if (module && ends_with(value, ".whl") && fs::is_regular_file(path)) {
      // The wheel file travels as a one-file package; the node installs it.
      RTENV_ASSIGN_OR_RETURN(auto uri, pack(field, path, std::nullopt, /*use_index=*/true));
      return WheelUri{uri, path.filename().string()}.str();
    }
    if (ends_with(value, ".zip") && fs::is_regular_file(path)) {
      RTENV_ASSIGN_OR_RETURN(auto uri, pack_zip(field, value, /*remote=*/false));
      return uri.str();
    }
    std::optional<std::string> wrap;
    if (module && fs::is_directory(path)) wrap = path.filename().string();
    RTENV_ASSIGN_OR_RETURN(auto uri, pack(field, path, wrap, /*use_index=*/true));
    return uri.str();
  }

  static Error unsupported_wheel(const std::string& field, const std::string& value) {
    return make_error(ErrorCode::kUnsupported,
                      "runtime_env.{}: not supported yet: wheel URLs ({}); download the wheel "
                      "and give its local path",
                      field, value);
  }
};

}  // namespace

std::string WheelUri::str() const { return package.str() + "/" + file; }

Result<WheelUri> WheelUri::parse(std::string_view uri) {
  size_t slash = pack::PackageUri::kPrefix.size() + 64;
  if (!pack::PackageUri::is_package_uri(uri) || uri.size() <= slash + 1 || uri[slash] != '/' ||
      !uri.ends_with(".whl")) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a wheel in the store (rtenv://sha256/<digest>/<name>.whl)", uri);
  }
  RTENV_ASSIGN_OR_RETURN(auto package, pack::PackageUri::parse(uri.substr(0, slash)));
  std::string file(uri.substr(slash + 1));
  if (file.find('/') != std::string::npos || file == ".whl") {
    return make_error(ErrorCode::kInvalidArgument, "'{}': the wheel's name is not a file name",
                      uri);
  }
  return WheelUri{package, file};
}

Result<RuntimeEnv> upload_local(const RuntimeEnv& env, const Home& home, store::BlobStore& store,
                                const UploadOptions& options) {
  Uploader up{home, store, options, env.excludes()};
  RuntimeEnv out = env;
  if (auto wd = env.working_dir()) {
    RTENV_ASSIGN_OR_RETURN(std::string uri, up.resolve("working_dir", *wd, /*module=*/false));
    out = out.with_field("working_dir", uri);
  }
  auto modules = env.py_modules();
  if (!modules.empty()) {
    Json list = Json::array();
    for (size_t i = 0; i < modules.size(); ++i) {
      RTENV_ASSIGN_OR_RETURN(std::string uri,
                             up.resolve(fmt::format("py_modules[{}]", i), modules[i], true));
      list.push_back(uri);
    }
    out = out.with_field("py_modules", list);
  }
  LockOptions lock;
  lock.refresh = options.refresh_lock;
  lock.progress = options.install_progress;
  lock.before_resolving = options.before_resolving;
  int64_t timeout_s = env.config().setup_timeout_seconds;
  lock.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
  RTENV_ASSIGN_OR_RETURN(out, lock_python(out, home, lock));
  return out.with_field("excludes", Json::array());
}

}  // namespace rtenv::env
