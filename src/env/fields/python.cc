// pip and uv: the requirement list locked on the submitting side, one virtualenv per locked set
// on the node, its bin/ first on PATH.

#include "env/fields/fields.h"
#include "env/node_cache.h"

namespace rtenv::env {

using spec::Json;

namespace {

class PythonPackagesField : public Field {
 public:
  explicit PythonPackagesField(spec::Installer installer) : installer_(installer) {}
  std::string name() const override { return installer_ == spec::Installer::kPip ? "pip" : "uv"; }
  int priority() const override { return 3; }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    LockOptions lock;
    lock.refresh = ctx.options.refresh_lock;
    lock.progress = ctx.options.install_progress;
    lock.before_resolving = ctx.options.before_resolving;
    int64_t timeout_s = ctx.env.config().setup_timeout_seconds;
    lock.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
    RTENV_ASSIGN_OR_RETURN(spec::RuntimeEnv locked, lock_python(ctx.env, ctx.home, lock));
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
