// RuntimeEnv: parsing entry points, typed accessors, canonical form, id, merge.

#include "spec/runtime_env.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>
#include <system_error>
#include <utility>

#include "spec/internal.h"
#include "util/fs.h"
#include "util/nesting.h"

namespace rtenv::spec {
namespace {

namespace fs = std::filesystem;

/// Fields that are one slot each: giving one of them replaces the others (merge) and at most one
/// may be present (validation).
bool is_python_env_field(std::string_view name) {
  return name == "pip" || name == "uv" || name == "conda";
}
bool is_image_field(std::string_view name) { return name == "image_uri" || name == "container"; }
}  // namespace

/// Fields that may accompany image_uri / container (working_dir and py_modules are bind-mounted
/// at the same paths inside the image; excludes applies to them).
bool may_accompany_image(std::string_view name) {
  return is_image_field(name) || name == "config" || name == "env_vars" || name == "working_dir" ||
         name == "py_modules" || name == "excludes";
}

namespace {

struct PluginRegistry {
  std::mutex mu;
  std::set<std::string, std::less<>> names;
};

PluginRegistry& plugin_registry() {
  static PluginRegistry registry;
  return registry;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Reads a string array, skipping anything that is not a string.
std::vector<std::string> string_array(const Json& json, const char* key) {
  std::vector<std::string> out;
  auto it = json.find(key);
  if (it == json.end() || !it->is_array()) return out;
  for (const Json& item : *it) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

std::optional<std::string> string_field(const Json& json, const char* key) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string dump_canonical(const Json& json) { return canonical_json(json); }

}  // namespace

bool is_uri(std::string_view s) {
  size_t pos = s.find("://");
  if (pos == std::string_view::npos || pos == 0) return false;
  if (!(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (size_t i = 1; i < pos; ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const std::vector<std::string_view>& archive_suffixes() {
  static const std::vector<std::string_view> suffixes = {".zip",    ".tar.gz",  ".tgz",
                                                         ".tar.xz", ".tar.bz2", ".tar"};
  return suffixes;
}

std::vector<std::string> requirement_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    size_t first = line.find_first_not_of(" \t\r\f\v");
    if (first == std::string_view::npos) continue;
    size_t last = line.find_last_not_of(" \t\r\f\v");
    line = line.substr(first, last - first + 1);
    if (line[0] != '#') out.emplace_back(line);
  }
  return out;
}

std::string requirement_file_of(std::string_view line) {
  for (std::string_view flag : {"--requirement", "-r"}) {
    if (!line.starts_with(flag)) continue;
    std::string_view rest = line.substr(flag.size());
    const bool equals = flag == "--requirement" && rest.starts_with("=");
    if (equals) rest.remove_prefix(1);
    size_t first = rest.find_first_not_of(" \t");
    if (first == std::string_view::npos) return "";
    // "--requirementsX" is no such flag; "-rX" is pip's short form with the value attached.
    if (first == 0 && flag == "--requirement" && !equals) return "";
    return std::string(rest.substr(first));
  }
  return "";
}

const std::vector<std::string>& working_dir_variables() {
  static const std::vector<std::string> names = {"${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}",
                                                 "${RTENV_WORKING_DIR}"};
  return names;
}

bool names_working_dir(std::string_view line) {
  for (const std::string& var : working_dir_variables()) {
    if (line.find(var) != std::string_view::npos) return true;
  }
  return false;
}

std::string_view archive_suffix(std::string_view name) {
  for (std::string_view suffix : archive_suffixes()) {
    if (name.size() < suffix.size()) continue;
    std::string_view tail = name.substr(name.size() - suffix.size());
    bool same = std::equal(tail.begin(), tail.end(), suffix.begin(), [](char a, char b) {
      return std::tolower(static_cast<unsigned char>(a)) == b;
    });
    if (same) return suffix;
  }
  return {};
}

std::optional<std::string> local_uri_path(std::string_view s) {
  constexpr std::string_view kPrefix = "local://";
  if (!s.starts_with(kPrefix)) return std::nullopt;
  return std::string(s.substr(kPrefix.size()));
}

bool is_builtin_field(std::string_view name) {
  const auto& fields = internal::builtin_fields();
  return std::binary_search(fields.begin(), fields.end(), name);
}

bool is_ray_only_field(std::string_view name) {
  if (is_builtin_field(name) || is_plugin_field(name)) return false;
  return name == "worker_process_setup_hook" || name == "nsight" || name == "rocprof_sys" ||
         name.starts_with("_");
}

bool register_plugin_field(std::string_view name) {
  if (name.empty() || is_builtin_field(name)) return false;
  PluginRegistry& registry = plugin_registry();
  std::lock_guard lock(registry.mu);
  registry.names.emplace(name);
  return true;
}

void unregister_plugin_field(std::string_view name) {
  PluginRegistry& registry = plugin_registry();
  std::lock_guard lock(registry.mu);
  if (auto it = registry.names.find(name); it != registry.names.end()) registry.names.erase(it);
}

bool is_plugin_field(std::string_view name) {
  PluginRegistry& registry = plugin_registry();
  std::lock_guard lock(registry.mu);
  return registry.names.find(name) != registry.names.end();
}

std::vector<std::string> plugin_field_names() {
  PluginRegistry& registry = plugin_registry();
  std::lock_guard lock(registry.mu);
  return {registry.names.begin(), registry.names.end()};
}

// ---- parsing ----------------------------------------------------------------------------------

namespace {

/// Parses JSON text; syntax errors name the line and column.
Result<Json> parse_json_text(std::string_view text) {
  RTENV_TRY(check_nesting(text, internal::kMaxNesting, internal::kMaxTextBytes, "runtime_env"));
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    // nlohmann: "[json.exception.parse_error.101] parse error at line 1, column 5: <reason>".
    std::string what = e.what();
    constexpr std::string_view kMarker = "parse error at line ";
    if (size_t at = what.find(kMarker); at != std::string::npos) {
      std::string position = what.substr(at + std::string_view("parse error ").size());
      return make_error(ErrorCode::kInvalidArgument, "runtime_env: invalid JSON {}", position);
    }
    if (size_t p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    return make_error(ErrorCode::kInvalidArgument, "runtime_env: invalid JSON: {}", what);
  }
}

/// Reads the text of a .json/.yaml/.yml spec file named by `arg`.
Result<std::string> read_spec_file(std::string_view arg, const ParseOptions& options) {
  fs::path path(arg);
  if (path.is_relative()) path = options.base_dir / path;
  std::error_code ec;
  if (fs::path absolute = fs::absolute(path, ec); !ec) path = absolute;
  path = path.lexically_normal();
  fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    return make_error(ErrorCode::kInvalidArgument, "runtime_env: file {} does not exist",
                      path.string());
  }
  if (!ec && fs::is_directory(st)) {
    return make_error(ErrorCode::kInvalidArgument, "runtime_env: {} is a directory, not a file",
                      path.string());
  }
  Result<std::string> text = read_file(path);
  if (!text.ok()) {
    return Error(ErrorCode::kInvalidArgument, "runtime_env: " + text.error().message());
  }
  return text;
}

}  // namespace

Result<RuntimeEnv> RuntimeEnv::from_json(const Json& value, const ParseOptions& options) {
  std::vector<std::string> warnings;
  Result<Json> normalized = internal::validate_and_normalize(value, options, &warnings);
  if (!normalized.ok()) return internal::sanitized(normalized.error());
  for (std::string& w : warnings) w = internal::valid_utf8(w);
  return RuntimeEnv(std::move(normalized).value(), std::move(warnings));
}

Result<RuntimeEnv> RuntimeEnv::from_json_text(std::string_view text, const ParseOptions& options) {
  Result<Json> value = parse_json_text(text);
  if (!value.ok()) return internal::sanitized(value.error());
  return from_json(*value, options);
}

Result<RuntimeEnv> RuntimeEnv::from_yaml_text(std::string_view text, const ParseOptions& options) {
  Result<Json> value = internal::yaml_to_json(text);
  if (!value.ok()) return internal::sanitized(value.error().with_context("runtime_env"));
  return from_json(*value, options);
}

Result<RuntimeEnv> RuntimeEnv::load(std::string_view arg, const ParseOptions& options) {
  size_t first = arg.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "runtime_env: empty argument; expected inline JSON or a path to a .json, "
                      ".yaml or .yml file");
  }
  // A JSON list is never a file name; parsing it gives the better message ("expected a dict").
  if (arg[first] == '{' || arg[first] == '[') return from_json_text(arg, options);

  const std::string ext = lowercase(fs::path(arg).extension().string());
  const bool json = ext == ".json";
  const bool yaml = ext == ".yaml" || ext == ".yml";
  if (!json && !yaml) {
    return internal::sanitized(make_error(
        ErrorCode::kInvalidArgument,
        "runtime_env: cannot load {}: expected inline JSON (starting with '{{') or a path to a "
        ".json, .yaml or .yml file",
        arg));
  }
  Result<std::string> text = read_spec_file(arg, options);
  if (!text.ok()) return internal::sanitized(text.error());
  return json ? from_json_text(*text, options) : from_yaml_text(*text, options);
}

// ---- accessors --------------------------------------------------------------------------------

std::optional<std::string> RuntimeEnv::working_dir() const {
  return string_field(json_, "working_dir");
}

std::vector<std::string> RuntimeEnv::py_modules() const {
  return string_array(json_, "py_modules");
}

std::vector<std::string> RuntimeEnv::excludes() const { return string_array(json_, "excludes"); }

std::map<std::string, std::string> RuntimeEnv::env_vars() const {
  std::map<std::string, std::string> out;
  auto it = json_.find("env_vars");
  if (it == json_.end() || !it->is_object()) return out;
  for (const auto& [name, value] : it->items()) {
    if (value.is_string()) out.emplace(name, value.get<std::string>());
  }
  return out;
}

Json PythonPackages::to_json() const {
  const bool pip = installer == Installer::kPip;
  Json out = {{"packages", packages}};
  if (check) out[pip ? "pip_check" : "uv_check"] = true;
  if (installer_version) out[pip ? "pip_version" : "uv_version"] = *installer_version;
  if (!install_options.empty()) {
    out[pip ? "pip_install_options" : "uv_pip_install_options"] = install_options;
  }
  if (locked) out["locked"] = true;
  if (!system_site_packages) out["system_site_packages"] = false;
  if (python) out["python"] = *python;
  return out;
}

std::optional<PythonPackages> RuntimeEnv::python_packages() const {
  for (Installer installer : {Installer::kPip, Installer::kUv}) {
    const bool pip = installer == Installer::kPip;
    auto it = json_.find(pip ? "pip" : "uv");
    if (it == json_.end()) continue;
    PythonPackages out;
    out.installer = installer;
    if (it->is_array()) {  // not normalized (only through with_field of an odd value)
      out.packages = string_array(Json{{"packages", *it}}, "packages");
      return out;
    }
    if (!it->is_object()) continue;
    out.packages = string_array(*it, "packages");
    auto check = it->find(pip ? "pip_check" : "uv_check");
    out.check = check != it->end() && check->is_boolean() && check->get<bool>();
    out.installer_version = string_field(*it, pip ? "pip_version" : "uv_version");
    out.install_options = string_array(*it, pip ? "pip_install_options" : "uv_pip_install_options");
    auto locked = it->find("locked");
    out.locked = locked != it->end() && locked->is_boolean() && locked->get<bool>();
    auto visible = it->find("system_site_packages");
    out.system_site_packages =
        visible == it->end() || !visible->is_boolean() || visible->get<bool>();
    out.python = string_field(*it, "python");
    return out;
  }
  return std::nullopt;
}

std::optional<std::string> RuntimeEnv::py_executable() const {
  return string_field(json_, "py_executable");
}

std::vector<std::string> RuntimeEnv::java_jars() const { return string_array(json_, "java_jars"); }

std::optional<std::string> RuntimeEnv::image_uri() const {
  if (auto uri = string_field(json_, "image_uri")) return uri;
  auto it = json_.find("container");
  if (it != json_.end() && it->is_object()) return string_field(*it, "image");
  return std::nullopt;
}

SetupConfig RuntimeEnv::config() const {
  SetupConfig out;
  auto it = json_.find("config");
  if (it == json_.end() || !it->is_object()) return out;
  if (auto t = it->find("setup_timeout_seconds"); t != it->end() && t->is_number_integer()) {
    out.setup_timeout_seconds = t->get<int64_t>();
  }
  if (auto e = it->find("eager_install"); e != it->end() && e->is_boolean()) {
    out.eager_install = e->get<bool>();
  }
  return out;
}

std::vector<std::string> RuntimeEnv::plugin_fields() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : json_.items()) {
    if (!is_builtin_field(name)) out.push_back(name);
  }
  return out;  // object keys iterate sorted
}

std::vector<std::string> RuntimeEnv::fields() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : json_.items()) out.push_back(name);
  return out;
}

// ---- derived envs -----------------------------------------------------------------------------

RuntimeEnv RuntimeEnv::with_field(const std::string& name, Json value) const {
  Json json = json_;
  Json normalized = internal::normalize_field_shape(name, std::move(value));
  if (normalized.is_null()) {
    json.erase(name);
  } else {
    json[name] = std::move(normalized);
  }
  return RuntimeEnv(std::move(json), warnings_);
}

std::string RuntimeEnv::canonical() const { return dump_canonical(json_); }

EnvId RuntimeEnv::id() const {
  Json content = json_;
  content.erase("config");
  return EnvId(Digest::of(dump_canonical(content)));
}

RuntimeEnv merge(const RuntimeEnv& parent, const RuntimeEnv& child) {
  if (child.empty()) return parent;
  const Json& c = child.to_json();

  bool child_python = false, child_image = false, child_other = false;
  for (const auto& [name, value] : c.items()) {
    child_python |= is_python_env_field(name);
    child_image |= is_image_field(name);
    child_other |= !may_accompany_image(name);
  }
  RuntimeEnv out = parent;
  // pip, uv and conda are one slot, and so are image_uri and container: the child's choice
  // replaces the parent's whole, so the result never holds two of them. Likewise an image and
  // the fields it excludes: whichever the child gives wins.
  for (const std::string& name : parent.fields()) {
    bool drop = (child_python && is_python_env_field(name)) ||
                (child_image && !may_accompany_image(name)) ||
                (child_image && is_image_field(name)) || (child_other && is_image_field(name));
    if (drop) out = out.with_field(name, Json(nullptr));
  }
  for (const auto& [name, value] : c.items()) {
    if (name == "env_vars" && value.is_object()) {
      Json vars = out.to_json().value("env_vars", Json::object());
      if (!vars.is_object()) vars = Json::object();
      for (const auto& [var, var_value] : value.items()) vars[var] = var_value;
      out = out.with_field(name, std::move(vars));
    } else {
      out = out.with_field(name, value);
    }
  }
  return out;
}

}  // namespace rtenv::spec
