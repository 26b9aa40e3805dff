#include "env/home.h"

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "util/digest.h"
#include "util/fs.h"

namespace rtenv::env {

Result<Home> Home::at(const fs::path& root) {
  if (!root.is_absolute()) {
    return make_error(ErrorCode::kInvalidArgument, "RTENV_HOME must be an absolute path, got '{}'",
                      root.string());
  }
  Home home{root.lexically_normal()};
  for (const auto& dir : {home.store(), home.pkgs(), home.index(), home.tmp(), home.logs(),
                          home.pyenvs(), home.python(), home.locks()}) {
    RTENV_TRY(make_dirs(dir));
  }
  return home;
}

Result<Home> Home::from_environment() {
  if (const char* h = std::getenv("RTENV_HOME"); h && *h) return at(h);
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return at(fs::path(x) / "rtenv");
  if (const char* h = std::getenv("HOME"); h && *h) return at(fs::path(h) / ".cache" / "rtenv");
  return Error(ErrorCode::kInvalidArgument, "set RTENV_HOME (neither it nor HOME is set)");
}

fs::path Home::index_for(const fs::path& root) const {
  return index() / (Digest::of(root.string()).hex() + ".idx");
}

std::string Home::store_url() const {
  if (const char* s = std::getenv("RTENV_STORE"); s && *s) return s;
  // Every command and the agent read the same file, so one line there points a node at the
  // cluster's store. An unreadable file is the agent's to report (it reads it too, strictly).
  if (auto text = read_file(root / "config.json")) {
    auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("store") && j["store"].is_string() &&
        !j["store"].get<std::string>().empty()) {
      return j["store"].get<std::string>();
    }
  }
  return "file://" + store().string();
}

}  // namespace rtenv::env
