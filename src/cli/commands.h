#pragma once

#include <string>
#include <vector>

#include "cli/common.h"

namespace rtenv::cli {

struct RunArgs {
  std::string runtime_env;  ///< inline JSON or a file; empty: no env
  std::string store_url;    ///< empty: RTENV_STORE or the local store
  SizeLimits limits;
  bool verbose = false;
  std::vector<std::string> command;
};
/// `rtenv run`: returns the command's exit status, or kExitUsage / kExitSetup.
int run_command(const RunArgs& args);

struct PackArgs {
  std::string path;
  std::vector<std::string> excludes;
  std::string store_url;
  SizeLimits limits;
  bool json = false;
  bool no_index = false;
  unsigned threads = 0;
};
/// `rtenv pack`: prints the package URI and counts.
int pack_command(const PackArgs& args);

}  // namespace rtenv::cli
