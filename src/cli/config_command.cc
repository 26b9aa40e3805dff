// `rtenv config show`: every setting, its effective value and where it came from.

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace rtenv::cli {

namespace {

const char* const kSizeKeys[] = {"cache_limit", "cache_low", "max_package_size", "warn_file_size"};

std::string display(std::string_view key, const nlohmann::json& v) {
  if (v.is_null()) return "(unset)";
  for (const char* k : kSizeKeys) {
    if (key == k) return config::format_size(v.get<uint64_t>());
  }
  if (key == "kind_limits") {
    nlohmann::json shown = nlohmann::json::object();
    for (const auto& [kind, bytes] : v.items()) {
      shown[kind] = config::format_size(bytes.get<uint64_t>());
    }
    return shown.dump();
  }
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(v.get<int64_t>())) {
    return std::to_string(v.get<int64_t>());
  }
  return v.dump();
}

}  // namespace

int config_show_command(bool json) {
  const config::Config& c = process_config();
  if (json) {
    std::printf("%s\n", c.to_json().dump(2).c_str());
    return 0;
  }
  size_t width = 0;
  for (const auto& key : config::Config::keys()) width = std::max(width, key.size());
  for (const auto& key : config::Config::keys()) {
    std::printf("%s\n", fmt::format("{:<{}}  {}  ({})", key, width,
                                    display(key, c.shown_value(key)), c.origin(key).describe())
                            .c_str());
  }
  return 0;
}

}  // namespace rtenv::cli
