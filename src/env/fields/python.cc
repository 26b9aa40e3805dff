// pip and uv: the requirement list locked on the submitting side, one virtualenv per locked set
// on the node, its bin/ first on PATH.

#include "env/fields/fields.h"
#include "env/node_cache.h"

namespace rtenv::env {

using spec::Json;

namespace {

constexpr uint64_t kMaxRequirementsBytes = 1 << 20;

// The lines of `packages` with each `-r ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/FILE` replaced by
// the lines of FILE in the working_dir's package `wd`.
Result<Json> expand_from_package(const Json& packages, const pack::PackageUri& wd,
                                 store::BlobStore& store, const std::string& where, int depth) {
  Json out = Json::array();
  for (const Json& item : packages) {
    if (!item.is_string() || !spec::names_working_dir(item.get_ref<const std::string&>())) {
      out.push_back(item);
      continue;
    }
    const std::string& line = item.get_ref<const std::string&>();
    std::string file = spec::requirement_file_of(line), rel;
    for (const std::string& var : spec::working_dir_variables()) {
      if (file.starts_with(var + "/")) rel = file.substr(var.size() + 1);
    }
    if (rel.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: the line \"{}\" names the working_dir, which is an archive or a URL "
                        "here: only `-r ${{RAY_RUNTIME_ENV_CREATE_WORKING_DIR}}/<file>` is read "
                        "from its package; give a local directory as working_dir for other uses",
                        where, line);
    }
    if (depth > 8) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: requirements files include each other more than 8 deep", where);
    }
    auto text = pack::read_package_file(store, wd, rel, kMaxRequirementsBytes);
    if (!text) return text.error().with_context(fmt::format("{}: the line \"{}\"", where, line));
    Json lines = Json::array();
    for (std::string& l : spec::requirement_lines(*text)) lines.push_back(std::move(l));
    RTENV_ASSIGN_OR_RETURN(Json expanded, expand_from_package(lines, wd, store, where, depth + 1));
    for (Json& l : expanded) out.push_back(std::move(l));
  }
  return out;
}

// Requirement lines that name the working_dir and that validation left as they are (the
// working_dir is an archive or a URL): by the time pip/uv is prepared the working_dir is a
// package in the store, and the files those lines name are read from it.
Result<spec::RuntimeEnv> with_working_dir_requirements(const spec::RuntimeEnv& env,
                                                       const std::string& field,
                                                       store::BlobStore& store) {
  const Json& j = env.to_json();
  auto it = j.find(field);
  if (it == j.end()) return env;
  Json value = *it;
  Json* packages = value.is_array()                                  ? &value
                   : value.is_object() && value.contains("packages") ? &value["packages"]
                                                                     : nullptr;
  if (!packages || !packages->is_array() ||
      std::none_of(packages->begin(), packages->end(), [](const Json& l) {
        return l.is_string() && spec::names_working_dir(l.get_ref<const std::string&>());
      })) {
    return env;
  }
  const std::string where = "runtime_env." + field;
  auto wd = j.find("working_dir");
  std::string wd_uri = wd != j.end() && wd->is_string() ? wd->get<std::string>() : "";
  auto uri = pack::PackageUri::parse(wd_uri);
  if (!uri) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: a line names the working_dir, and the env has no working_dir package",
                      where);
  }
  RTENV_ASSIGN_OR_RETURN(*packages, expand_from_package(*packages, *uri, store, where, 0));
  return env.with_field(field, std::move(value));
}

class PythonPackagesField : public Field {
 public:
  explicit PythonPackagesField(spec::Installer installer) : installer_(installer) {}
  std::string name() const override { return installer_ == spec::Installer::kPip ? "pip" : "uv"; }
  int priority() const override { return 3; }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    LockOptions lock;
    lock.refresh = ctx.options.refresh_lock;
    lock.progress = ctx.options.install_progress;
    lock.report = ctx.options.report;
    lock.before_resolving = ctx.options.before_resolving;
    int64_t timeout_s = ctx.env.config().setup_timeout_seconds;
    lock.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
    RTENV_ASSIGN_OR_RETURN(spec::RuntimeEnv expanded,
                           with_working_dir_requirements(ctx.env, name(), ctx.store));
    RTENV_ASSIGN_OR_RETURN(spec::RuntimeEnv locked, lock_python(expanded, ctx.home, lock));
    const Json& j = locked.to_json();
    return j.contains(name()) ? j[name()] : value;
  }

  Result<void> resources(const Json&, const spec::RuntimeEnv& env, const NodeCache& cache,
                         std::vector<Resource>* out) const override {
    RTENV_ASSIGN_OR_RETURN(PythonEnvRequest request, make_request(env, cache));
    Resource r;
    r.field = name();
    r.uri = request.uri();
    r.request = std::make_shared<PythonEnvRequest>(std::move(request));
    out->push_back(std::move(r));
    return ok_result();
  }

  Result<void> contribute(const Json&, const spec::RuntimeEnv&, const NodeCache&,
                          const std::vector<Resource>& mine, LaunchPlan* plan) const override {
    // The venv as planned: resolving the interpreter and installer again is not needed.
    if (mine.size() != 1) {
      return make_error(ErrorCode::kInternal, "runtime_env.{}: expected one planned venv", name());
    }
    fs::path dir = mine[0].kind->dir_of(mine[0].uri);
    // As `source bin/activate` would: the env's bin first on PATH (ahead of the env's own
    // env_vars.PATH, if it sets one), VIRTUAL_ENV naming it.
    plan->prepend("PATH", {(dir / "bin").string()});
    plan->set("VIRTUAL_ENV", dir.string());
    plan->py_executable = PythonEnvCache::python_of(dir);
    return ok_result();
  }

 private:
  Result<PythonEnvRequest> make_request(const spec::RuntimeEnv& env, const NodeCache& cache) const {
    auto packages = env.python_packages();
    auto request = [&]() -> Result<PythonEnvRequest> {
      if (!packages) return Error(ErrorCode::kInternal, "no Python packages");
      // `python`, else py_executable: the venv is built on the process's interpreter.
      RTENV_ASSIGN_OR_RETURN(Interpreter python, find_env_interpreter(env, cache.home()));
      RTENV_ASSIGN_OR_RETURN(Installer installer,
                             find_installer(cache.home().config(), python, packages->installer));
      return PythonEnvRequest::make(*packages, std::move(python), std::move(installer));
    }();
    if (!request && !request.error().message().starts_with("runtime_env.")) {
      return request.error().with_context("runtime_env." + name());
    }
    return request;
  }

  spec::Installer installer_;
};

}  // namespace

namespace fields {
std::shared_ptr<const Field> pip() {
  return std::make_shared<PythonPackagesField>(spec::Installer::kPip);
}
std::shared_ptr<const Field> uv() {
  return std::make_shared<PythonPackagesField>(spec::Installer::kUv);
}
}  // namespace fields

}  // namespace rtenv::env
