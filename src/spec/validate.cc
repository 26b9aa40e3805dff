// Validation and normalization of a runtime_env (docs/runtime_env.md §1, §2).

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "spec/internal.h"
#include "spec/pip_options.h"
#include "util/fs.h"
#include "util/redact.h"
#include "util/suggest.h"

namespace rtenv::spec::internal {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kRoot = "runtime_env";
constexpr size_t kMaxRenderedChars = 60;
constexpr size_t kMaxSuggestionDistance = 2;

Error invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

/// "a, b and c".
std::string join_and(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::string join_comma(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  return out;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  s = s.substr(s.size() - suffix.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != suffix[i]) return false;
  }
  return true;
}

bool ends_with_any_ci(std::string_view s, const std::vector<std::string_view>& suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(),
                     [&](std::string_view suffix) { return ends_with_ci(s, suffix); });
}

/// The part of a URI before its query or fragment.
std::string_view uri_path_part(std::string_view uri) {
  size_t scheme_end = uri.find("://");
  size_t cut = uri.find_first_of("?#", scheme_end == std::string_view::npos ? 0 : scheme_end + 3);
  return cut == std::string_view::npos ? uri : uri.substr(0, cut);
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/// rtenv://sha256/<64 lowercase hex>
bool is_valid_rtenv_uri(std::string_view uri) {
  constexpr std::string_view kPrefix = "rtenv://sha256/";
  if (uri.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view hex = uri.substr(kPrefix.size());
  return hex.size() == 2 * Digest::kSize && std::all_of(hex.begin(), hex.end(), is_lower_hex);
}

/// What a path-valued entry may point to.
struct PathRule {
  std::vector<std::string_view> local_file_suffixes;  ///< regular files accepted locally
  std::string local_description;                      ///< "a directory or a .zip file"
  std::vector<std::string_view> remote_suffixes;
  std::string remote_description;  ///< "a .zip file"
  /// A file in the store is its one-file package plus "/<name><suffix>" (".whl", ".jar"); empty:
  /// none, and what it is called in messages.
  std::string_view packaged_file_suffix = {};
  std::string_view packaged_file_name = {};
  /// local:// URIs (a directory on the node, used in place) are taken.
  bool local_uris = false;
};

constexpr std::string_view kArchives =
    "an archive (.zip, .tar.gz, .tgz, .tar.xz, .tar.bz2 or .tar)";

std::vector<std::string_view> archives_and(std::vector<std::string_view> more) {
  std::vector<std::string_view> out = archive_suffixes();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

const PathRule& working_dir_rule() {
  static const PathRule rule{archive_suffixes(),
                             fmt::format("a directory or {}", kArchives),
                             archive_suffixes(),
                             std::string(kArchives),
                             {},
                             {},
                             /*local_uris=*/true};
  return rule;
}
const PathRule& py_module_rule() {
  static const PathRule rule{{".py", ".whl"},
                             "a directory, a .py file or a .whl file",
                             archives_and({".whl"}),
                             fmt::format("{} or a .whl file", kArchives),
                             ".whl",
                             "a wheel",
                             /*local_uris=*/true};
  return rule;
}
const PathRule& java_jar_rule() {
  static const PathRule rule{{".jar", ".zip"}, "a directory, a .jar file or a .zip file",
                             {".jar", ".zip"}, "a .jar or .zip file",
                             ".jar",           "a jar"};
  return rule;
}

/// The URL schemes setup fetches.
bool is_fetched_scheme(std::string_view scheme) {
  return scheme == "http" || scheme == "https" || scheme == "s3" || scheme == "file";
}

/// Why `uri` (of a fetched scheme) is not a URL setup can fetch; empty if it is one.
std::string malformed_url(std::string_view scheme, std::string_view uri) {
  std::string_view rest = uri.substr(scheme.size() + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view path = rest.substr(authority.size());
  path = path.substr(0, path.find_first_of("?#"));
  if (scheme == "file") {
    if (!authority.empty() || path.size() < 2) {
      return "a file:// URL names an absolute path (file:///path/to/archive)";
    }
    return {};
  }
  if (scheme == "s3") {
    if (authority.empty() || path.size() < 2)
      return "an s3:// URL names a bucket and a key (s3://bucket/key)";
    return {};
  }
  if (authority.empty() || authority.substr(authority.rfind('@') + 1).empty()) {
    return fmt::format("an {}:// URL names a host ({}://host/path)", scheme, scheme);
  }
  return {};
}

class Validator {
 public:
  explicit Validator(const ParseOptions& options) : options_(options) {
    std::error_code ec;
    fs::path base = fs::absolute(options.base_dir, ec);
    base_dir_ = ec ? options.base_dir.lexically_normal() : base.lexically_normal();
  }

  Result<Json> run(const Json& value) {
    if (!value.is_object()) return type_error(kRoot, "a dict", value);
    RTENV_TRY(check_utf8(value));
    // A null field is absent, whatever its name; a field only Ray acts on is checked and set
    // aside (it is no part of the env rtenv prepares).
    Json fields = Json::object();
    std::vector<std::string> ray_only;
    for (const auto& [name, field] : value.items()) {
      if (field.is_null()) continue;
      if (!is_builtin_field(name) && !is_plugin_field(name) && is_ray_only_field(name)) {
        RTENV_TRY(ray_only_value(std::string(kRoot) + "." + name, name, field));
        if (!is_empty_value(field)) ray_only.push_back(name);
        continue;
      }
      fields[name] = field;
    }
    RTENV_TRY(check_known_fields(fields));
    RTENV_TRY(check_combinations(fields));
    note_working_dir(fields);

    Json out = Json::object();
    for (const auto& [name, field] : fields.items()) {
      if (is_empty_value(field)) continue;
      std::string path = std::string(kRoot) + "." + name;
      RTENV_ASSIGN_OR_RETURN(Json normalized, field_value(name, path, field));
      if (!is_empty_value(normalized)) out[name] = std::move(normalized);
    }
    if (!ray_only.empty()) {
      warnings_.insert(warnings_.begin(),
                       fmt::format("{}: {} {} only under Ray (rtenv.ray.runtime_env passes {} to "
                                   "Ray beside the rtenv env); {} no part of this env and {} "
                                   "ignored here",
                                   kRoot, join_and(ray_only), ray_only.size() == 1 ? "acts" : "act",
                                   ray_only.size() == 1 ? "it" : "them",
                                   ray_only.size() == 1 ? "it is" : "they are",
                                   ray_only.size() == 1 ? "is" : "are"));
    }
    return out;
  }

  /// What validation noticed that the user should hear about (deprecated keys, fields only Ray
  /// acts on), one line each.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  // ---- whole-env checks -------------------------------------------------------------------

  static Result<void> check_utf8(const Json& value) {
    try {
      (void)value.dump();
    } catch (const Json::exception& e) {
      std::string reason = e.what();
      if (size_t p = reason.find("] "); p != std::string::npos) reason = reason.substr(p + 2);
      return invalid(fmt::format("{}: a string is not valid UTF-8 ({})", kRoot, reason));
    }
    return ok_result();
  }

  static Result<void> check_known_fields(const Json& value) {
    for (const auto& [name, field] : value.items()) {
      if (is_builtin_field(name) || is_plugin_field(name)) continue;
      std::vector<std::string> candidates = builtin_fields();
      for (auto& p : plugin_field_names()) candidates.push_back(std::move(p));
      if (auto best = closest_match(name, candidates, kMaxSuggestionDistance)) {
        return invalid(fmt::format("{}.{}: unknown field; did you mean '{}'?", kRoot, name, *best));
      }
      return invalid(fmt::format("{}.{}: unknown field; known fields are {}", kRoot, name,
                                 join_comma(builtin_fields())));
    }
    return ok_result();
  }

  static bool present(const Json& value, const std::string& name) {
    auto it = value.find(name);
    return it != value.end() && !is_empty_value(*it);
  }

  static Result<void> check_combinations(const Json& value) {
    std::vector<std::string> installers;
    for (const char* name : {"pip", "uv", "conda"}) {
      if (present(value, name)) installers.emplace_back(name);
    }
    if (installers.size() > 1) {
      return invalid(fmt::format("{}: at most one of pip, uv and conda may be given, got {}", kRoot,
                                 join_and(installers)));
    }
    bool image_uri = present(value, "image_uri");
    bool container = present(value, "container");
    if (image_uri && container) {
      return invalid(fmt::format(
          "{}: image_uri and container cannot both be given (container is the older form of "
          "image_uri)",
          kRoot));
    }
    if (image_uri || container) {
      std::vector<std::string> others;
      for (const auto& [name, field] : value.items()) {
        if (is_empty_value(field)) continue;
        if (may_accompany_image(name)) continue;
        others.push_back(name);
      }
      if (!others.empty()) {
        return invalid(
            fmt::format("{}: {} may only be combined with config, env_vars, working_dir, "
                        "py_modules and excludes, not {}",
                        kRoot, image_uri ? "image_uri" : "container", join_and(others)));
      }
    }
    return ok_result();
  }

  /// Ray's own checks of the fields only it acts on, where it makes any (validation.py,
  /// runtime_env.py, setup_hook.py, the nsight and rocprof_sys plugins).
  static Result<void> ray_only_value(const std::string& path, const std::string& name,
                                     const Json& v) {
    if (is_empty_value(v)) return ok_result();
    if (name == "worker_process_setup_hook" || name == "_ray_commit" || name == "_ray_release") {
      if (!v.is_string()) return type_error(path, "a string", v);
    }
    if (name == "_inject_current_ray" && !v.is_boolean()) {
      return type_error(path, "a boolean", v);
    }
    if (name == "nsight" || name == "_nsight" || name == "rocprof_sys" || name == "_rocprof_sys") {
      if (!v.is_string() && !v.is_object()) return type_error(path, "a string or a dict", v);
    }
    return ok_result();
  }

  /// Where `${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}` in a requirement line points: the env's
  /// working_dir, when it is a local directory here.
  void note_working_dir(const Json& fields) {
    auto it = fields.find("working_dir");
    if (it == fields.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      return;
    }
    const std::string& s = it->get_ref<const std::string&>();
    working_dir_given_ = s;
    if (is_uri(s) || options_.level == Level::kTask) return;
    fs::path local = resolve(s);
    std::error_code ec;
    if (fs::is_directory(local, ec)) working_dir_local_ = local;
  }

  /// `packages` with `${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}` (Ray's name) and
  /// `${RTENV_WORKING_DIR}` (rtenv's) replaced by the working_dir's absolute path; a
  /// `-r`/`--requirement` line naming a file there is replaced by the file's lines, so the env
  /// says what it installs (and a changed file is a changed env).
  Result<Json> expand_working_dir(const std::string& path, const Json& packages,
                                  int depth = 0) const {
    Json out = Json::array();
    for (const Json& item : packages) {
      std::string line = item.get<std::string>();
      if (!names_working_dir(line)) {
        out.push_back(item);
        continue;
      }
      if (!working_dir_local_) {
        if (!working_dir_given_) {
          return invalid(fmt::format(
              "{}: the line {} names the working_dir, and the env has no working_dir: give "
              "working_dir, or name the file by its own path",
              path, render_value(item)));
        }
        // An archive or a URI: read from its package once it is packed (env/fields/python.cc).
        out.push_back(item);
        continue;
      }
      for (const std::string& var : working_dir_variables()) {
        for (size_t at = line.find(var); at != std::string::npos;
             at = line.find(var, at + working_dir_local_->string().size())) {
          line.replace(at, var.size(), working_dir_local_->string());
        }
      }
      std::string file = requirement_file_of(line);
      if (file.empty()) {
        out.push_back(line);
        continue;
      }
      if (depth > 8) {
        return invalid(
            fmt::format("{}: requirements files include each other more than 8 deep", path));
      }
      RTENV_ASSIGN_OR_RETURN(Json lines, requirements(path, file));
      RTENV_ASSIGN_OR_RETURN(Json expanded, expand_working_dir(path, lines, depth + 1));
      for (Json& l : expanded) out.push_back(std::move(l));
    }
    return out;
  }

  // ---- fields -----------------------------------------------------------------------------

  Result<Json> field_value(const std::string& name, const std::string& path, const Json& v) {
    if (name == "working_dir") return path_entry(path, v, working_dir_rule());
    if (name == "py_modules") return path_list(path, v, py_module_rule());
    if (name == "java_jars") return path_list(path, v, java_jar_rule());
    if (name == "excludes") return string_list(path, v);
    if (name == "pip") return python_packages(path, v, Installer::kPip);
    if (name == "uv") return python_packages(path, v, Installer::kUv);
    if (name == "conda") return conda(path, v);
    if (name == "env_vars") return env_vars(path, v);
    if (name == "py_executable" || name == "image_uri") return string_value(path, v);
    if (name == "container") return container(path, v);
    if (name == "config") return config(path, v);
    return v;  // a registered plugin field: passed through as is
  }

  static Result<Json> string_value(const std::string& path, const Json& v) {
    if (!v.is_string()) return type_error(path, "a string", v);
    return v;
  }

  static Result<Json> boolean_value(const std::string& path, const Json& v) {
    if (!v.is_boolean()) return type_error(path, "a boolean", v);
    return v;
  }

  static Result<Json> string_list(const std::string& path, const Json& v) {
    if (!v.is_array()) return type_error(path, "a list", v);
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) return type_error(fmt::format("{}[{}]", path, i), "a string", v[i]);
    }
    return v;
  }

  Result<Json> path_list(const std::string& path, const Json& v, const PathRule& rule) {
    if (!v.is_array()) return type_error(path, "a list", v);
    Json out = Json::array();
    for (size_t i = 0; i < v.size(); ++i) {
      RTENV_ASSIGN_OR_RETURN(Json entry, path_entry(fmt::format("{}[{}]", path, i), v[i], rule));
      out.push_back(std::move(entry));
    }
    return out;
  }

  /// A URI (checked for its suffix) or a local path (made absolute; must exist).
  Result<Json> path_entry(const std::string& path, const Json& v, const PathRule& rule) {
    if (!v.is_string()) return type_error(path, "a string", v);
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) return invalid(fmt::format("{}: empty path", path));
    if (is_uri(s)) {
      if (s.rfind("rtenv://", 0) == 0) {
        // A file in the store (a wheel, a jar) is its one-file package plus the file's name.
        const std::string_view suffix = rule.packaged_file_suffix;
        size_t slash = s.find('/', std::string_view("rtenv://sha256/").size());
        bool file = !suffix.empty() && slash != std::string::npos && s.ends_with(suffix) &&
                    s.find('/', slash + 1) == std::string::npos &&
                    s.size() > slash + 1 + suffix.size() &&
                    is_valid_rtenv_uri(std::string_view(s).substr(0, slash));
        if (!is_valid_rtenv_uri(s) && !file) {
          return invalid(fmt::format(
              "{}: invalid rtenv package URI {} (expected rtenv://sha256/<64 lowercase hex "
              "digits>{})",
              path, s,
              suffix.empty() ? std::string()
                             : fmt::format(", or that followed by /<name>{} for {}", suffix,
                                           rule.packaged_file_name)));
        }
        return v;
      }
      RTENV_TRY(check_uri_scheme(path, s, rule));
      if (local_uri_path(s)) return v;
      if (!ends_with_any_ci(uri_path_part(s), rule.remote_suffixes)) {
        return invalid(fmt::format("{}: remote URI {} must name {}", path,
                                   redact_url_credentials(s), rule.remote_description));
      }
      return v;
    }
    if (options_.level == Level::kTask) {
      return invalid(fmt::format(
          "{}: local path {} is not allowed in a task or actor env: task and actor envs take only "
          "URIs (local paths are packaged at the job level)",
          path, s));
    }
    fs::path local = resolve(s);
    std::error_code ec;
    fs::file_status st = fs::status(local, ec);
    if (st.type() == fs::file_type::not_found) {
      return invalid(fmt::format("{}: local path {} does not exist", path, local.string()));
    }
    if (ec) {
      return invalid(fmt::format("{}: local path {} cannot be accessed: {}", path, local.string(),
                                 ec.message()));
    }
    bool ok = fs::is_directory(st) || (fs::is_regular_file(st) &&
                                       ends_with_any_ci(local.string(), rule.local_file_suffixes));
    if (!ok) {
      return invalid(
          fmt::format("{}: local path {} is not {}", path, local.string(), rule.local_description));
    }
    return Json(local.string());
  }

  /// kInvalidArgument unless `s` (a URI, not rtenv://) is one rtenv takes for `rule`: a
  /// well-formed http(s)://, s3:// or file:// URL, or (where the rule takes them) a local:// URI
  /// of an absolute path that is not an archive.
  static Result<void> check_uri_scheme(const std::string& path, const std::string& s,
                                       const PathRule& rule) {
    std::string scheme = s.substr(0, s.find("://"));
    std::string shown = redact_url_credentials(s);
    if (scheme == "local") {
      if (!rule.local_uris) {
        return invalid(fmt::format(
            "{}: {}: local:// URIs (a directory already on every node) are taken only by "
            "working_dir and py_modules; give a local path or a remote URI",
            path, shown));
      }
      std::string local = *local_uri_path(s);
      if (!local.starts_with("/")) {
        return invalid(fmt::format(
            "{}: {} is not a valid URI: a local:// URI names an absolute path on the node "
            "(local:///path/on/node)",
            path, shown));
      }
      if (std::string_view suffix = archive_suffix(local);
          !suffix.empty() || ends_with_ci(local, ".whl")) {
        return invalid(fmt::format(
            "{}: {} names a {} file, but a local:// directory is used in place and never "
            "unpacked; give the directory itself, or the file as a local path or remote URL",
            path, shown, suffix.empty() ? std::string_view(".whl") : suffix));
      }
      return ok_result();
    }
    if (scheme == "gs" || scheme == "gcs") {
      return invalid(fmt::format(
          "{}: rtenv does not fetch {}:// URIs ({}); {}use the object's https:// URL "
          "(https://storage.googleapis.com/<bucket>/<object>, signed if private), or "
          "s3://<bucket>/<object> with s3_endpoint set to https://storage.googleapis.com and "
          "the bucket's HMAC keys as AWS credentials",
          path, scheme, shown,
          scheme == "gcs" ? "a gcs:// package lives in one Ray cluster's own storage, so give "
                            "the local path it was made from (rtenv packs it); for Google "
                            "Cloud Storage "
                          : ""));
    }
    if (scheme == "azure" || scheme == "abfss") {
      return invalid(fmt::format(
          "{}: rtenv does not fetch {}:// URIs ({}); use the blob's https:// URL (with a SAS "
          "token in its query if it is private)",
          path, scheme, shown));
    }
    if (!is_fetched_scheme(scheme)) {
      return invalid(fmt::format(
          "{}: {} is not a valid URI: rtenv takes http://, https://, s3:// and file:// URLs{}, "
          "rtenv:// package URIs and local paths",
          path, shown, rule.local_uris ? ", local:// directories" : ""));
    }
    if (std::string why = malformed_url(scheme, s); !why.empty()) {
      return invalid(fmt::format("{}: {} is not a valid URI: {}", path, shown, why));
    }
    return ok_result();
  }

  /// `s` against base_dir, absolute and lexically normal, without a trailing separator.
  fs::path resolve(std::string_view s) const {
    fs::path p(s);
    if (p.is_relative()) p = base_dir_ / p;
    p = p.lexically_normal();
    if (!p.has_filename() && p != p.root_path()) p = p.parent_path();
    return p;
  }

  /// Reads a regular file named by a user-given path (relative to base_dir).
  Result<std::string> read_user_file(const std::string& path, std::string_view what,
                                     const std::string& name) const {
    fs::path file = resolve(name);
    std::error_code ec;
    fs::file_status st = fs::status(file, ec);
    if (st.type() == fs::file_type::not_found) {
      return invalid(fmt::format("{}: {} {} does not exist", path, what, file.string()));
    }
    if (!ec && !fs::is_regular_file(st)) {
      return invalid(fmt::format("{}: {} {} is not a file", path, what, file.string()));
    }
    Result<std::string> text = read_file(file);
    if (!text.ok()) {
      return invalid(fmt::format("{}: cannot read {}: {}", path, what, text.error().message()));
    }
    return std::move(text).value();
  }

  /// A requirements file: one requirement a line; blank lines and # comments are skipped.
  Result<Json> requirements(const std::string& path, const std::string& name) const {
    Json out = Json::array();
    if (name.empty()) return out;
    RTENV_ASSIGN_OR_RETURN(std::string text, read_user_file(path, "requirements file", name));
    for (std::string& line : requirement_lines(text)) out.push_back(std::move(line));
    return out;
  }

  Result<Json> python_packages(const std::string& path, const Json& v, Installer installer) {
    const bool pip = installer == Installer::kPip;
    const std::string check_key = pip ? "pip_check" : "uv_check";
    const std::string version_key = pip ? "pip_version" : "uv_version";
    const std::string options_key = pip ? "pip_install_options" : "uv_pip_install_options";

    Json packages;
    Json out = Json::object();
    if (v.is_array()) {
      RTENV_ASSIGN_OR_RETURN(packages, string_list(path, v));
    } else if (v.is_string()) {
      RTENV_ASSIGN_OR_RETURN(packages, requirements(path, v.get<std::string>()));
    } else if (v.is_object()) {
      // `locked` and `system_site_packages` are rtenv's own (docs/python.md).
      std::vector<std::string> allowed = {
          "packages", check_key, version_key, "locked", "system_site_packages", "python"};
      allowed.push_back(options_key);
      std::sort(allowed.begin(), allowed.end());
      for (const auto& [key, field] : v.items()) {
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
          return invalid(fmt::format("{}.{}: unknown key; allowed keys are {}", path, key,
                                     join_comma(allowed)));
        }
      }
      auto it = v.find("packages");
      if (it == v.end()) {
        return invalid(fmt::format("{}: missing required key 'packages'", path));
      }
      const std::string packages_path = path + ".packages";
      if (it->is_array()) {
        RTENV_ASSIGN_OR_RETURN(packages, string_list(packages_path, *it));
      } else if (it->is_string()) {
        RTENV_ASSIGN_OR_RETURN(packages, requirements(packages_path, it->get<std::string>()));
      } else {
        return type_error(packages_path, "a list or a string", *it);
      }
      if (auto c = v.find(check_key); c != v.end()) {
        RTENV_ASSIGN_OR_RETURN(Json check, boolean_value(path + "." + check_key, *c));
        if (check.get<bool>()) out[check_key] = true;
      }
      if (auto ver = v.find(version_key); ver != v.end()) {
        RTENV_ASSIGN_OR_RETURN(Json version, string_value(path + "." + version_key, *ver));
        if (!version.get_ref<const std::string&>().empty()) out[version_key] = version;
      }
      if (auto o = v.find(options_key); o != v.end()) {
        const std::string options_path = path + "." + options_key;
        RTENV_ASSIGN_OR_RETURN(Json options, string_list(options_path, *o));
        if (pip) {
          RTENV_TRY(
              check_pip_install_options(options_path, options.get<std::vector<std::string>>()));
        }
        // Part of the env's identity: they can change what is installed (another index).
        if (!options.empty()) out[options_key] = options;
      }
      if (auto l = v.find("locked"); l != v.end()) {
        RTENV_ASSIGN_OR_RETURN(Json locked, boolean_value(path + ".locked", *l));
        if (locked.get<bool>()) out["locked"] = true;
      }
      if (auto py = v.find("python"); py != v.end()) {
        RTENV_ASSIGN_OR_RETURN(Json python, string_value(path + ".python", *py));
        if (!python.get_ref<const std::string&>().empty()) out["python"] = python;
      }
      if (auto s = v.find("system_site_packages"); s != v.end()) {
        RTENV_ASSIGN_OR_RETURN(Json visible, boolean_value(path + ".system_site_packages", *s));
        if (!visible.get<bool>()) out["system_site_packages"] = false;
      }
    } else {
      return type_error(path, "a list, a string or a dict", v);
    }
    RTENV_ASSIGN_OR_RETURN(packages, expand_working_dir(path, packages));
    // Nothing to install means no Python env: the field is dropped like an empty one.
    if (packages.empty()) return Json(nullptr);
    out["packages"] = std::move(packages);
    return out;
  }

  Result<Json> conda(const std::string& path, const Json& v) {
    if (v.is_object()) return v;
    if (!v.is_string()) return type_error(path, "a dict or a string", v);
    const std::string& s = v.get_ref<const std::string&>();
    if (!ends_with_ci(s, ".yml") && !ends_with_ci(s, ".yaml")) {
      if (!s.starts_with("/")) return v;  // an env name
      // An existing env's directory: one that is not there is refused now, as Ray does.
      std::error_code ec;
      fs::file_status st = fs::status(s, ec);
      if (st.type() == fs::file_type::not_found) {
        return invalid(fmt::format(
            "{}: conda env directory {} does not exist; give an existing env's directory, an env "
            "name, or an environment.yml",
            path, s));
      }
      if (!ec && !fs::is_directory(st)) {
        return invalid(fmt::format("{}: conda env directory {} is not a directory", path, s));
      }
      return v;
    }
    RTENV_ASSIGN_OR_RETURN(std::string text, read_user_file(path, "conda file", s));
    std::string file = resolve(s).string();
    Result<Json> parsed = yaml_to_json(text);
    if (!parsed.ok()) {
      return invalid(fmt::format("{}: conda file {}: {}", path, file, parsed.error().message()));
    }
    if (parsed->is_null()) {
      return invalid(fmt::format(
          "{}: conda file {} holds no YAML document (it is empty or only comments); it must hold "
          "the environment's dict (channels, dependencies)",
          path, file));
    }
    if (!parsed->is_object()) {
      return invalid(fmt::format("{}: conda file {} must contain a dict, got {} ({})", path, file,
                                 render_value(*parsed), type_name(*parsed)));
    }
    return std::move(parsed).value();
  }

  static Result<Json> env_vars(const std::string& path, const Json& v) {
    if (!v.is_object()) return type_error(path, "a dict", v);
    for (const auto& [name, value] : v.items()) {
      if (name.empty() || name.find('=') != std::string::npos ||
          name.find('\0') != std::string::npos) {
        return invalid(fmt::format(
            "{}: invalid variable name {}: names must be non-empty and contain no '=' or NUL", path,
            render_value(Json(name))));
      }
      std::string var_path = path + "." + name;
      if (!value.is_string()) return type_error(var_path, "a string", value);
      if (value.get_ref<const std::string&>().find('\0') != std::string::npos) {
        return invalid(fmt::format("{}: the value contains a NUL character", var_path));
      }
    }
    return v;
  }

  Result<Json> container(const std::string& path, const Json& v) {
    if (!v.is_object()) return type_error(path, "a dict", v);
    for (const auto& [key, field] : v.items()) {
      if (key != "image" && key != "run_options" && key != "worker_path") {
        return invalid(fmt::format(
            "{}.{}: unknown key; allowed keys are image, run_options, worker_path", path, key));
      }
    }
    if (auto worker = v.find("worker_path"); worker != v.end()) {
      RTENV_TRY(string_value(path + ".worker_path", *worker));
      if (!worker->get_ref<const std::string&>().empty()) {
        warnings_.push_back(fmt::format(
            "{}.worker_path: deprecated in Ray and ignored: the worker starts as the image has it",
            path));
      }
    }
    auto image = v.find("image");
    if (image == v.end()) return invalid(fmt::format("{}: missing required key 'image'", path));
    RTENV_TRY(string_value(path + ".image", *image));
    if (image->get_ref<const std::string&>().empty()) {
      return invalid(fmt::format("{}.image: must not be empty", path));
    }
    Json out = Json::object();
    out["image"] = *image;
    if (auto run = v.find("run_options"); run != v.end()) {
      RTENV_ASSIGN_OR_RETURN(Json options, string_list(path + ".run_options", *run));
      if (!options.empty()) out["run_options"] = std::move(options);
    }
    return out;
  }

  static Result<Json> config(const std::string& path, const Json& v) {
    if (!v.is_object()) return type_error(path, "a dict", v);
    Json out = Json::object();
    for (const auto& [key, field] : v.items()) {
      std::string key_path = path + "." + key;
      if (key == "setup_timeout_seconds") {
        if (!field.is_number_integer()) return type_error(key_path, "an integer", field);
        if (field.is_number_unsigned() &&
            field.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return invalid(fmt::format("{}: {} is out of range", key_path, field.dump()));
        }
        int64_t seconds = field.get<int64_t>();
        if (seconds <= 0 && seconds != -1) {
          return invalid(
              fmt::format("{}: must be > 0 or -1 (no timeout), got {}", key_path, seconds));
        }
        out[key] = seconds;
      } else if (key == "eager_install") {
        RTENV_ASSIGN_OR_RETURN(out[key], boolean_value(key_path, field));
      } else if (key == "log_files") {
        // Ray's dashboard shows these files; rtenv keeps them for it (config is no part of the
        // env's identity).
        if (field.is_null()) continue;
        RTENV_ASSIGN_OR_RETURN(Json files, string_list(key_path, field));
        if (!files.empty()) out[key] = std::move(files);
      } else {
        return invalid(fmt::format(
            "{}: unknown key; allowed keys are eager_install, log_files, setup_timeout_seconds",
            key_path));
      }
    }
    return out;
  }

  const ParseOptions& options_;
  fs::path base_dir_;
  std::vector<std::string> warnings_;
  std::optional<std::string> working_dir_given_;  ///< as given
  std::optional<fs::path> working_dir_local_;     ///< when it is a local directory
};

}  // namespace

const std::vector<std::string>& builtin_fields() {
  static const std::vector<std::string> fields = {
      "conda",     "config", "container",     "env_vars",   "excludes", "image_uri",
      "java_jars", "pip",    "py_executable", "py_modules", "uv",       "working_dir"};
  return fields;
}

std::string type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "dict";
    case Json::value_t::binary:
      return "binary";
    case Json::value_t::discarded:
      return "discarded";
  }
  return "unknown";
}

std::string render_value(const Json& value) {
  std::string text = canonical_json(value);
  if (text.size() <= kMaxRenderedChars) return text;
  size_t cut = kMaxRenderedChars - 3;
  // Do not cut a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

Error type_error(std::string_view path, std::string_view expected, const Json& got) {
  return make_error(ErrorCode::kInvalidArgument, "{}: expected {}, got {} ({})", path, expected,
                    render_value(got), type_name(got));
}

bool is_empty_value(const Json& value) {
  if (value.is_null()) return true;
  if (value.is_string()) return value.get_ref<const std::string&>().empty();
  if (value.is_array() || value.is_object()) return value.empty();
  return false;
}

std::string valid_utf8(std::string_view text) {
  constexpr std::string_view kReplacement = "\xef\xbf\xbd";
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char b = byte(i);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b < 0x80) {
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // no overlong forms
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    }
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char c = byte(i + k);
      ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

Error sanitized(const Error& error) { return Error(error.code(), valid_utf8(error.message())); }

Result<Json> validate_and_normalize(const Json& value, const ParseOptions& options,
                                    std::vector<std::string>* warnings) {
  try {
    Validator validator(options);
    Result<Json> out = validator.run(value);
    if (out.ok() && warnings) *warnings = validator.warnings();
    return out;
  } catch (const std::exception& e) {
    // Not expected (every access is type-checked first); never let it escape the library.
    return make_error(ErrorCode::kInternal, "runtime_env: validation failed: {}", e.what());
  }
}

Json normalize_field_shape(const std::string& name, Json value) {
  if (is_empty_value(value)) return Json(nullptr);
  if ((name == "pip" || name == "uv") && (value.is_array() || value.is_object())) {
    if (value.is_array()) value = Json{{"packages", std::move(value)}};
    const bool pip = name == "pip";
    const char* check_key = pip ? "pip_check" : "uv_check";
    const char* version_key = pip ? "pip_version" : "uv_version";
    if (auto it = value.find(check_key);
        it != value.end() && it->is_boolean() && !it->get<bool>()) {
      value.erase(it);
    }
    if (auto it = value.find(version_key); it != value.end() && is_empty_value(*it)) {
      value.erase(it);
    }
    for (const char* options_key : {"uv_pip_install_options", "pip_install_options"}) {
      if (auto it = value.find(options_key); it != value.end() && is_empty_value(*it)) {
        value.erase(it);
      }
    }
    // Defaults are left out, so spelling them out does not change the env's id.
    if (auto it = value.find("locked"); it != value.end() && it->is_boolean() && !it->get<bool>()) {
      value.erase(it);
    }
    if (auto it = value.find("system_site_packages");
        it != value.end() && it->is_boolean() && it->get<bool>()) {
      value.erase(it);
    }
    if (auto it = value.find("packages"); it != value.end() && it->is_array() && it->empty()) {
      return Json(nullptr);
    }
  } else if (name == "container" && value.is_object()) {
    if (auto it = value.find("run_options"); it != value.end() && is_empty_value(*it)) {
      value.erase(it);
    }
    value.erase("worker_path");
  }
  return value;
}

}  // namespace rtenv::spec::internal
