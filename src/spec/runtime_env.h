#pragma once
// The runtime_env model: parsing (JSON, YAML), validation, canonical form, env id, job/task merge.
// What each field means: docs/runtime_env.md (the project's copy of the reference).

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/digest.h"
#include "util/result.h"

namespace rtenv::spec {

/// nlohmann::json keeps object keys in a std::map, so dump() is already key-sorted.
using Json = nlohmann::json;

/// Where an env is given: a job may name local paths (they are packaged at submission);
/// a task or actor env may carry only URIs.
enum class Level { kJob, kTask };

struct ParseOptions {
  Level level = Level::kJob;
  /// Relative local paths (working_dir, py_modules, pip requirements files) resolve against it.
  std::filesystem::path base_dir = std::filesystem::current_path();
};

/// The identity of an env: SHA-256 of its canonical form without `config` (config says how to set
/// an env up, not what it contains).
class EnvId {
 public:
  explicit EnvId(Digest d) : digest_(d) {}
  const Digest& digest() const { return digest_; }
  std::string hex() const { return digest_.hex(); }
  auto operator<=>(const EnvId&) const = default;

 private:
  Digest digest_;
};

/// Which installer a Python package set is for.
enum class Installer { kPip, kUv };

/// `pip` or `uv`, normalized: a list or a requirements file becomes {"packages": [...]}.
struct PythonPackages {
  Installer installer = Installer::kPip;
  std::vector<std::string> packages;
  bool check = false;                            ///< pip_check / uv_check
  std::optional<std::string> installer_version;  ///< pip_version / uv_version
  /// pip_install_options (pip's options, spec/pip_options.h) or uv_pip_install_options.
  std::vector<std::string> install_options;
  /// rtenv: `packages` is a complete set of exact pins (a lock), installed without resolving.
  bool locked = false;
  /// rtenv: whether the env sees the base interpreter's site-packages (default true, as Ray).
  bool system_site_packages = true;
  /// rtenv: the base interpreter (a path, or a name on PATH); a lock records the one it was
  /// resolved for. Absent: the node's default ($RTENV_PYTHON, else python3).
  std::optional<std::string> python;

  /// The field's JSON value (the inverse of RuntimeEnv::python_packages).
  Json to_json() const;
};

struct SetupConfig {
  /// Seconds; -1 means no timeout. Default 600.
  int64_t setup_timeout_seconds = 600;
  bool eager_install = true;
};

/// `value` as canonical JSON text: object keys sorted (by UTF-8 bytes), no whitespace, UTF-8 as
/// is; numbers with a fraction or exponent print as Python's repr() prints a float (the shortest
/// digits that read back to the same double; 1e-05, 0.0001, 1000000000000000.0, 1e+16), so
/// `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives the same
/// text. Never throws.
std::string canonical_json(const Json& value);

/// True if `s` is a URI ("scheme://..."), false if it is a local path.
bool is_uri(std::string_view s);

/// The archive suffixes working_dir and py_modules take, local or remote, besides a directory:
/// ".zip", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2" and ".tar" (Ray's formats and plain tar).
const std::vector<std::string_view>& archive_suffixes();
/// The one of archive_suffixes() `name` ends in, matched ignoring ASCII case; empty if none.
std::string_view archive_suffix(std::string_view name);

/// The requirement lines of a requirements file's text: one a line, trimmed; blank lines and
/// `#` comments skipped.
std::vector<std::string> requirement_lines(std::string_view text);
/// The file a `-r FILE` / `--requirement FILE` / `--requirement=FILE` line names; empty for any
/// other line.
std::string requirement_file_of(std::string_view line);
/// The names a requirement line may use for the env's working_dir:
/// `${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}` (Ray's) and `${RTENV_WORKING_DIR}` (rtenv's).
const std::vector<std::string>& working_dir_variables();
/// True if `line` names the working_dir by one of working_dir_variables().
bool names_working_dir(std::string_view line);

/// The path of a "local://<absolute path>" URI (a directory already on every node, used in
/// place); nullopt for any other string. Validation refuses a local:// URI whose path is not
/// absolute.
std::optional<std::string> local_uri_path(std::string_view s);

/// Registers `name` as a plugin field: a top-level field that validation passes through as is
/// (any non-empty JSON value) instead of rejecting it as unknown. Process-wide and thread-safe.
/// Returns false (and registers nothing) if `name` is empty or a built-in field.
bool register_plugin_field(std::string_view name);
/// Undoes register_plugin_field; unknown names are ignored.
void unregister_plugin_field(std::string_view name);
/// True if `name` was registered with register_plugin_field.
bool is_plugin_field(std::string_view name);
/// The registered plugin fields, sorted.
std::vector<std::string> plugin_field_names();
/// True if `name` is one of the built-in fields of docs/runtime_env.md §1.
bool is_builtin_field(std::string_view name);
/// True if `name` may be given beside image_uri / container: config, env_vars, working_dir,
/// py_modules, excludes (and the image fields themselves).
bool may_accompany_image(std::string_view name);
/// True if `name` is a field only Ray acts on (docs/runtime_env.md §1a):
/// `worker_process_setup_hook`, `nsight`, `rocprof_sys`, and every name starting with '_' (Ray's
/// internal keys: `_ray_commit`, `_inject_current_ray`, `_nsight`, ...). Validation checks their
/// types where Ray does and leaves them out of the env, with a warning; a built-in or registered
/// plugin field is never one.
bool is_ray_only_field(std::string_view name);

/// A validated, normalized runtime_env. Immutable value type; cheap to copy for small envs.
///
/// Normalization: empty values ("", [], {}) are dropped; local paths are made absolute
/// (lexically normal); `pip`/`uv` become their dict form with defaults left out; a requirements
/// file is read into its list. Two inputs that mean the same env have equal canonical()
/// strings and ids, whatever their key order or whitespace.
/// Also: a top-level null counts as absent whatever the field's name; a `pip`/`uv` whose package
/// list ends up empty is dropped (nothing to install); a `conda` path ending in .yml/.yaml is read
/// into its dict.
class RuntimeEnv {
 public:
  RuntimeEnv() = default;

  /// Validates a parsed JSON value. Errors are kInvalidArgument with a message naming the field
  /// path, e.g. "runtime_env.env_vars.FOO: expected a string, got 3 (integer)".
  static Result<RuntimeEnv> from_json(const Json& value, const ParseOptions& options = {});
  /// Parses JSON text (an object). Syntax errors name the line and column.
  static Result<RuntimeEnv> from_json_text(std::string_view text, const ParseOptions& options = {});
  /// Parses YAML text (a mapping), e.g. a job's seed file.
  static Result<RuntimeEnv> from_yaml_text(std::string_view text, const ParseOptions& options = {});
  /// `arg` is inline JSON (starts with '{', or '[' which then fails as "expected a dict"), or a
  /// path to a .json, .yaml or .yml file, relative to options.base_dir. Paths inside the file
  /// resolve against options.base_dir too (as Ray resolves them against the submitting cwd).
  static Result<RuntimeEnv> load(std::string_view arg, const ParseOptions& options = {});

  bool empty() const { return json_.empty(); }

  // Typed accessors. Absent fields give empty values.
  std::optional<std::string> working_dir() const;
  std::vector<std::string> py_modules() const;
  std::vector<std::string> excludes() const;
  std::map<std::string, std::string> env_vars() const;
  std::optional<PythonPackages> python_packages() const;  ///< from `pip` or `uv`
  std::optional<std::string> py_executable() const;
  std::vector<std::string> java_jars() const;
  std::optional<std::string> image_uri() const;  ///< `image_uri`, or `container.image`
  SetupConfig config() const;
  /// Names of present fields that are not built-in (plugin fields), sorted.
  std::vector<std::string> plugin_fields() const;
  /// Names of all present top-level fields, sorted.
  std::vector<std::string> fields() const;

  /// The same env with a field replaced (used after packaging: local paths become package URIs).
  /// The result is re-normalized; an empty value removes the field.
  RuntimeEnv with_field(const std::string& name, Json value) const;

  /// What validation noticed that the user should hear about, one line each (fields only Ray
  /// acts on, deprecated keys that are ignored); with_field keeps them.
  const std::vector<std::string>& warnings() const { return warnings_; }

  /// The normalized model as JSON.
  const Json& to_json() const { return json_; }
  /// Canonical serialization: keys sorted, no whitespace (`{"a":1,"b":[2]}`), UTF-8 as is.
  std::string canonical() const;
  EnvId id() const;

 private:
  explicit RuntimeEnv(Json normalized, std::vector<std::string> warnings = {})
      : json_(std::move(normalized)), warnings_(std::move(warnings)) {}
  Json json_ = Json::object();
  std::vector<std::string> warnings_;
};

/// Job/task merge (docs/runtime_env.md §5): an empty child inherits the parent whole; otherwise
/// the child's top-level fields replace the parent's, except env_vars, which merge per variable
/// with the child winning.
RuntimeEnv merge(const RuntimeEnv& parent, const RuntimeEnv& child);

}  // namespace rtenv::spec
