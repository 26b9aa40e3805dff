#include "env/tool_caches.h"

#include <cstdio>

#include <fmt/format.h>

#include "env/package_cache.h"   // disk_usage
#include "env/published_dirs.h"  // remove_evicted
#include "util/fs.h"
#include "util/process.h"

namespace rtenv::env {

std::vector<ToolCache> measure_tool_caches(const Home& home,
                                           std::set<std::pair<uint64_t, uint64_t>>* seen) {
  std::vector<ToolCache> out;
  for (const auto& [name, dir] : {std::pair<const char*, fs::path>{"uv", home.uv_cache()},
                                  {"pip", home.pip_cache()},
                                  {"conda", home.conda_pkgs()}}) {
    ToolCache c;
    c.name = name;
    c.dir = dir;
    out.push_back(std::move(c));
  }
  for (auto& c : out) {
    std::error_code ec;
    if (fs::is_directory(c.dir, ec)) c.bytes_before = disk_usage(c.dir, seen);
    c.bytes_after = c.bytes_before;
  }
  return out;
}

namespace {

Result<void> prune_uv(const Home& home, const fs::path& dir) {
  auto uv = home.config().uv() ? find_program(*home.config().uv()) : find_program("uv");
  if (!uv) {
    return make_error(ErrorCode::kNotFound, "no uv to prune it with (uv is not on PATH, RTENV_UV)");
  }
  ProcessSpec spec;
  spec.argv = {uv->string(), "cache", "prune", "--cache-dir", dir.string()};
  spec.env["NO_COLOR"] = "1";
  spec.timeout_ms = 10 * 60 * 1000;
  RTENV_ASSIGN_OR_RETURN(ProcessOutcome outcome, run_process(spec));
  if (!outcome.success()) {
    return make_error(ErrorCode::kIo, "uv cache prune --cache-dir {} failed ({}): {}", dir.string(),
                      outcome.describe(), outcome.err);
  }
  return ok_result();
}

// Renamed aside in one call, then deleted with the evicted trees.
Result<void> empty_cache(const Home& home, const fs::path& dir) {
  RTENV_TRY(make_dirs(home.tmp()));
  fs::path doomed = home.tmp() / unique_name(kEvictedPrefix);
  if (::rename(dir.c_str(), doomed.c_str()) != 0 && errno != ENOENT) {
    return io_error("cannot remove", dir, errno);
  }
  remove_evicted(home.tmp());
  return ok_result();
}

}  // namespace

void prune_tool_caches(const Home& home, bool installs_running,
                       const std::set<std::pair<uint64_t, uint64_t>>& counted_elsewhere,
                       std::vector<ToolCache>* caches) {
  for (auto& c : *caches) {
    if (c.bytes_before == 0) continue;
    Result<void> r = ok_result();
    if (c.name == "uv") {
      r = prune_uv(home, c.dir);
    } else if (installs_running) {
      c.note = "an install is running";
      continue;
    } else {
      r = empty_cache(home, c.dir);
    }
    if (!r) {
      c.note = r.error().message();
      continue;
    }
    c.pruned = true;
    std::error_code ec;
    auto seen = counted_elsewhere;
    c.bytes_after = fs::is_directory(c.dir, ec) ? disk_usage(c.dir, &seen) : 0;
  }
}

}  // namespace rtenv::env
