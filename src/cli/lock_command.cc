// `rtenv lock`: resolve an env's Python packages to exact pins and print them.

#include <cstdio>

#include "cli/commands.h"
#include "env/python_env.h"

namespace rtenv::cli {

int lock_command(const LockArgs& args) {
  auto env = spec::RuntimeEnv::load(args.runtime_env);
  if (!env) return fail(kExitUsage, env.error().message());
  auto packages = env->python_packages();
  if (!packages) {
    return fail(kExitUsage, "the runtime_env has no pip or uv field: nothing to lock");
  }
  auto home = open_home();
  if (!home) return fail(kExitSetup, home.error().message());
  ProgressLine line;
  env::LockOptions options;
  options.refresh = args.refresh;
  int64_t timeout_s = env->config().setup_timeout_seconds;
  options.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
  options.progress = [&](const std::string& l) { line.show_timed("rtenv: " + l); };
  if (args.verbose) {
    options.report = [](const std::string& l) { std::fprintf(stderr, "rtenv: %s\n", l.c_str()); };
  }
  auto locked = env::lock_python(*env, *home, options);
  line.clear();
  if (!locked) return fail(kExitSetup, "resolving failed: " + locked.error().message());
  if (args.json) {
    std::printf("%s\n", locked->to_json().dump(2).c_str());
    return 0;
  }
  auto pins = locked->python_packages();
  for (const auto& l : pins->packages) std::printf("%s\n", l.c_str());
  return 0;
}

}  // namespace rtenv::cli
