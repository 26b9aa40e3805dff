// `rtenv env create --no-install`: what the submitting side of an engine runs (Slurm's plugin at
// srun/sbatch, the Ray helper): pack local paths into the store, lock package lists, print the
// resolved env. The lean front serves it when it can (nothing to fetch or unpack, a store it
// opens itself), as it serves a warm `run`, since an engine pays for it on every submission.

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "env/registry.h"
#ifndef RTENV_FRONT
#include "env/remote_fetch.h"
#endif

namespace rtenv::cli {

env::SetupReporter setup_reporter(bool verbose) {
  return [verbose](const std::string& line) {
    if (verbose || line.starts_with("warning:")) std::fprintf(stderr, "rtenv: %s\n", line.c_str());
  };
}

int load_env_for_create(const EnvCreateArgs& args, LoadedEnv* out) {
  auto home = open_home();
  if (!home) return fail(kExitSetup, "setup failed: " + home.error().message());
  // Plugin fields are known to validation once the registry is built.
  auto registry = env::Registry::standard(*home);
  if (!registry) return fail(kExitUsage, registry.error().message());
  auto parsed = spec::RuntimeEnv::load(args.runtime_env);
  if (!parsed) return fail(kExitUsage, parsed.error().message());
  if (auto v = env::validate_fields(*parsed, **registry, *home); !v) {
    bool invalid = v.error().code() == ErrorCode::kInvalidArgument;
    return fail(invalid ? kExitUsage : kExitSetup, v.error().message());
  }
  if (!args.holder.empty()) {
    bool printable = args.holder.size() <= 200 &&
                     std::all_of(args.holder.begin(), args.holder.end(),
                                 [](char c) { return c > ' ' && c < 0x7f && c != '*'; });
    if (!printable) {
      return fail(kExitUsage,
                  "--holder: at most 200 printable characters, no spaces and no '*' "
                  "(such as slurm:<job>.<step>)");
    }
  }
  out->home = std::move(home).value();
  out->registry = std::move(registry).value();
  out->env = std::move(parsed).value();
  return 0;
}

void say_warnings(const spec::RuntimeEnv& env) {
  for (const auto& w : env.warnings()) std::fprintf(stderr, "rtenv: warning: %s\n", w.c_str());
}

int env_resolve_command(const EnvCreateArgs& args) {
  LoadedEnv loaded;
  if (int rc = load_env_for_create(args, &loaded)) return rc;
#ifdef RTENV_FRONT
  // Archives and URLs need libarchive and libcurl, other stores libcurl: rtenv-full does it all
  // (and says the warnings).
  if (env::needs_zip_support(loaded.env, *loaded.registry) ||
      store_needs_full(loaded.home.store_url())) {
    return exec_full();
  }
#endif
  say_warnings(loaded.env);
  auto store = open_any_store(loaded.home.store_url());
  if (!store)
    return fail(kExitSetup, "setup failed: opening the store: " + store.error().message());
  env::UploadOptions upload;
  upload.report = setup_reporter(args.verbose);
#ifndef RTENV_FRONT
  env::add_remote_sources(loaded.home, &upload);
#else
  // A pinned image the store lacks is fetched by rtenv-full (libcurl, libarchive).
  bool import_handed_over = false;
  upload.import_image = [&](const std::string&, store::BlobStore&) -> Result<Digest> {
    import_handed_over = true;
    return Error(ErrorCode::kUnavailable, "handed to rtenv-full");
  };
#endif
  auto resolved = env::upload_local(loaded.env, loaded.home, **store, *loaded.registry, upload);
#ifdef RTENV_FRONT
  if (import_handed_over) return exec_full();
#endif
  if (!resolved) return fail(kExitSetup, "setup failed: " + resolved.error().message());
  if (args.json) {
    nlohmann::json j = {{"env_id", resolved->id().hex()},
                        {"runtime_env", nlohmann::json::parse(resolved->canonical())}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", resolved->canonical().c_str());
  }
  return 0;
}

}  // namespace rtenv::cli
