#include "env/setup.h"

#include <fmt/format.h>

#include "util/fs.h"

namespace rtenv::env {

using spec::Json;
using spec::RuntimeEnv;

bool needs_zip_support(const RuntimeEnv& env) {
  auto needs = [](const std::string& v) {
    if (pack::PackageUri::is_package_uri(v)) return false;
    return spec::is_uri(v) || v.ends_with(".zip");
  };
  if (auto wd = env.working_dir(); wd && needs(*wd)) return true;
  for (const auto& m : env.py_modules()) {
    if (needs(m)) return true;
  }
  return false;
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

std::string expand_vars(
    const std::string& value,
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

Result<Plan> plan(const RuntimeEnv& env, const NodeCache& cache) {
  static const std::map<std::string, std::string> kNotYet = {
      {"conda", "conda environments"},   {"py_executable", "custom Python interpreters"},
      {"java_jars", "Java class paths"}, {"image_uri", "container images"},
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
    Resource r{field, field.substr(0, field.find('[')), uri->str(), *uri, std::nullopt};
    out.resources.push_back(std::move(r));
    return cache.packages.dir_of(*uri);
  };
  if (auto wd = env.working_dir()) {
    RTENV_ASSIGN_OR_RETURN(fs::path dir, add("working_dir", *wd));
    out.context.cwd = dir;
    out.context.python_path.push_back(dir);
  }
  auto modules = env.py_modules();
  for (size_t i = 0; i < modules.size(); ++i) {
    std::string field = fmt::format("py_modules[{}]", i);
    if (!modules[i].ends_with(".whl")) {
      RTENV_ASSIGN_OR_RETURN(fs::path dir, add(field, modules[i]));
      out.context.python_path.push_back(dir);
      continue;
    }
    // A wheel: its package (the file), then its install into a private target directory.
    auto target = [&]() -> Result<PythonEnvRequest> {
      RTENV_ASSIGN_OR_RETURN(WheelUri wheel, WheelUri::parse(modules[i]));
      RTENV_ASSIGN_OR_RETURN(fs::path dir, add(field, wheel.package.str()));
      // The env's own interpreter if it names one (pip/uv), so the wheel fits the venv.
      auto packages = env.python_packages();
      RTENV_ASSIGN_OR_RETURN(
          Interpreter python,
          find_interpreter(cache.packages.home(), packages ? packages->python : std::nullopt));
      RTENV_ASSIGN_OR_RETURN(Installer installer, find_installer(python, spec::Installer::kPip));
      return PythonEnvRequest::make_wheel(wheel.str(), dir / wheel.file, std::move(python),
                                          std::move(installer));
    }();
    if (!target) return target.error().with_context("runtime_env." + field);
    out.resources.push_back({field, "py_modules", target->uri(), std::nullopt, *target});
    out.context.python_path.push_back(cache.python.dir_of(target->key));
  }
  out.context.env_vars = env.env_vars();
  if (auto packages = env.python_packages()) {
    const char* field = packages->installer == spec::Installer::kPip ? "pip" : "uv";
    auto request = [&]() -> Result<PythonEnvRequest> {
      RTENV_ASSIGN_OR_RETURN(Interpreter python,
                             find_interpreter(cache.packages.home(), packages->python));
      RTENV_ASSIGN_OR_RETURN(Installer installer, find_installer(python, packages->installer));
      return PythonEnvRequest::make(*packages, std::move(python), std::move(installer));
    }();
    if (!request) return request.error().with_context(std::string("runtime_env.") + field);
    fs::path dir = cache.python.dir_of(request->key);
    out.resources.push_back({field, "python", request->uri(), std::nullopt, *request});
    // As `source bin/activate` would: the env's bin first on PATH (ahead of the env's own
    // env_vars.PATH, if it sets one), VIRTUAL_ENV naming it.
    auto& vars = out.context.env_vars;
    auto path = vars.find("PATH");
    std::string rest = path != vars.end() ? path->second : "${PATH}";
    vars["PATH"] = (dir / "bin").string() + (rest.empty() ? "" : ":" + rest);
    vars["VIRTUAL_ENV"] = dir.string();
    out.context.py_executable = PythonEnvCache::python_of(dir);
  }
  return out;
}

std::vector<int> ActiveEnv::lease_fds() const {
  std::vector<int> out;
  for (const auto& l : leases) out.push_back(l.lock_fd());
  for (const auto& l : python_leases) out.push_back(l.lock_fd());
  return out;
}

void finish_context(
    Context* context, const Home& home, bool has_packages,
    const std::function<std::optional<std::string>(const std::string&)>& lookup_caller_env) {
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

Result<ActiveEnv> activate(
    const RuntimeEnv& env, NodeCache& cache,
    const std::function<std::optional<std::string>(const std::string&)>& lookup_caller_env,
    const InstallProgress& progress, int64_t timeout_ms) {
  RTENV_ASSIGN_OR_RETURN(Plan p, plan(env, cache));
  ActiveEnv active;
  for (const auto& r : p.resources) {
    auto context = fmt::format("runtime_env.{} ({})", r.field, r.uri);
    if (r.python) {
      auto lease = cache.python.acquire(*r.python, progress, timeout_ms);
      if (!lease) return lease.error().with_context(context);
      active.python_leases.push_back(std::move(lease).value());
      continue;
    }
    auto lease = cache.packages.acquire(*r.package);
    if (!lease) return lease.error().with_context(context);
    active.leases.push_back(std::move(lease).value());
  }
  active.context = std::move(p.context);
  // Only packages (working_dir, py_modules) are kept free of bytecode; a venv is not checked,
  // and pointing Python at an empty cache would make it compile its standard library again.
  finish_context(&active.context, cache.packages.home(), !active.leases.empty(), lookup_caller_env);
  return active;
}

}  // namespace rtenv::env
