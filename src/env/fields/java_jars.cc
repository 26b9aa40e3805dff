// java_jars: jar files (local, or URLs fetched once on the submitting side), directories of jars
// and .zip archives of jars packed into the store like py_modules, materialized per node, and put
// on CLASSPATH in the order given.

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "env/fields/packing.h"
#include "env/node_cache.h"
#include "env/remote_url.h"

namespace rtenv::env {

using spec::Json;

namespace {

std::vector<std::string> entries(const Json& value) {
  std::vector<std::string> out;
  if (value.is_array()) {
    for (const auto& v : value) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

// One entry made node-independent: a jar file travels as a one-file package
// ("rtenv://sha256/<package>/<name>.jar"), a directory or a .zip as a package of jars.
Result<std::string> resolve(const PathPacker& packer, const std::string& field,
                            const std::string& value) {
  if (pack::PackageUri::is_package_uri(value)) {
    if (value.ends_with(".jar")) {
      auto jar = FileUri::parse(value, ".jar");
      if (!jar) return jar.error().with_context("runtime_env." + field);
      return jar->str();
    }
    RTENV_ASSIGN_OR_RETURN(auto uri, pack::PackageUri::parse(value));
    return uri.str();
  }
  if (spec::is_uri(value)) {
    std::string scheme = value.substr(0, value.find("://"));
    auto url = RemoteUrl::parse(value);
    if (!url) return url.error().with_context("runtime_env." + field);
    if (!is_fetchable_scheme(scheme)) {
      return make_error(
          ErrorCode::kUnsupported,
          "runtime_env.{}: {} URIs cannot be fetched: {}; use a local path, an "
          "http(s)://, s3:// or file:// .jar or .zip of jars, or an rtenv package URI",
          field, scheme, url->shown());
    }
    if (url->file_name().ends_with(".jar")) {
      // Fetched once, then a jar like a local one: every node gets it from the store.
      RTENV_ASSIGN_OR_RETURN(FileUri jar, packer.pack_remote_file(field, value, ".jar"));
      return jar.str();
    }
    RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack_archive(field, value, /*remote=*/false));
    return uri.str();
  }
  fs::path path(value);
  if (value.ends_with(".jar") && fs::is_regular_file(path)) {
    RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack(field, path, std::nullopt, /*use_index=*/true));
    return FileUri{uri, path.filename().string()}.str();
  }
  if (value.ends_with(".zip") && fs::is_regular_file(path)) {
    RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack_archive(field, value, /*remote=*/false));
    return uri.str();
  }
  RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack(field, path, std::nullopt, /*use_index=*/true));
  return uri.str();
}

// The package an entry needs, and what it puts on the class path from that package's directory.
struct Entry {
  pack::PackageUri package;
  std::optional<std::string> jar;  ///< a jar file; unset: every jar of the directory
};

Result<Entry> entry_of(const std::string& field, const std::string& value) {
  if (value.ends_with(".jar")) {
    auto jar = FileUri::parse(value, ".jar");
    if (!jar) return jar.error().with_context("runtime_env." + field);
    return Entry{jar->package, jar->file};
  }
  auto uri = pack::PackageUri::parse(value);
  if (!uri) return uri.error().with_context("runtime_env." + field);
  return Entry{*uri, std::nullopt};
}

class JavaJars : public Field {
 public:
  std::string name() const override { return "java_jars"; }
  int priority() const override { return 4; }

  bool needs_zip_support(const Json& value) const override {
    for (const auto& e : entries(value)) {
      if (is_archive_or_remote(e)) return true;
    }
    return false;
  }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    PathPacker packer(ctx);
    Json list = Json::array();
    auto values = entries(value);
    for (size_t i = 0; i < values.size(); ++i) {
      RTENV_ASSIGN_OR_RETURN(std::string uri,
                             resolve(packer, fmt::format("java_jars[{}]", i), values[i]));
      list.push_back(uri);
    }
    return list;
  }

  Result<void> resources(const Json& value, const spec::RuntimeEnv&, const NodeCache&,
                         std::vector<Resource>* out) const override {
    auto values = entries(value);
    for (size_t i = 0; i < values.size(); ++i) {
      std::string field = fmt::format("java_jars[{}]", i);
      RTENV_ASSIGN_OR_RETURN(Entry e, entry_of(field, values[i]));
      Resource r;
      r.field = field;
      r.uri = e.package.str();
      out->push_back(std::move(r));
    }
    return ok_result();
  }

  Result<void> contribute(const Json& value, const spec::RuntimeEnv&, const NodeCache& cache,
                          const std::vector<Resource>&, LaunchPlan* plan) const override {
    // After the caller's CLASSPATH, in the order given; a directory's jars by Java's own
    // wildcard (every .jar in it).
    std::vector<std::string> paths;
    auto values = entries(value);
    for (size_t i = 0; i < values.size(); ++i) {
      RTENV_ASSIGN_OR_RETURN(Entry e, entry_of(fmt::format("java_jars[{}]", i), values[i]));
      fs::path dir = cache.packages.dir_of(e.package);
      paths.push_back(e.jar ? (dir / *e.jar).string() : (dir / "*").string());
    }
    plan->append("CLASSPATH", std::move(paths));
    return ok_result();
  }
};

}  // namespace

namespace fields {
std::shared_ptr<const Field> java_jars() { return std::make_shared<JavaJars>(); }
}  // namespace fields

}  // namespace rtenv::env
