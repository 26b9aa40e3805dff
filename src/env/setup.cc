#include "env/setup.h"

#include <fmt/format.h>

#include "env/download.h"
#include "pack/archive.h"
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
    if (use_index) po.index_file = home.index() / (Digest::of(path.string()).hex() + ".idx");
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
    fs::path staging = home.tmp() / unique_name("zip");
    fs::path zip_path = source;
    fs::path download_path;
    if (remote) {
      if (source.starts_with("file://")) {
        zip_path = source.substr(7);
      } else {
        download_path = home.tmp() / unique_name("download");
        report(fmt::format("{}: downloading {}", field, redact_url(source)));
        if (auto r = download(source, download_path, options.max_package_bytes); !r) {
          return r.error().with_context("runtime_env." + field);
        }
        zip_path = download_path;
      }
    }
    auto extracted = pack::extract_zip(zip_path, staging, options.max_package_bytes);
    if (!download_path.empty()) std::remove(download_path.c_str());
    if (!extracted) return extracted.error().with_context("runtime_env." + field);
    // Remote working_dir zips are usually made as `zip -r x.zip project/`: strip that wrapper.
    fs::path root = remote && field == "working_dir" ? pack::single_top_level_dir(staging) : staging;
    auto uri = pack(field, root, std::nullopt, /*use_index=*/false);
    (void)remove_tree(staging);
    return uri;
  }

  Result<std::string> resolve(const std::string& field, const std::string& value, bool module) {
    if (pack::PackageUri::is_package_uri(value)) {
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
    if (ends_with(value, ".whl")) return unsupported_wheel(field, value);
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
                      "runtime_env.{}: not supported yet: wheel files ({}) need rtenv's Python "
                      "installer; give the package's source directory instead",
                      field, value);
  }
};

}  // namespace

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
  return out.with_field("excludes", Json::array());
}

std::string expand_vars(const std::string& value,
                        const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '{') {
      size_t close = value.find('}', i + 2);
      if (close != std::string::npos) {
        std::string name = value.substr(i + 2, close - i - 2);
        if (auto v = lookup(name)) out += *v;
        i = close;
        continue;
      }
    }
    out += value[i];
  }
  return out;
}

Result<Plan> plan(const RuntimeEnv& env, const PackageCache& cache) {
  static const std::map<std::string, std::string> kNotYet = {
      {"pip", "Python package installs"},   {"uv", "Python package installs"},
      {"conda", "conda environments"},      {"py_executable", "custom Python interpreters"},
      {"java_jars", "Java class paths"},    {"image_uri", "container images"},
      {"container", "container images"},
  };
  for (const auto& field : env.fields()) {
    if (auto it = kNotYet.find(field); it != kNotYet.end()) {
      return make_error(ErrorCode::kUnsupported,
                        "not supported yet: {} ({} are not implemented in this version of rtenv); "
                        "remove the field to run without it",
                        field, it->second);
    }
  }
  for (const auto& field : env.plugin_fields()) {
    return make_error(ErrorCode::kUnsupported, "not supported yet: {} (no plugin handles it)",
                      field);
  }
  Plan out;
  auto add = [&](const std::string& field, const std::string& value) -> Result<fs::path> {
    auto uri = pack::PackageUri::parse(value);
    if (!uri) return uri.error().with_context("runtime_env." + field);
    out.resources.push_back({field, *uri});
    return cache.dir_of(*uri);
  };
  if (auto wd = env.working_dir()) {
    RTENV_ASSIGN_OR_RETURN(fs::path dir, add("working_dir", *wd));
    out.context.cwd = dir;
    out.context.python_path.push_back(dir);
  }
  auto modules = env.py_modules();
  for (size_t i = 0; i < modules.size(); ++i) {
    RTENV_ASSIGN_OR_RETURN(fs::path dir, add(fmt::format("py_modules[{}]", i), modules[i]));
    out.context.python_path.push_back(dir);
  }
  out.context.env_vars = env.env_vars();
  return out;
}

void finish_context(Context* context, const Home& home, bool has_packages,
                    const std::function<std::optional<std::string>(const std::string&)>&
                        lookup_caller_env) {
  for (auto& [name, value] : context->env_vars) value = expand_vars(value, lookup_caller_env);
  // Python writes __pycache__ next to the modules it imports; kept there it would count as a
  // change to the package after every run. Send it to the node's cache instead (not when
  // bytecode writing is off: then nothing is written, and a prefix would only hide the
  // interpreter's own cached bytecode).
  auto is_set = [&](const char* name) {
    return context->env_vars.contains(name) || lookup_caller_env(name).has_value();
  };
  if (has_packages && !is_set("PYTHONPYCACHEPREFIX") && !is_set("PYTHONDONTWRITEBYTECODE")) {
    context->env_vars["PYTHONPYCACHEPREFIX"] = (home.root / "pycache").string();
  }
}

Result<ActiveEnv> activate(const RuntimeEnv& env, PackageCache& cache,
                           const std::function<std::optional<std::string>(const std::string&)>&
                               lookup_caller_env) {
  RTENV_ASSIGN_OR_RETURN(Plan p, plan(env, cache));
  ActiveEnv active;
  for (const auto& r : p.resources) {
    auto lease = cache.acquire(r.uri);
    if (!lease) return lease.error().with_context(fmt::format("runtime_env.{} ({})", r.field, r.uri.str()));
    active.leases.push_back(std::move(lease).value());
  }
  active.context = std::move(p.context);
  finish_context(&active.context, cache.home(), !p.resources.empty(), lookup_caller_env);
  return active;
}

}  // namespace rtenv::env
