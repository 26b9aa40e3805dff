// working_dir and py_modules: local paths packed into the store on the submitting side, package
// trees materialized on the node, the cwd and PYTHONPATH of the process. A local:// URI names a
// directory already on the node: it is used in place, never packed or copied.

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "env/fields/packing.h"
#include "env/node_cache.h"
#include "env/remote_url.h"
#include "util/fs.h"
#include "util/redact.h"

namespace rtenv::env {

using spec::Json;

namespace {

// A py_modules or working_dir value made node-independent.
struct Packer {
  PathPacker packer;

  Result<std::string> resolve(const std::string& field, const std::string& value,
                              bool module) const {
    if (pack::PackageUri::is_package_uri(value)) {
      if (module && value.ends_with(".whl")) {
        auto wheel = FileUri::parse(value, ".whl");
        if (!wheel) return wheel.error().with_context("runtime_env." + field);
        return wheel->str();
      }
      RTENV_ASSIGN_OR_RETURN(auto uri, pack::PackageUri::parse(value));
      return uri.str();
    }
    // Its path is its identity: the node's directory, whatever it holds.
    if (spec::local_uri_path(value)) return value;
    if (spec::is_uri(value)) {
      std::string scheme = value.substr(0, value.find("://"));
      if (!is_fetchable_scheme(scheme)) {
        // Validation refuses other schemes; an env built without it gets the same sentence.
        return make_error(ErrorCode::kInvalidArgument,
                          "runtime_env.{}: {} is not a valid URI: rtenv takes http://, https://, "
                          "s3:// and file:// URLs, local:// directories, rtenv:// package URIs "
                          "and local paths",
                          field, redact_url_credentials(value));
      }
      auto url = RemoteUrl::parse(value);
      if (!url) return url.error().with_context("runtime_env." + field);
      if (module && url->file_name().ends_with(".whl")) {
        // Fetched once, then a wheel like a local one: every node gets it from the store.
        RTENV_ASSIGN_OR_RETURN(FileUri wheel, packer.pack_remote_file(field, value, ".whl"));
        return wheel.str();
      }
      RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack_archive(field, value, /*remote=*/true));
      return uri.str();
    }
    fs::path path(value);
    if (module && value.ends_with(".whl") && fs::is_regular_file(path)) {
      // The wheel file travels as a one-file package; the node installs it.
      RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack(field, path, std::nullopt, /*use_index=*/true));
      return FileUri{uri, path.filename().string()}.str();
    }
    if (!spec::archive_suffix(value).empty() && fs::is_regular_file(path)) {
      RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack_archive(field, value, /*remote=*/false));
      return uri.str();
    }
    std::optional<std::string> wrap;
    if (module && fs::is_directory(path)) wrap = path.filename().string();
    RTENV_ASSIGN_OR_RETURN(auto uri, packer.pack(field, path, wrap, /*use_index=*/true));
    return uri.str();
  }
};

// A local:// directory as the node has it: kNotFound (setup fails) if it is not a directory here.
Result<fs::path> local_dir(const std::string& field, const std::string& value) {
  fs::path dir = *spec::local_uri_path(value);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return make_error(ErrorCode::kNotFound,
                      "runtime_env.{}: {} names {}, which is not a directory on this node; a "
                      "local:// directory must already exist on every node (or in the image)",
                      field, value, dir.string());
  }
  return dir;
}

Result<Resource> package_resource(const std::string& field, const std::string& value) {
  auto uri = pack::PackageUri::parse(value);
  if (!uri) return uri.error().with_context("runtime_env." + field);
  Resource r;
  r.field = field;
  r.uri = uri->str();
  return r;
}

// Python writes __pycache__ next to the modules it imports; kept there it would count as a
// change to the package after every run. Send it to the node's cache instead (not when bytecode
// writing is off: then nothing is written, and a prefix would only hide the interpreter's own
// cached bytecode).
void keep_bytecode_out(const NodeCache& cache, LaunchPlan* plan) {
  for (const auto& op : plan->env) {
    if (op.kind == EnvOp::Kind::kDefault && op.name == "PYTHONPYCACHEPREFIX") return;
  }
  EnvOp op;
  op.kind = EnvOp::Kind::kDefault;
  op.name = "PYTHONPYCACHEPREFIX";
  op.value = (cache.home().root / "pycache").string();
  op.unless_set = {"PYTHONDONTWRITEBYTECODE"};
  plan->env.push_back(std::move(op));
}

std::vector<std::string> module_list(const Json& value) {
  std::vector<std::string> out;
  if (value.is_array()) {
    for (const auto& v : value) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

// A wheel's private target directory, for the env's own interpreter if it names one (pip/uv's
// `python`, py_executable), so the wheel fits the venv or the process's interpreter.
Result<PythonEnvRequest> wheel_target(const std::string& value, const spec::RuntimeEnv& env,
                                      const NodeCache& cache) {
  RTENV_ASSIGN_OR_RETURN(FileUri wheel, FileUri::parse(value, ".whl"));
  RTENV_ASSIGN_OR_RETURN(Interpreter python, find_env_interpreter(env, cache.home()));
  RTENV_ASSIGN_OR_RETURN(Installer installer,
                         find_installer(cache.home().config(), python, spec::Installer::kPip));
  return PythonEnvRequest::make_wheel(wheel.str(),
                                      cache.packages.dir_of(wheel.package) / wheel.file,
                                      std::move(python), std::move(installer));
}

class WorkingDir : public Field {
 public:
  std::string name() const override { return "working_dir"; }
  int priority() const override { return 1; }
  bool needs_zip_support(const Json& value) const override {
    return value.is_string() && is_archive_or_remote(value.get<std::string>());
  }
  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    RTENV_ASSIGN_OR_RETURN(std::string uri, Packer{PathPacker{ctx}}.resolve(
                                                "working_dir", value.get<std::string>(), false));
    return Json(uri);
  }
  Result<void> resources(const Json& value, const spec::RuntimeEnv&, const NodeCache&,
                         std::vector<Resource>* out) const override {
    const std::string& text = value.get_ref<const std::string&>();
    if (spec::local_uri_path(text)) {
      // Nothing to make: only checked, so a missing directory fails setup here.
      RTENV_TRY(local_dir("working_dir", text));
      return ok_result();
    }
    RTENV_ASSIGN_OR_RETURN(Resource r, package_resource("working_dir", text));
    out->push_back(std::move(r));
    return ok_result();
  }
  Result<void> contribute(const Json& value, const spec::RuntimeEnv&, const NodeCache& cache,
                          const std::vector<Resource>&, LaunchPlan* plan) const override {
    const std::string& text = value.get_ref<const std::string&>();
    if (spec::local_uri_path(text)) {
      RTENV_ASSIGN_OR_RETURN(fs::path dir, local_dir("working_dir", text));
      plan->cwd = dir;
      plan->prepend("PYTHONPATH", {dir.string()});
      return ok_result();
    }
    auto uri = pack::PackageUri::parse(text);
    if (!uri) return uri.error().with_context("runtime_env.working_dir");
    fs::path dir = cache.packages.dir_of(*uri);
    plan->cwd = dir;
    plan->prepend("PYTHONPATH", {dir.string()});
    keep_bytecode_out(cache, plan);
    return ok_result();
  }
};

class PyModules : public Field {
 public:
  std::string name() const override { return "py_modules"; }
  int priority() const override { return 2; }
  bool needs_zip_support(const Json& value) const override {
    for (const auto& m : module_list(value)) {
      if (is_archive_or_remote(m)) return true;
    }
    return false;
  }
  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    Json list = Json::array();
    auto modules = module_list(value);
    for (size_t i = 0; i < modules.size(); ++i) {
      RTENV_ASSIGN_OR_RETURN(std::string uri, Packer{PathPacker{ctx}}.resolve(
                                                  fmt::format("py_modules[{}]", i), modules[i],
                                                  /*module=*/true));
      list.push_back(uri);
    }
    return list;
  }
  Result<void> resources(const Json& value, const spec::RuntimeEnv& env, const NodeCache& cache,
                         std::vector<Resource>* out) const override {
    auto modules = module_list(value);
    for (size_t i = 0; i < modules.size(); ++i) {
      std::string field = fmt::format("py_modules[{}]", i);
      if (spec::local_uri_path(modules[i])) {
        RTENV_TRY(local_dir(field, modules[i]));
        continue;
      }
      if (!modules[i].ends_with(".whl")) {
        RTENV_ASSIGN_OR_RETURN(Resource r, package_resource(field, modules[i]));
        out->push_back(std::move(r));
        continue;
      }
      // A wheel: its package (the file), then its install into a private target directory.
      auto wheel = FileUri::parse(modules[i], ".whl");
      if (!wheel) return wheel.error().with_context("runtime_env." + field);
      RTENV_ASSIGN_OR_RETURN(Resource file, package_resource(field, wheel->package.str()));
      out->push_back(std::move(file));
      auto target = wheel_target(modules[i], env, cache);
      if (!target) {
        // An error of the env's interpreter names its own field.
        if (target.error().message().starts_with("runtime_env.")) return target.error();
        return target.error().with_context("runtime_env." + field);
      }
      Resource r;
      r.field = field;
      r.uri = target->uri();
      r.request = std::make_shared<PythonEnvRequest>(std::move(target).value());
      out->push_back(std::move(r));
    }
    return ok_result();
  }
  Result<void> contribute(const Json& value, const spec::RuntimeEnv&, const NodeCache& cache,
                          const std::vector<Resource>& mine, LaunchPlan* plan) const override {
    // In the list's order: a local:// directory itself, else the module's last resource: its
    // package, or for a wheel the directory it is installed into (named after the wheel file's
    // package).
    auto modules = module_list(value);
    std::vector<std::string> paths;
    for (size_t i = 0; i < modules.size(); ++i) {
      std::string field = fmt::format("py_modules[{}]", i);
      if (spec::local_uri_path(modules[i])) {
        RTENV_ASSIGN_OR_RETURN(fs::path dir, local_dir(field, modules[i]));
        paths.push_back(dir.string());
        continue;
      }
      const Resource* last = nullptr;
      for (const auto& r : mine) {
        if (r.field == field) last = &r;
      }
      if (!last) {
        return make_error(ErrorCode::kInternal, "runtime_env.{}: no resource was planned for it",
                          field);
      }
      paths.push_back(last->kind->dir_of(last->uri).string());
    }
    plan->prepend("PYTHONPATH", std::move(paths));
    // A wheel's file is a package too.
    if (!mine.empty()) keep_bytecode_out(cache, plan);
    return ok_result();
  }
};

}  // namespace

namespace fields {
std::shared_ptr<const Field> working_dir() { return std::make_shared<WorkingDir>(); }
std::shared_ptr<const Field> py_modules() { return std::make_shared<PyModules>(); }
}  // namespace fields

}  // namespace rtenv::env
