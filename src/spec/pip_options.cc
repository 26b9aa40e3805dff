// pip's install options and their uv equivalents (spec/pip_options.h).

#include "spec/pip_options.h"

#include <fmt/format.h>

#include "spec/internal.h"

namespace rtenv::spec {
namespace {

struct Given {
  const PipInstallOption* option = nullptr;
  bool inline_value = false;  ///< "--name=value"
  std::string value;
};

/// The option `item` names, nullptr if none.
const PipInstallOption* find_option(std::string_view item, bool* inline_value, std::string* value) {
  std::string_view name = item;
  *inline_value = false;
  if (item.starts_with("--")) {
    if (size_t eq = item.find('='); eq != std::string_view::npos) {
      name = item.substr(0, eq);
      *inline_value = true;
      *value = std::string(item.substr(eq + 1));
    }
  }
  for (const PipInstallOption& o : pip_install_options_known()) {
    if (name == o.name || (!o.alias.empty() && name == o.alias)) return &o;
  }
  return nullptr;
}

std::string known_names() {
  std::string out;
  for (const PipInstallOption& o : pip_install_options_known()) {
    if (!out.empty()) out += ", ";
    out += o.name;
  }
  return out;
}

/// The checked list, option by option.
std::vector<Given> split(const std::vector<std::string>& options) {
  std::vector<Given> out;
  for (size_t i = 0; i < options.size(); ++i) {
    Given g;
    g.option = find_option(options[i], &g.inline_value, &g.value);
    if (!g.option) continue;  // not reachable for a checked list
    if (g.option->takes_value && !g.inline_value && i + 1 < options.size()) g.value = options[++i];
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

const std::vector<PipInstallOption>& pip_install_options_known() {
  static const std::vector<PipInstallOption> options = {
      // Where packages come from: the same for both.
      {"--index-url", "-i", true, "--index-url"},
      {"--extra-index-url", "", true, "--extra-index-url"},
      {"--no-index", "", false, "--no-index"},
      {"--find-links", "-f", true, "--find-links"},
      {"--trusted-host", "", true, "--allow-insecure-host"},
      // What is installed.
      {"--pre", "", false, "--prerelease=allow"},
      {"--no-deps", "", false, "--no-deps"},
      {"--no-binary", "", true, "--no-binary"},
      {"--only-binary", "", true, "--only-binary"},
      {"--no-build-isolation", "", false, "--no-build-isolation"},
      {"--no-cache-dir", "", false, "--no-cache"},
      // How pip talks or retries, or what a fresh virtualenv makes moot: nothing for uv.
      {"--disable-pip-version-check", "", false, ""},
      {"--no-input", "", false, ""},
      {"--no-color", "", false, ""},
      {"--quiet", "-q", false, ""},
      {"--verbose", "-v", false, ""},
      {"--progress-bar", "", true, ""},
      {"--root-user-action", "", true, ""},
      {"--no-warn-script-location", "", false, ""},
      {"--no-warn-conflicts", "", false, ""},
      {"--timeout", "", true, ""},
      {"--retries", "", true, ""},
      {"--upgrade", "-U", false, ""},
      {"--force-reinstall", "", false, ""},
      {"--ignore-installed", "-I", false, ""},
  };
  return options;
}

Result<void> check_pip_install_options(std::string_view path,
                                       const std::vector<std::string>& options) {
  for (size_t i = 0; i < options.size(); ++i) {
    const std::string& item = options[i];
    const std::string where = fmt::format("{}[{}]", path, i);
    if (!item.starts_with("-")) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: expected a pip option (starting with '-'), got {}", where,
                        internal::render_value(Json(item)));
    }
    bool inline_value = false;
    std::string value;
    const PipInstallOption* o = find_option(item, &inline_value, &value);
    if (!o) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: {} is not a pip option rtenv takes: it installs with uv or pip, "
                        "and takes the options both can honour ({}); give the others' effect "
                        "another way (docs/runtime_env.md §7e)",
                        where, internal::render_value(Json(item)), known_names());
    }
    if (o->takes_value && !inline_value) {
      if (i + 1 >= options.size()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "{}: {} needs a value: give it as the next item, or as {}=VALUE", where,
                          o->name, o->name);
      }
      ++i;
    } else if (!o->takes_value && inline_value) {
      return make_error(ErrorCode::kInvalidArgument, "{}: {} takes no value, got {}", where,
                        o->name, internal::render_value(Json(item)));
    }
  }
  return ok_result();
}

std::vector<std::string> pip_install_args(const std::vector<std::string>& options, bool uv,
                                          bool install) {
  std::vector<std::string> out;
  for (const Given& g : split(options)) {
    const PipInstallOption& o = *g.option;
    if (install && o.name == "--no-deps") continue;
    if (!uv) {
      out.push_back(std::string(o.name));
      if (o.takes_value) out.push_back(g.value);
      continue;
    }
    if (o.uv.empty()) continue;
    out.push_back(std::string(o.uv));
    if (o.takes_value) out.push_back(g.value);
  }
  return out;
}

}  // namespace rtenv::spec
