#pragma once
// pip's install options as a runtime_env gives them (`pip.pip_install_options`), and their
// equivalents for uv, which installs the `pip` field whenever it is on the node.

#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rtenv::spec {

/// One pip install option rtenv takes.
struct PipInstallOption {
  std::string_view name;   ///< "--index-url"
  std::string_view alias;  ///< "-i", or empty
  bool takes_value = false;
  /// uv's spelling: an option of `uv pip install`/`uv pip compile` ("--no-cache"; for an option
  /// with a value, the value follows it), or "--name=value" for a fixed translation
  /// ("--prerelease=allow"); empty: the option changes nothing uv does, and is dropped.
  std::string_view uv;
};

/// The options rtenv takes, in the order docs/runtime_env.md lists them.
const std::vector<PipInstallOption>& pip_install_options_known();

/// Checks a `pip_install_options` list: every item is a known option (`--name`, its alias, or
/// `--name=value`), an option with a value is followed by it. kInvalidArgument naming the item
/// (`<path>[i]`) and what to do otherwise.
Result<void> check_pip_install_options(std::string_view path,
                                       const std::vector<std::string>& options);

/// What the installer is given for a checked `pip_install_options` list. For pip: the options
/// as they are. For uv: each mapped to uv's spelling, dropped when it changes nothing uv does.
/// `install` (installing from a lock, which passes --no-deps itself): --no-deps is left out.
std::vector<std::string> pip_install_args(const std::vector<std::string>& options, bool uv,
                                          bool install);

}  // namespace rtenv::spec
