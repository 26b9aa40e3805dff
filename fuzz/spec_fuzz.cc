// The runtime_env parsers on arbitrary text: JSON and YAML, at job and task level. Beyond not
// crashing, whatever parses must be a fixed point of normalization: its canonical text parses
// back, at the same level, to the same canonical text.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "spec/runtime_env.h"

namespace {

using rtenv::spec::Level;
using rtenv::spec::ParseOptions;
using rtenv::spec::RuntimeEnv;

ParseOptions options(Level level) {
  ParseOptions o;
  o.level = level;
  // Relative paths resolve under a directory that does not exist, so the input alone decides
  // what is read.
  o.base_dir = "/nonexistent/rtenv-fuzz";
  return o;
}

void check_fixed_point(const RuntimeEnv& env, const ParseOptions& o, const char* how) {
  const std::string canonical = env.canonical();
  auto again = RuntimeEnv::from_json_text(canonical, o);
  if (!again) {
    std::fprintf(stderr, "%s: the canonical form %s does not parse back: %s\n", how,
                 canonical.c_str(), again.error().message().c_str());
    std::abort();
  }
  if (again->canonical() != canonical) {
    std::fprintf(stderr, "%s: the canonical form %s parses back as %s\n", how, canonical.c_str(),
                 again->canonical().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (Level level : {Level::kJob, Level::kTask}) {
    const ParseOptions o = options(level);
    if (auto env = RuntimeEnv::from_json_text(text, o)) check_fixed_point(*env, o, "JSON");
    if (auto env = RuntimeEnv::from_yaml_text(text, o)) check_fixed_point(*env, o, "YAML");
  }
  return 0;
}
