// conda: conda environments (docs/runtime_env.md §7b). An env named by name or directory is used as
// it is, never created or deleted. A dict (an environment.yml is read into one by the spec) is
// solved once on the submitting side into a lock (exact package URLs and hashes for the platform),
// kept in the store; the lock is the env's identity. Each node installs one env per lock, with
// py-rattler driven in a helper process (conda_helper.py), and runs commands with it activated.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "env/exec_plugin.h"
#include "env/fields/conda_helper.h"
#include "env/fields/fields.h"
#include "env/node_cache.h"
#include "env/published_dirs.h"
#include "env/python_env.h"
#include "util/clock.h"
#include "util/interrupt.h"
#include "util/lines.h"
#include "util/process.h"
#include "util/redact.h"
#include "util/size.h"

namespace rtenv::env {

using spec::Json;

namespace {

constexpr std::string_view kUriPrefix = "conda://";
// The key of a solved env's value: {"rtenv_lock": "sha256:<hex>", "platform": "linux-64"}.
constexpr const char* kLockKey = "rtenv_lock";
constexpr int64_t kActivateTimeoutMs = 30'000;

// The conda platform of this machine (conda's "subdir").
std::string node_platform() {
#if defined(__x86_64__)
  return "linux-64";
#elif defined(__aarch64__)
  return "linux-aarch64";
#else
  return "unknown";
#endif
}

// `j[key]` if `j` is an object holding a string there, else `fallback` (the helper's answers are
// checked, not trusted).
std::string string_at(const Json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// The conda helper of this process (`<python> -c <conda_helper.py> <idle seconds>`): started on
// first use and kept, so the interpreter's start and rattler's imports are paid once per process,
// not once per env (the agent keeps it between envs; it leaves by itself when idle). One request
// at a time. Thread-safe.
class CondaHelper {
 public:
  /// Stops the helper, if one runs (the next call starts another).
  void stop() {
    std::lock_guard lock(mu_);
    process_.reset();
  }

  static CondaHelper& instance() {
    static CondaHelper helper;
    return helper;
  }

  /// `verb` with `request`; the helper's own errors become errors of the matching code.
  Result<Json> call(const Home& home, const std::string& verb, const Json& request,
                    int64_t timeout_ms, const InstallProgress& progress) {
    RTENV_ASSIGN_OR_RETURN(Interpreter python, find_interpreter(home));
    // As named (a venv's python runs with that venv's packages, where rattler may be).
    const std::string py = python.named().string();
    std::lock_guard lock(mu_);
    // One that is about to leave on its own (idle) is not sent a request it may never read.
    const bool stale = steady_ms() - last_used_ms_ > (kIdleSeconds - 10) * 1000;
    if (!process_ || py != python_ || stale || !process_->alive()) {
      process_.reset();
      ProcessSpec spec;
      spec.argv = {py, "-c", fields::kCondaHelper, std::to_string(kIdleSeconds)};
      RTENV_ASSIGN_OR_RETURN(process_, LineProcess::start(spec));
      python_ = py;
    }
    last_used_ms_ = steady_ms();
    auto on_stderr = [&](std::string_view line) {
      if (progress) progress(printable_line(line));
    };
    auto line = process_->call(Json{{"verb", verb}, {"request", request}}.dump(), timeout_ms,
                               kMaxAnswer, on_stderr);
    last_used_ms_ = steady_ms();
    if (!line) {
      process_.reset();
      if (line.error().code() == ErrorCode::kTimeout) {
        return make_error(ErrorCode::kTimeout, "conda {} timed out (config.setup_timeout_seconds)",
                          verb);
      }
      return make_error(
          line.error().code() == ErrorCode::kTooLarge ? ErrorCode::kTooLarge : ErrorCode::kInternal,
          "conda {}: {}", verb, plugin_stderr_tail(line.error().message()));
    }
    Json reply = Json::parse(*line, nullptr, false);
    if (!reply.is_object()) {
      process_.reset();
      return make_error(ErrorCode::kInternal, "conda {} ({}): its answer is not a JSON object",
                        verb, py);
    }
    if (reply.contains("error")) return helper_error(verb, py, reply);
    return reply;
  }

 private:
  // An idle helper leaves by itself after this long (the agent's stays warm between envs).
  static constexpr int64_t kIdleSeconds = 300;
  static constexpr size_t kMaxAnswer = size_t{16} << 20;

  static Error helper_error(const std::string& verb, const std::string& py, const Json& reply) {
    std::string kind = string_at(reply, "error");
    std::string message = plugin_stderr_tail(string_at(reply, "message"), 40);
    if (kind == "missing") {
      return make_error(ErrorCode::kNotFound,
                        "conda needs py-rattler: {}; install it with `{} -m pip install "
                        "py-rattler==0.28.0`, or set RTENV_PYTHON to a Python that has it",
                        message, py);
    }
    if (kind == "unsatisfiable") {
      return make_error(ErrorCode::kInvalidArgument, "cannot solve the conda env: {}", message);
    }
    if (kind == "channel") {
      return make_error(ErrorCode::kInvalidArgument, "cannot read a conda channel: {}", message);
    }
    if (kind == "install") {
      return make_error(ErrorCode::kInvalidArgument, "conda install failed: {}", message);
    }
    return make_error(ErrorCode::kInternal, "conda {}: {}", verb, message);
  }

  std::mutex mu_;
  std::unique_ptr<LineProcess> process_;
  std::string python_;
  int64_t last_used_ms_ = 0;
};

Result<Json> call_helper(const Home& home, const std::string& verb, const Json& request,
                         int64_t timeout_ms, const InstallProgress& progress) {
  return CondaHelper::instance().call(home, verb, request, timeout_ms, progress);
}

// What `conda activate` would do to a process's environment, as launch-plan operations: the env's
// bin/ first on PATH, CONDA_PREFIX, CONDA_DEFAULT_ENV, and what its etc/conda/activate.d/*.sh
// scripts export (they run in a clean bash; values are kept as they come out).
Result<LaunchPlan> activation_of(const fs::path& prefix, const std::string& name) {
  static const char* kScript =
      "export CONDA_PREFIX=\"$1\" CONDA_DEFAULT_ENV=\"$2\" CONDA_SHLVL=1 PATH=\"$1/bin:$PATH\"\n"
      "for f in \"$1\"/etc/conda/activate.d/*.sh; do [ -f \"$f\" ] && . \"$f\"; done\n"
      "exec \"$3\" -0\n";
  // The caller's PATH, where activation keeps it.
  static const std::string kCallerPath = "/rtenv-caller-path";
  // Started by absolute path: the shell's PATH is the marker.
  auto bash = find_program("bash");
  auto env = find_program("env");
  if (!bash || !env) {
    return make_error(ErrorCode::kNotFound, "activating conda env {}: {} is not on PATH",
                      prefix.string(), bash ? "env" : "bash");
  }
  ProcessSpec spec;
  spec.argv = {
      env->string(), "-i",    "PATH=" + kCallerPath, bash->string(),  "--norc", "--noprofile",
      "-c",          kScript, "rtenv-activate",      prefix.string(), name,     env->string()};
  spec.timeout_ms = kActivateTimeoutMs;
  spec.max_out = size_t{1} << 20;
  RTENV_ASSIGN_OR_RETURN(ProcessOutcome outcome, run_process(spec));
  if (!outcome.success()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "activating conda env {}: its activation scripts failed ({}): {}",
                      prefix.string(), outcome.describe(), plugin_stderr_tail(outcome.err));
  }
  LaunchPlan plan;
  std::string_view rest = outcome.out;
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    std::string_view entry = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string key(entry.substr(0, eq));
    std::string value(entry.substr(eq + 1));
    if (key == "PWD" || key == "OLDPWD" || key == "SHLVL" || key == "_") continue;
    if (key != "PATH") {
      plan.set(key, value);
      continue;
    }
    std::vector<std::string> before, after;
    bool seen = false;
    for (std::string_view p = value;;) {
      size_t colon = p.find(':');
      std::string part(p.substr(0, colon));
      if (part == kCallerPath) {
        seen = true;
      } else if (!part.empty()) {
        (seen ? after : before).push_back(part);
      }
      if (colon == std::string_view::npos) break;
      p = p.substr(colon + 1);
    }
    if (!seen) {
      plan.set("PATH", value);  // a script replaced PATH outright
      continue;
    }
    if (!before.empty()) plan.prepend("PATH", std::move(before));
    if (!after.empty()) plan.append("PATH", std::move(after));
  }
  return plan;
}

bool is_conda_env(const fs::path& dir) {
  struct stat st;
  return ::stat((dir / "conda-meta").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::string> env_var(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

// An existing env given by name (found where conda keeps envs) or by directory.
Result<fs::path> find_existing_env(const std::string& name) {
  if (name.starts_with("/")) {
    if (is_conda_env(name)) return fs::path(name);
    return make_error(ErrorCode::kNotFound,
                      "runtime_env.conda: {} is not a conda env on this node (no conda-meta/ "
                      "in it)",
                      name);
  }
  std::vector<fs::path> roots;
  if (auto paths = env_var("CONDA_ENVS_PATH")) {
    for (std::string_view rest = *paths; !rest.empty();) {
      size_t colon = rest.find(':');
      if (colon > 0) roots.emplace_back(std::string(rest.substr(0, colon)));
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  std::vector<fs::path> bases;
  if (auto exe = env_var("CONDA_EXE")) bases.push_back(fs::path(*exe).parent_path().parent_path());
  if (auto root = env_var("CONDA_ROOT")) bases.emplace_back(*root);
  if (auto home = env_var("HOME")) {
    for (const char* d : {"miniforge3", "miniconda3", "anaconda3", "mambaforge"}) {
      bases.push_back(fs::path(*home) / d);
    }
    roots.push_back(fs::path(*home) / ".conda" / "envs");
  }
  bases.emplace_back("/opt/conda");
  for (const auto& b : bases) {
    if (name == "base" && is_conda_env(b)) return b;
    roots.push_back(b / "envs");
  }
  std::string looked;
  for (const auto& r : roots) {
    if (is_conda_env(r / name)) return r / name;
    looked += (looked.empty() ? "" : ", ") + r.string();
  }
  return make_error(ErrorCode::kNotFound,
                    "runtime_env.conda: the conda env '{}' does not exist on this node (looked in "
                    "{}; CONDA_ENVS_PATH adds places); a named env is used as it is, never "
                    "created: create it on every node, or give the env as a dict or an "
                    "environment.yml for rtenv to build",
                    name, looked);
}

// A solved env: its lock in the store, the platform it was solved for, and the locked pip
// section (requirement lines with hashes, installed into the env after its conda packages).
struct CondaRequest {
  Digest lock;
  std::string platform;
  std::vector<std::string> pip;
};

Result<CondaRequest> parse_locked(const Json& value) {
  auto bad = [](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, "runtime_env.conda.{}: {}", kLockKey, why);
  };
  const Json& lock = value[kLockKey];
  if (!lock.is_string() || !lock.get<std::string>().starts_with("sha256:")) {
    return bad("expected \"sha256:<hex>\" (the lock rtenv made when it solved the env)");
  }
  auto digest = Digest::from_hex(lock.get<std::string>().substr(7));
  if (!digest) return bad("expected \"sha256:<hex>\": " + digest.error().message());
  auto platform = value.find("platform");
  if (platform == value.end() || !platform->is_string()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "runtime_env.conda.platform: expected the conda platform the lock is for");
  }
  CondaRequest out{*digest, platform->get<std::string>(), {}};
  if (auto pip = value.find("pip"); pip != value.end()) {
    if (!pip->is_array()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.conda.pip: expected the locked pip section (a list)");
    }
    for (const auto& line : *pip) {
      if (!line.is_string()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "runtime_env.conda.pip: expected a list of strings");
      }
      out.pip.push_back(line.get<std::string>());
    }
  }
  return out;
}

std::string key_of(const CondaRequest& r) {
  std::string pip;
  for (const auto& line : r.pip) pip += line + "\n";
  return Digest::of(fmt::format("rtenv-conda 1\n{}\n{}\n{}", r.lock.hex(), r.platform, pip)).hex();
}

// uv's name of a conda platform, for resolving a pip section before the env exists.
std::string uv_platform(const std::string& conda_platform) {
  if (conda_platform == "linux-aarch64") return "aarch64-unknown-linux-gnu";
  return "x86_64-unknown-linux-gnu";
}

// ---- the kind ----------------------------------------------------------------------------

/// Conda envs installed by this node: $RTENV_HOME/conda/envs/<key>/ (installed in place: conda
/// packages carry their prefix in files), with <key>.lock, <key>.conda-lock.yml (the lock it was
/// installed from), <key>.context.json (its activation) and <key>.ready. Packages are unpacked
/// once into $RTENV_HOME/conda/pkgs/, which every env links from.
class CondaEnvKind : public PublishedDirsKind {
 public:
  CondaEnvKind(const Home& home, store::BlobStore& store)
      : PublishedDirsKind(std::string(kUriPrefix),
                          PublishedDirs(home.root / "conda" / "envs", home.tmp(), ".ready",
                                        {".context.json", ".conda-lock.yml"})),
        home_(home),
        store_(store) {}

  std::string name() const override { return "conda"; }
  Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                      int64_t timeout_ms) override {
    const int64_t deadline = deadline_after(timeout_ms);
    return dirs().make_once(key(r.uri), deadline, r.uri, maker(r, progress, deadline));
  }
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress& progress,
                                                 int64_t timeout_ms) override {
    const int64_t deadline = deadline_after(timeout_ms);
    RTENV_ASSIGN_OR_RETURN(FileLock lock,
                           dirs().lease(key(r.uri), deadline, r.uri, maker(r, progress, deadline)));
    return std::unique_ptr<ResourceLease>(new DirLease(std::move(lock)));
  }

  /// The activation kept beside a ready env.
  Result<LaunchPlan> activation(const std::string& uri) const {
    return LaunchPlan::load(dirs().sidecar(key(uri), ".context.json"), uri);
  }

 private:
  PublishedDirs::Make maker(const Resource& r, const InstallProgress& progress,
                            int64_t deadline) const {
    return [this, &r, &progress, deadline](const fs::path& dir) -> Result<void> {
      const auto& request = *std::static_pointer_cast<const CondaRequest>(r.request);
      if (request.platform != node_platform()) {
        return make_error(ErrorCode::kUnsupported,
                          "the conda env was solved for {}, and this node is {}; submit it from "
                          "a machine of the cluster's platform",
                          request.platform, node_platform());
      }
      auto text = store_.get(request.lock);
      if (!text) return text.error().with_context("reading the conda lock from the store");
      fs::path lock_file = dirs().sidecar(key(r.uri), ".conda-lock.yml");
      RTENV_TRY(write_file_atomic(lock_file, *text));
      Json install = {{"lock_path", lock_file.string()},
                      {"prefix", dir.string()},
                      {"package_cache", home_.conda_pkgs().string()},
                      {"platform", request.platform}};
      RTENV_ASSIGN_OR_RETURN(Json done,
                             call_helper(home_, "install", install, ms_left(deadline), progress));
      if (progress && done.contains("packages") && done["packages"].is_number_unsigned()) {
        progress(fmt::format("{} conda packages installed", done["packages"].get<uint64_t>()));
      }
      if (!request.pip.empty()) RTENV_TRY(install_pip(dir, request.pip, progress, deadline));
      RTENV_ASSIGN_OR_RETURN(LaunchPlan plan, activation_of(dir, dir.filename().string()));
      return write_file_atomic(dirs().sidecar(key(r.uri), ".context.json"), plan.to_json().dump());
    };
  }

  // The locked pip section, into the env's own interpreter (its hashes checked by uv).
  Result<void> install_pip(const fs::path& prefix, const std::vector<std::string>& lines,
                           const InstallProgress& progress, int64_t deadline) const {
    fs::path python = prefix / "bin" / "python";
    struct stat st;
    if (::stat(python.c_str(), &st) != 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "the conda env has a pip section but no python (add \"python\" to its "
                        "dependencies)");
    }
    RTENV_ASSIGN_OR_RETURN(Interpreter base, find_interpreter(home_));
    RTENV_ASSIGN_OR_RETURN(Installer uv,
                           find_installer(home_.config(), base, spec::Installer::kUv));
    std::string requirements;
    for (const auto& line : lines) requirements += line + "\n";
    ProcessSpec spec;
    spec.argv = {uv.uv.string(), "pip",     "install", "--python", python.string(),
                 "--no-deps",    "--quiet", "-r",      "-"};
    spec.env["UV_CACHE_DIR"] = home_.uv_cache().string();
    spec.stdin_data = std::move(requirements);
    spec.timeout_ms = ms_left(deadline);
    if (progress) {
      spec.on_stderr_line = [&](std::string_view line) { progress(printable_line(line)); };
    }
    if (progress) progress("installing the pip section (uv pip install)");
    RTENV_ASSIGN_OR_RETURN(ProcessOutcome outcome, run_process(spec));
    if (!outcome.success()) {
      return make_error(outcome.timed_out ? ErrorCode::kTimeout : ErrorCode::kInvalidArgument,
                        "installing the conda env's pip section failed ({}): {}",
                        outcome.describe(), plugin_stderr_tail(outcome.err));
    }
    return ok_result();
  }

  Home home_;
  store::BlobStore& store_;
};

// ---- the field ---------------------------------------------------------------------------

// The package a conda match spec names: "conda-forge::python>=3.10" -> "python".
std::string conda_spec_name(std::string_view spec) {
  if (size_t c = spec.find("::"); c != std::string_view::npos) spec.remove_prefix(c + 2);
  size_t end = spec.find_first_of(" =<>!~[");
  return std::string(spec.substr(0, end));
}

// The dict's channels, conda specs and pip section.
struct EnvDict {
  std::vector<std::string> channels;
  std::vector<std::string> specs;
  std::vector<std::string> pip;  ///< the pip section's requirement lines
};

Result<EnvDict> parse_dict(const Json& value) {
  EnvDict out;
  auto strings = [](const Json& list, const std::string& path,
                    std::vector<std::string>* into) -> Result<void> {
    if (!list.is_array()) {
      return make_error(ErrorCode::kInvalidArgument, "{}: expected a list", path);
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) {
        return make_error(ErrorCode::kInvalidArgument, "{}[{}]: expected a string", path, i);
      }
      into->push_back(list[i].get<std::string>());
    }
    return ok_result();
  };
  if (auto c = value.find("channels"); c != value.end()) {
    RTENV_TRY(strings(*c, "runtime_env.conda.channels", &out.channels));
  }
  // As conda and pixi do when none is named.
  if (out.channels.empty()) out.channels.push_back("conda-forge");
  auto deps = value.find("dependencies");
  if (deps == value.end() || !deps->is_array() || deps->empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "runtime_env.conda.dependencies: expected a non-empty list of packages "
                      "(\"python=3.11\", \"numpy\")");
  }
  for (size_t i = 0; i < deps->size(); ++i) {
    const Json& d = (*deps)[i];
    if (d.is_string()) {
      out.specs.push_back(d.get<std::string>());
    } else if (d.is_object() && d.size() == 1 && d.contains("pip")) {
      RTENV_TRY(
          strings(d["pip"], fmt::format("runtime_env.conda.dependencies[{}].pip", i), &out.pip));
    } else {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.conda.dependencies[{}]: expected a package spec string or "
                        "{{\"pip\": [...]}}",
                        i);
    }
  }
  return out;
}

class CondaField : public Field {
 public:
  std::string name() const override { return "conda"; }
  int priority() const override { return 3; }
  bool prepares_in_agent() const override { return true; }

  Result<Json> prepare(const Json& value, const PrepareContext& ctx) const override {
    // A name or a directory: an env that exists on each node, used as it is.
    if (!value.is_object()) return value;
    if (value.contains(kLockKey)) {
      RTENV_TRY(parse_locked(value));
      return value;
    }
    RTENV_ASSIGN_OR_RETURN(EnvDict dict, parse_dict(value));
    RTENV_ASSIGN_OR_RETURN(Json completed, with_python_for_pip(value, &dict, ctx));
    return solve(completed, dict, ctx);
  }

 private:
  // As Ray does: a pip section needs a Python, and one not named is the submitting side's
  // (its major.minor), so the pip packages it resolved for fit.
  static Result<Json> with_python_for_pip(const Json& value, EnvDict* dict,
                                          const PrepareContext& ctx) {
    if (dict->pip.empty()) return value;
    for (const std::string& s : dict->specs) {
      if (conda_spec_name(s) == "python") return value;
    }
    RTENV_ASSIGN_OR_RETURN(Interpreter base, find_interpreter(ctx.home));
    std::string version =
        base.version.substr(0, base.version.find('.', base.version.find('.') + 1));
    std::string spec = "python=" + version;
    if (ctx.options.report) {
      ctx.options.report(fmt::format(
          "conda: the env has a pip section but names no python: adding {} (this machine's)",
          spec));
    }
    dict->specs.push_back(spec);
    Json out = value;
    out["dependencies"].push_back(spec);
    return out;
  }

  Result<Json> solve(const Json& value, const EnvDict& dict, const PrepareContext& ctx) const {
    const std::string platform = node_platform();
    const Home& home = ctx.home;
    // The same dict is not solved again: its lock (and locked pip section) is kept.
    fs::path cached =
        home.locks() /
        fmt::format("conda-{}.json", Digest::of(fmt::format("rtenv-conda-lock 1\n{}\n{}",
                                                            spec::canonical_json(value), platform))
                                         .hex());
    if (!ctx.options.refresh_lock) {
      if (auto kept = read_kept(cached, platform, ctx.store)) return *kept;
    }
    if (ctx.options.before_resolving) ctx.options.before_resolving();
    // Solved in the node's agent when this process uses it anyway: its helper is warm there.
    if (ctx.options.prepare_in_agent) return ctx.options.prepare_in_agent(name(), value, ctx.env);
    int64_t timeout_s = ctx.env.config().setup_timeout_seconds;
    const int64_t timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
    fs::path lock_file = home.tmp() / unique_name("conda-lock");
    std::error_code ec;
    fs::create_directories(home.tmp(), ec);
    Json request = {{"channels", dict.channels},
                    {"specs", dict.specs},
                    {"platform", platform},
                    {"repodata_cache", (home.root / "conda" / "repodata").string()},
                    {"lock_path", lock_file.string()}};
    const std::string what =
        fmt::format("solving the conda env ({})", count_of(dict.specs.size(), "spec", "specs"));
    InterruptActivity busy(what, "nothing was installed");
    if (ctx.options.install_progress) ctx.options.install_progress(what);
    auto solved = call_helper(home, "solve", request, timeout_ms, ctx.options.install_progress);
    auto text = solved ? read_file(lock_file) : Result<std::string>(solved.error());
    (void)::unlink(lock_file.c_str());
    if (!text) return text.error().with_context("runtime_env.conda");
    Digest lock = Digest::of(*text);
    RTENV_TRY(ctx.store.put(lock, *text));
    std::string summary;
    size_t count = 0;
    std::optional<std::string> python_version;
    const Json& packages = solved->contains("packages") ? (*solved)["packages"] : Json();
    for (const auto& p : packages.is_array() ? packages : Json::array()) {
      std::string name = string_at(p, "name", "?"), version = string_at(p, "version", "?");
      summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", name, version);
      if (name == "python") python_version = version;
      ++count;
    }
    if (ctx.options.report) {
      ctx.options.report(fmt::format("conda: solved {} packages: {}", count, summary));
    }
    Json out = {{kLockKey, "sha256:" + lock.hex()}, {"platform", platform}};
    if (!dict.pip.empty()) {
      RTENV_ASSIGN_OR_RETURN(out["pip"],
                             lock_pip(dict.pip, python_version, platform, ctx, timeout_ms));
    }
    RTENV_TRY(write_file_atomic(cached, out.dump()));
    return out;
  }

 private:
  // The kept result of solving a dict, if its lock is still in the store.
  static std::optional<Json> read_kept(const fs::path& cached, const std::string& platform,
                                       store::BlobStore& store) {
    auto text = read_file(cached);
    if (!text) return std::nullopt;
    Json j = Json::parse(*text, nullptr, false);
    if (!j.is_object() || !j.contains(kLockKey) || string_at(j, "platform") != platform) {
      return std::nullopt;
    }
    auto request = parse_locked(j);
    if (!request) return std::nullopt;
    auto missing = store.missing({request->lock});
    if (!missing || missing->at(0)) return std::nullopt;
    return j;
  }

  // The pip section resolved to exact pins with hashes, for the env's Python (which is not
  // installed yet: uv resolves for its version and platform).
  static Result<Json> lock_pip(const std::vector<std::string>& pip,
                               const std::optional<std::string>& python_version,
                               const std::string& platform, const PrepareContext& ctx,
                               int64_t timeout_ms) {
    if (!python_version || python_version->empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.conda: a pip section needs python in the env: add "
                        "\"python\" (or \"python=3.11\") to its dependencies");
    }
    RTENV_ASSIGN_OR_RETURN(Interpreter base, find_interpreter(ctx.home));
    RTENV_ASSIGN_OR_RETURN(Installer uv,
                           find_installer(ctx.home.config(), base, spec::Installer::kUv));
    spec::PythonPackages loose;
    loose.installer = spec::Installer::kUv;
    loose.packages = pip;
    LockOptions options;
    options.timeout_ms = timeout_ms;
    options.refresh = ctx.options.refresh_lock;
    options.progress = ctx.options.install_progress;
    options.target = LockOptions::Target{*python_version, uv_platform(platform)};
    auto locked = lock_packages(loose, ctx.home, base, uv, options);
    if (!locked) return locked.error().with_context("runtime_env.conda: the pip section");
    return Json(locked->packages);
  }

 public:
  Result<void> resources(const Json& value, const spec::RuntimeEnv&, const NodeCache&,
                         std::vector<Resource>* out) const override {
    if (!value.is_object()) return ok_result();  // an existing env: nothing to make
    if (!value.contains(kLockKey)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "runtime_env.conda: the env was not solved before it reached this node "
                        "(expected \"{}\"); submit it with rtenv, which solves it",
                        kLockKey);
    }
    RTENV_ASSIGN_OR_RETURN(CondaRequest request, parse_locked(value));
    Resource r;
    r.field = "conda";
    r.uri = std::string(kUriPrefix) + key_of(request);
    r.request = std::make_shared<CondaRequest>(std::move(request));
    out->push_back(std::move(r));
    return ok_result();
  }

  Result<void> contribute(const Json& value, const spec::RuntimeEnv&, const NodeCache& cache,
                          const std::vector<Resource>& mine, LaunchPlan* plan) const override {
    fs::path prefix;
    if (value.is_string()) {
      const std::string& name = value.get_ref<const std::string&>();
      RTENV_ASSIGN_OR_RETURN(prefix, find_existing_env(name));
      RTENV_ASSIGN_OR_RETURN(LaunchPlan part, activation_of(prefix, name));
      plan->add(part);
    } else {
      const auto* kind = mine.size() == 1
                             ? dynamic_cast<const CondaEnvKind*>(cache.kind_of(mine[0].uri))
                             : nullptr;
      if (!kind) return make_error(ErrorCode::kInternal, "runtime_env.conda: no planned env");
      RTENV_ASSIGN_OR_RETURN(LaunchPlan part, kind->activation(mine[0].uri));
      plan->add(part);
      prefix = kind->dir_of(mine[0].uri);
    }
    // Engines that start Python start the env's own, when it has one.
    struct stat st;
    if (::stat((prefix / "bin" / "python").c_str(), &st) == 0) {
      plan->py_executable = prefix / "bin" / "python";
    }
    return ok_result();
  }
};

}  // namespace

namespace fields {
void stop_helpers() { CondaHelper::instance().stop(); }
std::shared_ptr<const Field> conda() { return std::make_shared<CondaField>(); }
std::unique_ptr<ResourceKind> conda_kind(const Home& home, store::BlobStore& store) {
  return std::make_unique<CondaEnvKind>(home, store);
}
}  // namespace fields

}  // namespace rtenv::env
