#pragma once
// Shared helpers for the spec tests: fixture paths and the $DATA placeholder.

#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "spec/runtime_env.h"
#include "util/fs.h"

namespace rtenv::spec::testing {

/// tests/data/spec: the corpus, the golden files and the fixtures.
inline std::filesystem::path data_dir() {
  return std::filesystem::path(RTENV_TEST_DATA_DIR) / "spec";
}

/// tests/data/spec/fixtures: small files and directories the specs point at.
inline std::filesystem::path fixtures_dir() { return data_dir() / "fixtures"; }

/// Replaces every "$DATA" in `text` with the absolute path of tests/data/spec.
inline std::string expand_data(std::string text) {
  const std::string data = data_dir().string();
  constexpr std::string_view kPlaceholder = "$DATA";
  for (size_t pos = text.find(kPlaceholder); pos != std::string::npos;
       pos = text.find(kPlaceholder, pos + data.size())) {
    text.replace(pos, kPlaceholder.size(), data);
  }
  return text;
}

/// expand_data applied to every string (keys included) in a JSON value.
inline Json expand_data(const Json& value) {
  if (value.is_string()) return Json(expand_data(value.get<std::string>()));
  if (value.is_array()) {
    Json out = Json::array();
    for (const Json& item : value) out.push_back(expand_data(item));
    return out;
  }
  if (value.is_object()) {
    Json out = Json::object();
    for (const auto& [key, item] : value.items()) out[expand_data(key)] = expand_data(item);
    return out;
  }
  return value;
}

/// Parse options for a job env whose relative paths resolve in the fixtures directory.
inline ParseOptions job_options() {
  ParseOptions options;
  options.level = Level::kJob;
  options.base_dir = fixtures_dir();
  return options;
}

inline ParseOptions task_options() {
  ParseOptions options = job_options();
  options.level = Level::kTask;
  return options;
}

/// Reads a file the test needs; fails the test (and returns "") if it cannot.
inline std::string read_test_file(const std::filesystem::path& path) {
  Result<std::string> text = read_file(path);
  EXPECT_TRUE(text.ok()) << (text.ok() ? "" : text.error().message());
  return text.ok() ? std::move(text).value() : std::string();
}

}  // namespace rtenv::spec::testing
