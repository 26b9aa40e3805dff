// py_executable: the process's Python interpreter, an absolute path, a name on PATH or a path
// inside working_dir. With pip/uv it is the base of their venv (find_env_interpreter), which then
// is the process's Python. Alone it is one resource of the Python kind: a bin/ whose python and
// python3 exec that interpreter, first on PATH.

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "env/node_cache.h"
#include "util/process.h"

namespace rtenv::env {

using spec::Json;

namespace {

class PyExecutableField : public Field {
 public:
  std::string name() const override { return "py_executable"; }
  // Beside pip and uv: packages.cc's wheels (2) and the venv (3) ask it for their interpreter.
  int priority() const override { return 3; }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    // The interpreter is the node's; only what can be refused before any node sees the env is
    // checked here (pip/uv lock for this interpreter in their own prepare).
    RTENV_ASSIGN_OR_RETURN(PyExecutable named, PyExecutable::parse(value.get<std::string>()));
    if (named.form == PyExecutable::Form::kInWorkingDir) RTENV_TRY(in_working_dir(named, ctx.env));
    return value;
  }

  Result<void> resources(const Json& value, const spec::RuntimeEnv& env, const NodeCache& cache,
                         std::vector<Resource>* out) const override {
    RTENV_ASSIGN_OR_RETURN(PyExecutable named, PyExecutable::parse(value.get<std::string>()));
    // The venv of pip/uv is built on this interpreter, and checked there.
    if (env.python_packages()) return ok_result();
    RTENV_ASSIGN_OR_RETURN(fs::path path, node_path(named, env, cache));
    // A file of working_dir exists only once the package is materialized: checked in contribute.
    if (named.form != PyExecutable::Form::kInWorkingDir) RTENV_TRY(check_runs(named, path, cache));
    Resource r;
    r.field = name();
    auto request = PythonEnvRequest::make_launcher(path);
    r.uri = request.uri();
    r.request = std::make_shared<PythonEnvRequest>(std::move(request));
    out->push_back(std::move(r));
    return ok_result();
  }

  Result<void> contribute(const Json& value, const spec::RuntimeEnv& env, const NodeCache& cache,
                          const std::vector<Resource>& mine, LaunchPlan* plan) const override {
    if (env.python_packages()) return ok_result();  // the venv's python is the process's
    if (mine.size() != 1) {
      return make_error(ErrorCode::kInternal, "runtime_env.{}: expected one planned launcher",
                        name());
    }
    RTENV_ASSIGN_OR_RETURN(PyExecutable named, PyExecutable::parse(value.get<std::string>()));
    const auto& request = *std::static_pointer_cast<const PythonEnvRequest>(mine[0].request);
    const fs::path& path = *request.launcher;
    if (named.form == PyExecutable::Form::kInWorkingDir) RTENV_TRY(check_runs(named, path, cache));
    fs::path dir = mine[0].kind->dir_of(mine[0].uri);
    plan->prepend("PATH", {(dir / "bin").string()});
    plan->py_executable = path;
    return ok_result();
  }

 private:
  static Result<void> in_working_dir(const PyExecutable& named, const spec::RuntimeEnv& env) {
    if (!env.working_dir()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.py_executable: {} is a relative path, which names a file of "
                        "working_dir, and the env has no working_dir; give an absolute path, a "
                        "name on PATH, or a working_dir that holds it",
                        named.value);
    }
    if (named.value.starts_with("../") || named.value == "..") {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.py_executable: {} leaves working_dir; give a path inside it, "
                        "or an absolute path",
                        named.value);
    }
    return ok_result();
  }

  // The interpreter's absolute path on this node.
  static Result<fs::path> node_path(const PyExecutable& named, const spec::RuntimeEnv& env,
                                    const NodeCache& cache) {
    switch (named.form) {
      case PyExecutable::Form::kPath:
        return fs::path(named.value);
      case PyExecutable::Form::kName: {
        // Resolved here: the launcher must not find itself on PATH.
        auto found = find_program(named.value);
        if (!found) {
          return make_error(ErrorCode::kNotFound,
                            "runtime_env.py_executable: no Python interpreter: {} was not found "
                            "on PATH; give the path of a Python interpreter on this node, or its "
                            "name on PATH",
                            named.value);
        }
        return fs::absolute(*found).lexically_normal();
      }
      case PyExecutable::Form::kInWorkingDir: {
        RTENV_TRY(in_working_dir(named, env));
        auto uri = pack::PackageUri::parse(*env.working_dir());
        if (!uri) return uri.error().with_context("runtime_env.working_dir");
        return cache.packages.dir_of(*uri) / named.value;
      }
    }
    return Error(ErrorCode::kInternal, "runtime_env.py_executable: unknown form");
  }

  // Exit 3 naming the interpreter if it is missing or does not run (the probe is cached by the
  // file's identity, so this costs a stat once it ran).
  static Result<void> check_runs(const PyExecutable& named, const fs::path& path,
                                 const NodeCache& cache) {
    auto python = find_interpreter(cache.home(), path.string());
    if (!python) {
      std::string where = named.form == PyExecutable::Form::kInWorkingDir
                              ? fmt::format(" ({} in working_dir)", named.value)
                          : named.form == PyExecutable::Form::kName
                              ? fmt::format(" ({} on PATH)", named.value)
                              : "";
      return python.error().with_context("runtime_env.py_executable" + where);
    }
    return ok_result();
  }
};

}  // namespace

namespace fields {
std::shared_ptr<const Field> py_executable() { return std::make_shared<PyExecutableField>(); }
}  // namespace fields

}  // namespace rtenv::env
