#include "config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "spec/runtime_env.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/size.h"
#include "util/suggest.h"

namespace rtenv::config {

using nlohmann::json;

namespace {

enum class Type {
  kString,        // a non-empty string (unset: null)
  kSize,          // bytes: a number, or a string such as "10G"
  kSeconds,       // a number >= 0
  kWholeSeconds,  // an integer >= 0
  kBool,
  kKindLimits,  // {"<kind>": size}
  kPlugins,     // [{"field", "exec", "priority"}]
  kStringList,  // a list of strings in the file; comma-separated in a variable
};

// One key: its name in config.json (if it may be set there), its variables (the first set one
// wins), its flag, its type and whether the agent acts on it (part of the fingerprint).
struct KeyDef {
  const char* key;
  std::vector<const char*> variables;
  const char* flag;
  bool in_file;
  Type type;
  bool agent;
  std::vector<const char*> choices;  // the values a kString may take; empty: any
};

const std::vector<KeyDef>& key_defs() {
  static const std::vector<KeyDef> defs = {
      {"home", {"RTENV_HOME"}, nullptr, false, Type::kString, false, {}},
      {"store", {"RTENV_STORE"}, "--store", true, Type::kString, true, {}},
      {"store_token", {"RTENV_STORE_TOKEN"}, nullptr, false, Type::kString, true, {}},
      {"ca_bundle", {"RTENV_CA_BUNDLE"}, nullptr, true, Type::kString, true, {}},
      {"s3_endpoint",
       {"RTENV_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
       nullptr,
       true,
       Type::kString,
       true,
       {}},
      {"s3_touch_interval_seconds",
       {"RTENV_S3_TOUCH_INTERVAL"},
       nullptr,
       true,
       Type::kSeconds,
       true,
       {}},
      {"cache_limit", {"RTENV_CACHE_LIMIT"}, nullptr, true, Type::kSize, true, {}},
      {"cache_low", {"RTENV_CACHE_LOW"}, nullptr, true, Type::kSize, true, {}},
      {"kind_limits", {}, nullptr, true, Type::kKindLimits, true, {}},
      {"failure_ttl_seconds", {"RTENV_FAILURE_TTL"}, nullptr, true, Type::kSeconds, true, {}},
      {"python", {"RTENV_PYTHON"}, nullptr, true, Type::kString, true, {}},
      {"installer", {"RTENV_INSTALLER"}, nullptr, true, Type::kString, true, {"auto", "uv", "pip"}},
      {"uv", {"RTENV_UV"}, nullptr, true, Type::kString, true, {}},
      {"share_builds",
       {"RTENV_SHARE_BUILDS"},
       nullptr,
       true,
       Type::kString,
       true,
       {"auto", "1", "0"}},
      {"build_lease_seconds",
       {"RTENV_BUILD_LEASE_SECONDS"},
       nullptr,
       true,
       Type::kSeconds,
       true,
       {}},
      {"build_signing_key", {"RTENV_BUILD_SIGNING_KEY"}, nullptr, true, Type::kString, true, {}},
      {"build_verify_key", {"RTENV_BUILD_VERIFY_KEY"}, nullptr, true, Type::kString, true, {}},
      {"agent_idle_exit_seconds",
       {"RTENV_AGENT_IDLE_EXIT"},
       nullptr,
       true,
       Type::kWholeSeconds,
       false,
       {}},
      {"no_agent", {"RTENV_NO_AGENT"}, nullptr, true, Type::kBool, false, {}},
      {"max_package_size",
       {"RTENV_MAX_PACKAGE_SIZE"},
       "--max-package-size",
       true,
       Type::kSize,
       false,
       {}},
      {"warn_file_size", {"RTENV_WARN_FILE_SIZE"}, nullptr, true, Type::kSize, false, {}},
      // Not in the fingerprint: where metrics are served does not change what the agent does,
      // and an agent started with the flag must not look misconfigured to its clients.
      {"metrics_listen",
       {"RTENV_METRICS_LISTEN"},
       "--metrics-listen",
       true,
       Type::kString,
       false,
       {}},
      {"plugins", {"RTENV_PLUGINS"}, nullptr, true, Type::kPlugins, true, {}},
      // The submitting side's: where images are pulled from (docs/images.md).
      {"insecure_registries",
       {"RTENV_INSECURE_REGISTRIES"},
       nullptr,
       true,
       Type::kStringList,
       false,
       {}},
      {"registry_auth_file",
       {"RTENV_REGISTRY_AUTH_FILE", "REGISTRY_AUTH_FILE"},
       nullptr,
       true,
       Type::kString,
       false,
       {}},
  };
  return defs;
}

const KeyDef& def_of(std::string_view key) {
  for (const auto& d : key_defs()) {
    if (key == d.key) return d;
  }
  // A caller's bug: every key is in the table.
  throw std::logic_error("unknown config key " + std::string(key));
}

// "; did you mean 'x'?" for the closest of `known`, else " (known: a, b, c)".
std::string suggestion(std::string_view typed, const std::vector<std::string>& known) {
  if (auto best = closest_match(typed, known)) return fmt::format("; did you mean '{}'?", *best);
  return fmt::format(" (known: {})", fmt::join(known, ", "));
}

Error invalid(std::string_view key, const Origin& origin, std::string_view problem) {
  return make_error(ErrorCode::kInvalidArgument, "{} (from {}): {}", key, origin.describe(),
                    problem);
}

std::string shown(const json& j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// The 1-based line and column of the byte at `offset` (0-based) of `text`.
std::pair<size_t, size_t> line_column(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') ++line, line_start = i + 1;
  }
  return {line, offset - line_start + 1};
}

// Parses JSON, naming `where` and the line and column of a syntax error.
Result<json> parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte counts the characters read, the offending one included.
    auto [line, column] = line_column(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string reason = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error ..."
    if (size_t p = reason.find(": "); p != std::string::npos) reason = reason.substr(p + 2);
    return make_error(ErrorCode::kInvalidArgument, "{}:{}:{}: {}", where, line, column, reason);
  }
}

// A value from a variable (text) or the file (JSON), normalized for its type.
Result<json> normalize(const KeyDef& def, const json& raw, bool from_text, const Origin& origin) {
  auto fail = [&](std::string_view problem) { return invalid(def.key, origin, problem); };
  switch (def.type) {
    case Type::kString: {
      std::string v;
      if (raw.is_string()) {
        v = raw.get<std::string>();
      } else if (raw.is_boolean() && def.key == std::string_view("share_builds")) {
        v = raw.get<bool>() ? "1" : "0";
      } else {
        return fail(fmt::format("expected a string, got {}", shown(raw)));
      }
      if (v.empty()) return json(nullptr);
      if (!def.choices.empty() &&
          std::find(def.choices.begin(), def.choices.end(), v) == def.choices.end()) {
        return fail(fmt::format("must be {}, got '{}'", fmt::join(def.choices, ", "), v));
      }
      return json(v);
    }
    case Type::kSize: {
      if (raw.is_number_unsigned()) return raw;
      if (raw.is_number_integer() && raw.get<int64_t>() >= 0) return json(raw.get<uint64_t>());
      if (!raw.is_string()) {
        return fail(fmt::format("expected a size such as \"10G\", got {}", shown(raw)));
      }
      auto size = parse_size(raw.get<std::string>());
      if (!size) return fail(size.error().message());
      return json(*size);
    }
    case Type::kSeconds:
    case Type::kWholeSeconds: {
      bool whole = def.type == Type::kWholeSeconds;
      json v = raw;
      if (from_text) {
        const std::string text = raw.get<std::string>();
        char* end = nullptr;
        errno = 0;
        double d = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || errno != 0) {
          return fail(fmt::format("expected a number of seconds, got '{}'", text));
        }
        v = d;
      }
      if (!v.is_number())
        return fail(fmt::format("expected a number of seconds, got {}", shown(v)));
      double d = v.get<double>();
      if (!std::isfinite(d))
        return fail(fmt::format("expected a number of seconds, got {}", shown(v)));
      if (d < 0) return fail(fmt::format("must not be negative, got {}", shown(v)));
      // A week and more is "never" for every timing rtenv has; bigger values only overflow.
      if (d > 1e9) return fail(fmt::format("must be at most 1000000000 s, got {}", shown(v)));
      if (whole) {
        if (d != static_cast<double>(static_cast<int64_t>(d))) {
          return fail(fmt::format("expected a whole number of seconds, got {}", shown(v)));
        }
        return json(static_cast<int64_t>(d));
      }
      return json(d);
    }
    case Type::kBool: {
      if (from_text) {
        const std::string text = raw.get<std::string>();
        return json(!text.empty() && text != "0");
      }
      if (!raw.is_boolean()) return fail(fmt::format("expected true or false, got {}", shown(raw)));
      return raw;
    }
    case Type::kKindLimits: {
      if (!raw.is_object()) {
        return fail(
            fmt::format("expected an object {{\"<kind>\": \"<size>\"}}, got {}", shown(raw)));
      }
      json out = json::object();
      for (const auto& [kind, v] : raw.items()) {
        json size = v;
        if (size.is_number_integer() && size.get<int64_t>() >= 0) {
          out[kind] = size.get<uint64_t>();
          continue;
        }
        if (!size.is_string()) {
          return invalid(fmt::format("kind_limits.{}", kind), origin,
                         fmt::format("expected a size such as \"10G\", got {}", shown(size)));
        }
        auto bytes = parse_size(size.get<std::string>());
        if (!bytes)
          return invalid(fmt::format("kind_limits.{}", kind), origin, bytes.error().message());
        out[kind] = *bytes;
      }
      return out;
    }
    case Type::kStringList: {
      json out = json::array();
      if (from_text) {
        std::string text = raw.get<std::string>();
        size_t start = 0;
        while (start <= text.size()) {
          size_t comma = text.find(',', start);
          if (comma == std::string::npos) comma = text.size();
          std::string item = text.substr(start, comma - start);
          while (!item.empty() && item.back() == ' ') item.pop_back();
          while (!item.empty() && item.front() == ' ') item.erase(0, 1);
          if (!item.empty()) out.push_back(item);
          start = comma + 1;
        }
        return out;
      }
      if (!raw.is_array())
        return fail(fmt::format("expected a list of strings, got {}", shown(raw)));
      for (const auto& item : raw) {
        if (!item.is_string()) {
          return fail(fmt::format("expected a list of strings, got {}", shown(raw)));
        }
        out.push_back(item);
      }
      return out;
    }
    case Type::kPlugins: {
      json list = raw;
      if (from_text) {
        RTENV_ASSIGN_OR_RETURN(list, parse_json(raw.get<std::string>(), origin.where));
      }
      if (!list.is_array()) {
        return fail(fmt::format("expected a list [{{\"field\": ..., \"exec\": ...}}], got {}",
                                shown(list)));
      }
      static const std::vector<std::string> entry_keys = {"field", "exec", "priority"};
      json out = json::array();
      std::set<std::string> fields;
      for (size_t i = 0; i < list.size(); ++i) {
        const json& p = list[i];
        std::string at = fmt::format("plugins[{}]", i);
        if (!p.is_object()) {
          return invalid(at, origin, fmt::format("expected an object, got {}", shown(p)));
        }
        for (const auto& [k, v] : p.items()) {
          if (std::find(entry_keys.begin(), entry_keys.end(), k) == entry_keys.end()) {
            return invalid(at, origin,
                           fmt::format("unknown key '{}'{}", k, suggestion(k, entry_keys)));
          }
        }
        if (!p.contains("field") || !p["field"].is_string() ||
            p["field"].get<std::string>().empty()) {
          return invalid(at + ".field", origin, "expected the runtime_env field's name (a string)");
        }
        std::string field = p["field"].get<std::string>();
        bool name_ok = std::all_of(field.begin(), field.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
        });
        if (!name_ok) {
          return invalid(at + ".field", origin,
                         fmt::format("'{}' is not a field name (letters, digits, _ and -)", field));
        }
        if (spec::is_builtin_field(field)) {
          return invalid(at + ".field", origin,
                         fmt::format("'{}' is a built-in field; a plugin adds new ones", field));
        }
        if (!fields.insert(field).second) {
          return invalid(at + ".field", origin,
                         fmt::format("'{}' has another plugin already", field));
        }
        if (!p.contains("exec") || !p["exec"].is_string() ||
            !fs::path(p["exec"].get<std::string>()).is_absolute()) {
          return invalid(at + ".exec", origin,
                         fmt::format("expected the plugin program's absolute path, got {}",
                                     p.contains("exec") ? shown(p["exec"]) : "nothing"));
        }
        int64_t priority = 10;
        if (p.contains("priority")) {
          if (!p["priority"].is_number_integer()) {
            return invalid(at + ".priority", origin,
                           fmt::format("expected an integer, got {}", shown(p["priority"])));
          }
          priority = p["priority"].get<int64_t>();
          if (priority < 0 || priority > 1'000'000) {
            return invalid(at + ".priority", origin,
                           fmt::format("expected 0 to 1000000, got {}", priority));
          }
        }
        out.push_back({{"field", field}, {"exec", p["exec"]}, {"priority", priority}});
      }
      return out;
    }
  }
  return fail("unsupported type");
}

std::string default_home(const Lookup& env, Origin* origin) {
  auto get = [&](const char* name) -> std::string {
    auto v = env ? env(name) : std::nullopt;
    return v ? *v : std::string();
  };
  if (std::string h = get("RTENV_HOME"); !h.empty()) {
    *origin = {Origin::Kind::kVariable, "RTENV_HOME"};
    return h;
  }
  *origin = {};
  if (std::string x = get("XDG_CACHE_HOME"); !x.empty()) return (fs::path(x) / "rtenv").string();
  if (std::string h = get("HOME"); !h.empty()) return (fs::path(h) / ".cache" / "rtenv").string();
  return {};
}

}  // namespace

Lookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string(v);
    return std::nullopt;
  };
}

Lookup environment_of(std::map<std::string, std::string> variables) {
  return [vars = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string Origin::describe() const {
  switch (kind) {
    case Kind::kDefault:
      return "default";
    case Kind::kFile:
    case Kind::kVariable:
    case Kind::kFlag:
      return where;
  }
  return where;
}

std::string format_size(uint64_t bytes) {
  static const std::pair<const char*, int> units[] = {{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}};
  for (const auto& [unit, shift] : units) {
    uint64_t one = uint64_t{1} << shift;
    if (bytes >= one && bytes % one == 0) return fmt::format("{}{}", bytes / one, unit);
  }
  return std::to_string(bytes);
}

Config Config::defaults(const fs::path& root) {
  Config c;
  for (const auto& d : key_defs()) c.entries_[d.key] = Entry{json(nullptr), Origin{}};
  c.entries_["home"].value = root.lexically_normal().string();
  c.entries_["store"].value = "file://" + (root.lexically_normal() / "store").string();
  c.entries_["cache_limit"].value = uint64_t{10} << 30;
  c.entries_["cache_low"].value = (uint64_t{10} << 30) / 10 * 8;
  c.entries_["kind_limits"].value = json::object();
  c.entries_["failure_ttl_seconds"].value = 10.0;
  c.entries_["python"].value = "python3";
  c.entries_["installer"].value = "auto";
  c.entries_["share_builds"].value = "auto";
  c.entries_["build_lease_seconds"].value = 60.0;
  c.entries_["s3_touch_interval_seconds"].value = 86400.0;
  c.entries_["agent_idle_exit_seconds"].value = int64_t{600};
  c.entries_["no_agent"].value = false;
  c.entries_["max_package_size"].value = uint64_t{2} << 30;
  c.entries_["warn_file_size"].value = uint64_t{100} << 20;
  c.entries_["plugins"].value = json::array();
  c.entries_["insecure_registries"].value = json::array();
  return c;
}

Result<Config> Config::from_environment(const Flags& flags) {
  return load(process_environment(), flags);
}

Result<Config> Config::load(const Lookup& env, const Flags& flags) {
  Origin home_origin;
  std::string home = default_home(env, &home_origin);
  if (home.empty()) {
    return Error(ErrorCode::kInvalidArgument, "set RTENV_HOME (neither it nor HOME is set)");
  }
  if (!fs::path(home).is_absolute()) {
    return make_error(ErrorCode::kInvalidArgument, "RTENV_HOME must be an absolute path, got '{}'",
                      home);
  }
  Config c = defaults(home);
  c.entries_["home"].origin = home_origin;
  // Where docker and podman keep registry credentials, unless a variable or the file says.
  if (auto h = env("HOME"); h && !h->empty()) {
    c.entries_["registry_auth_file"].value = (fs::path(*h) / ".docker" / "config.json").string();
  }
  bool cache_low_given = false;
  auto set = [&](const KeyDef& d, json value, const Origin& origin) {
    if (d.key == std::string_view("cache_low")) cache_low_given = true;
    c.entries_[d.key] = Entry{std::move(value), origin};
  };

  // The file.
  fs::path file = fs::path(home) / "config.json";
  std::error_code ec;
  if (fs::exists(file, ec)) {
    RTENV_ASSIGN_OR_RETURN(std::string text, read_file(file));
    RTENV_ASSIGN_OR_RETURN(json j, parse_json(text, file.string()));
    if (!j.is_object()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: expected a JSON object {{\"key\": value}}", file.string());
    }
    std::vector<std::string> file_keys;
    for (const auto& d : key_defs()) {
      if (d.in_file) file_keys.emplace_back(d.key);
    }
    Origin origin{Origin::Kind::kFile, file.string()};
    for (const auto& [key, raw] : j.items()) {
      auto it = std::find(file_keys.begin(), file_keys.end(), key);
      if (it == file_keys.end()) {
        for (const auto& d : key_defs()) {
          if (key == d.key) {
            return make_error(ErrorCode::kInvalidArgument,
                              "{}: '{}' cannot be set in the file (set {} instead)", file.string(),
                              key, d.variables.front());
          }
        }
        return make_error(ErrorCode::kInvalidArgument, "{}: unknown key '{}'{}", file.string(), key,
                          suggestion(key, file_keys));
      }
      const KeyDef& d = def_of(key);
      RTENV_ASSIGN_OR_RETURN(json v, normalize(d, raw, /*from_text=*/false, origin));
      if (!v.is_null()) set(d, std::move(v), origin);
    }
  }

  // The variables: the first set (non-empty) one of each key's.
  for (const auto& d : key_defs()) {
    if (d.key == std::string_view("home") || !env) continue;
    for (const char* name : d.variables) {
      auto raw = env(name);
      if (!raw || raw->empty()) continue;
      Origin origin{Origin::Kind::kVariable, name};
      RTENV_ASSIGN_OR_RETURN(json v, normalize(d, json(*raw), /*from_text=*/true, origin));
      if (!v.is_null()) set(d, std::move(v), origin);
      break;
    }
  }

  // The flags.
  auto flag = [&](const char* key, const std::optional<std::string>& value) -> Result<void> {
    if (!value || value->empty()) return ok_result();
    const KeyDef& d = def_of(key);
    Origin origin{Origin::Kind::kFlag, d.flag};
    RTENV_ASSIGN_OR_RETURN(json v, normalize(d, json(*value), /*from_text=*/true, origin));
    if (!v.is_null()) set(d, std::move(v), origin);
    return ok_result();
  };
  RTENV_TRY(flag("store", flags.store));
  RTENV_TRY(flag("max_package_size", flags.max_package_size));
  RTENV_TRY(flag("metrics_listen", flags.metrics_listen));

  // Derived values.
  uint64_t limit = c.cache_limit();
  if (!cache_low_given) {
    c.entries_["cache_low"] = Entry{json(limit / 10 * 8), Origin{}};
  }
  for (const auto& p : c.entries_["plugins"].value) {
    c.plugins_.push_back({p["field"].get<std::string>(), p["exec"].get<std::string>(),
                          p["priority"].get<int64_t>()});
  }
  // Kinds are known only now that the plugins are.
  std::vector<std::string> kinds = {"package", "python", "conda", "image"};
  for (const auto& p : c.plugins_) kinds.push_back("plugin:" + p.field);
  const Entry& limits = c.entries_["kind_limits"];
  for (const auto& [kind, v] : limits.value.items()) {
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
      return invalid("kind_limits", limits.origin,
                     fmt::format("unknown kind '{}'{}", kind, suggestion(kind, kinds)));
    }
  }
  return c;
}

const std::vector<std::string>& Config::keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& d : key_defs()) out.emplace_back(d.key);
    return out;
  }();
  return names;
}

const Config::Entry& Config::entry(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) throw std::logic_error("unknown config key " + std::string(key));
  return it->second;
}

namespace {
std::optional<std::string> opt_string(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<std::string>();
}
}  // namespace

fs::path Config::home() const { return entry("home").value.get<std::string>(); }
std::string Config::store() const { return entry("store").value.get<std::string>(); }
bool Config::store_is_home_default() const {
  return store() == "file://" + (home() / "store").string();
}
std::optional<std::string> Config::store_token() const {
  return opt_string(entry("store_token").value);
}
std::optional<std::string> Config::ca_bundle() const {
  return opt_string(entry("ca_bundle").value);
}
std::vector<std::string> Config::insecure_registries() const {
  std::vector<std::string> out;
  for (const auto& r : entry("insecure_registries").value) out.push_back(r.get<std::string>());
  return out;
}
std::optional<std::string> Config::registry_auth_file() const {
  return opt_string(entry("registry_auth_file").value);
}
std::optional<std::string> Config::s3_endpoint() const {
  return opt_string(entry("s3_endpoint").value);
}
uint64_t Config::cache_limit() const { return entry("cache_limit").value.get<uint64_t>(); }
uint64_t Config::cache_low() const {
  return std::min(entry("cache_low").value.get<uint64_t>(), cache_limit());
}
std::map<std::string, uint64_t> Config::kind_limits() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [k, v] : entry("kind_limits").value.items()) out[k] = v.get<uint64_t>();
  return out;
}
double Config::failure_ttl_seconds() const {
  return entry("failure_ttl_seconds").value.get<double>();
}
std::string Config::python() const { return entry("python").value.get<std::string>(); }
std::string Config::installer() const { return entry("installer").value.get<std::string>(); }
std::optional<std::string> Config::uv() const { return opt_string(entry("uv").value); }
std::string Config::share_builds() const { return entry("share_builds").value.get<std::string>(); }
double Config::s3_touch_interval_seconds() const {
  return entry("s3_touch_interval_seconds").value.get<double>();
}

double Config::build_lease_seconds() const {
  return entry("build_lease_seconds").value.get<double>();
}
std::optional<std::string> Config::build_signing_key() const {
  return opt_string(entry("build_signing_key").value);
}
std::optional<std::string> Config::build_verify_key() const {
  return opt_string(entry("build_verify_key").value);
}
int64_t Config::agent_idle_exit_seconds() const {
  return entry("agent_idle_exit_seconds").value.get<int64_t>();
}
bool Config::no_agent() const { return entry("no_agent").value.get<bool>(); }
uint64_t Config::max_package_size() const {
  return entry("max_package_size").value.get<uint64_t>();
}
uint64_t Config::warn_file_size() const { return entry("warn_file_size").value.get<uint64_t>(); }
std::optional<std::string> Config::metrics_listen() const {
  return opt_string(entry("metrics_listen").value);
}

const Origin& Config::origin(std::string_view key) const { return entry(key).origin; }

json Config::shown_value(std::string_view key) const {
  const json& v = entry(key).value;
  if (key == "store_token" && !v.is_null()) return "********";
  if (key == "cache_low") return cache_low();
  return v;
}

json Config::to_json() const {
  json out = json::object();
  for (const auto& d : key_defs()) {
    out[d.key] = {{"value", shown_value(d.key)}, {"origin", origin(d.key).describe()}};
  }
  return out;
}

json Config::agent_values() const {
  json out = json::object();
  for (const auto& d : key_defs()) {
    if (!d.agent) continue;
    json v = entry(d.key).value;
    if (std::string_view(d.key) == "store_token" && !v.is_null()) {
      v = "sha256:" + Digest::of(v.get<std::string>()).hex();
    }
    if (std::string_view(d.key) == "cache_low") v = cache_low();
    out[d.key] = std::move(v);
  }
  return out;
}

std::string Config::fingerprint() const { return Digest::of(agent_values().dump()).hex(); }

std::vector<std::string> Config::differing_keys(const json& a, const json& b) {
  std::set<std::string> keys;
  if (a.is_object()) {
    for (const auto& [k, v] : a.items()) keys.insert(k);
  }
  if (b.is_object()) {
    for (const auto& [k, v] : b.items()) keys.insert(k);
  }
  std::vector<std::string> out;
  for (const auto& k : keys) {
    json va = a.is_object() && a.contains(k) ? a[k] : json(nullptr);
    json vb = b.is_object() && b.contains(k) ? b[k] : json(nullptr);
    if (va != vb) out.push_back(k);
  }
  return out;
}

}  // namespace rtenv::config
