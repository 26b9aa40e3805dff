#pragma once
// From a runtime_env to a running process's surroundings: local paths are packed into the store
// (upload_local), then each resource is materialized on the node and leased (activate).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "env/home.h"
#include "env/node_cache.h"
#include "env/package_cache.h"
#include "pack/packer.h"
#include "spec/runtime_env.h"
#include "store/blob_store.h"

namespace rtenv::env {

/// What a process must be started with to run inside an env.
struct Context {
  std::optional<fs::path> cwd;                  ///< working_dir's node-local copy
  std::map<std::string, std::string> env_vars;  ///< to set, already expanded
  std::vector<fs::path> python_path;            ///< prepended to PYTHONPATH, in order
  std::optional<fs::path> py_executable;        ///< the env's interpreter (pip/uv), if any
};

/// A py_modules wheel in the store: "rtenv://sha256/<package>/<name>.whl", the package holding
/// the wheel file under its own name.
struct WheelUri {
  pack::PackageUri package;
  std::string file;

  std::string str() const;
  static Result<WheelUri> parse(std::string_view uri);
};

/// What a URI-only env needs on a node and what it gives a process: the resources, and the
/// context with env_vars not yet expanded (the caller's environment expands them).
struct Plan {
  std::vector<Resource> resources;
  Context context;
};

/// Plans a URI-only env with its Python packages locked, without building anything (the base
/// interpreter may be probed once). kUnsupported for fields without an installer yet ("not
/// supported yet: conda ..."); kInvalidArgument for a field that is not a package URI or a
/// Python package list that is not locked.
Result<Plan> plan(const spec::RuntimeEnv& env, const NodeCache& cache);

/// Expands ${NAME} in the context's env_vars from `lookup_caller_env`, and points Python's
/// bytecode cache out of the packages (PYTHONPYCACHEPREFIX under $RTENV_HOME) unless the caller
/// chose otherwise.
void finish_context(
    Context* context, const Home& home, bool has_packages,
    const std::function<std::optional<std::string>(const std::string&)>& lookup_caller_env);

/// An activated env: its context and the leases that keep its resources whole until released.
struct ActiveEnv {
  Context context;
  std::vector<PackageCache::Lease> leases;
  std::vector<PythonEnvCache::Lease> python_leases;
  /// Descriptors of every lease, for a process that must keep them (inheriting them).
  std::vector<int> lease_fds() const;
};

/// One line of what setup did, for -v and for logs.
using SetupReporter = std::function<void(const std::string& line)>;

struct UploadOptions {
  uint64_t max_package_bytes = uint64_t{2} << 30;
  uint64_t warn_file_bytes = uint64_t{100} << 20;
  SetupReporter report;  ///< summaries and warnings
  /// Live progress while hashing; `what` names the field ("working_dir").
  std::function<void(const std::string& what, const pack::PackProgress&)> progress;
  /// Unpacks a .zip (a local path, or a file://, http:// or https:// URL) into the new directory
  /// `dest`. Set by binaries that carry the archive and download code (env/zip_import.h); unset,
  /// a zip is refused with kUnsupported.
  std::function<Result<void>(const std::string& source, const fs::path& dest)> unpack_zip;
  /// Lines of the resolver's progress while `pip`/`uv` is locked.
  InstallProgress install_progress;
  /// Resolve `pip`/`uv` again even if the same list was resolved before.
  bool refresh_lock = false;
  /// See LockOptions::before_resolving.
  std::function<void()> before_resolving;
};

/// Packs the local paths of a job-level env (working_dir, py_modules; `excludes` applied) into
/// `store`, downloads and unpacks remote .zip URIs, locks `pip`/`uv` (lock_python), and returns
/// the env with package URIs in their place, its Python packages pinned and `excludes` dropped
/// (it is applied). Errors name the field and the path.
Result<spec::RuntimeEnv> upload_local(const spec::RuntimeEnv& env, const Home& home,
                                      store::BlobStore& store, const UploadOptions& options);

/// True if packing `env` needs UploadOptions::unpack_zip (a .zip, or a zip URL to download).
bool needs_zip_support(const spec::RuntimeEnv& env);

/// If `dir` holds exactly one entry and it is a directory, returns that directory (remote zips
/// made with `zip -r x.zip project/` carry such a wrapper); otherwise `dir`.
fs::path single_top_level_dir(const fs::path& dir);

/// Expands ${NAME} in `value` from `lookup` (unset names expand to ""; `$$`... is left as is).
std::string expand_vars(
    const std::string& value,
    const std::function<std::optional<std::string>(const std::string&)>& lookup);

/// Plans a URI-only env, materializes what is missing on this node, leases every resource and
/// finishes the context: what a process needs to start inside the env. `timeout_ms` bounds
/// installer processes (negative: none).
Result<ActiveEnv> activate(
    const spec::RuntimeEnv& env, NodeCache& cache,
    const std::function<std::optional<std::string>(const std::string&)>& lookup_caller_env,
    const InstallProgress& progress = nullptr, int64_t timeout_ms = -1);

}  // namespace rtenv::env
