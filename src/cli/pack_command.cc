// `rtenv pack`: pack a directory into the store and print its URI and counts.

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "pack/packer.h"
#include "util/size.h"

namespace rtenv::cli {

int pack_command(const PackArgs& args) {
  env::UploadOptions limits;
  if (auto r = args.limits.apply(&limits); !r) return fail(kExitUsage, r.error().message());
  auto home = open_home();
  if (!home) return fail(kExitSetup, home.error().message());
  std::string url = args.store_url.empty() ? home->store_url() : args.store_url;
  if (store_needs_full(url)) return exec_full();
  auto store = open_any_store(url);
  if (!store) return fail(kExitSetup, "opening the store: " + store.error().message());

  std::error_code ec;
  fs::path path = fs::absolute(args.path, ec).lexically_normal();
  if (path.has_filename() == false && path.has_parent_path()) path = path.parent_path();
  pack::PackOptions options;
  options.excludes = args.excludes;
  options.max_package_bytes = limits.max_package_bytes;
  options.warn_file_bytes = limits.warn_file_bytes;
  options.threads = args.threads;
  options.skip_dirs = {home->root};
  if (!args.no_index) options.index_file = home->index_for(path);

  ProgressLine line;
  auto progress = pack_progress(&line);
  auto result = pack::pack_path(
      path, **store, options,
      progress ? [&](const pack::PackProgress& p) { progress("", p); } : pack::PackProgressFn());
  line.clear();
  if (!result) {
    int code = result.error().code() == ErrorCode::kNotFound ? kExitUsage : kExitSetup;
    return fail(code, result.error().message());
  }
  const auto& s = result->stats;
  for (const auto& w : s.warnings) std::fprintf(stderr, "rtenv: warning: %s\n", w.c_str());
  if (args.json) {
    nlohmann::json j = {
        {"uri", result->uri.str()},
        {"files", s.files},
        {"dirs", s.dirs},
        {"symlinks", s.symlinks},
        {"bytes", s.file_bytes},
        {"files_hashed", s.files_hashed},
        {"bytes_hashed", s.bytes_hashed},
        {"blobs", s.blobs},
        {"blobs_uploaded", s.blobs_uploaded},
        {"blobs_present", s.blobs_present},
        {"bytes_uploaded", s.bytes_uploaded},
        {"store", (*store)->url()},
        {"ms",
         {{"walk", s.walk_ms},
          {"hash", s.hash_ms},
          {"query", s.query_ms},
          {"upload", s.upload_ms},
          {"total", s.total_ms}}},
    };
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  double gib_s =
      s.hash_ms > 0 ? static_cast<double>(s.bytes_hashed) / (1 << 30) / (s.hash_ms / 1000) : 0;
  // The answer alone on stdout (`URI=$(rtenv pack dir)`); what it took on stderr.
  std::printf("%s\n", result->uri.str().c_str());
  std::fflush(stdout);
  if (quiet()) return 0;
  std::fprintf(stderr, "%s, %s, %s, %s\n", count_of(s.files, "file", "files").c_str(),
               count_of(s.dirs, "directory", "directories").c_str(),
               count_of(s.symlinks, "symlink", "symlinks").c_str(),
               pack::format_bytes(s.file_bytes).c_str());
  std::fprintf(stderr, "read %s (%s) at %.2f GiB/s; %s not read (unchanged)\n",
               count_of(s.files_hashed, "file", "files").c_str(),
               pack::format_bytes(s.bytes_hashed).c_str(), gib_s,
               count_of(s.files - s.files_hashed, "file", "files").c_str());
  std::fprintf(stderr, "%s: %zu uploaded (%s), %zu already in %s\n",
               count_of(s.blobs, "blob", "blobs").c_str(), s.blobs_uploaded,
               pack::format_bytes(s.bytes_uploaded).c_str(), s.blobs_present,
               (*store)->url().c_str());
  if (!args.verbose) return 0;
  std::fprintf(stderr,
               "time: walk %.1f ms, hash %.1f ms, query %.1f ms, upload %.1f ms, total %.1f ms\n",
               s.walk_ms, s.hash_ms, s.query_ms, s.upload_ms, s.total_ms);
  return 0;
}

}  // namespace rtenv::cli
