#pragma once
// What a process is started with to run inside an env: one value, the same for `rtenv run`, the
// agent's replies, engines (the Ray plugin applies its JSON form) and plugins.

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

/// One change to a process's environment.
struct EnvOp {
  enum class Kind { kSet, kUnset, kPrepend, kAppend, kDefault };
  Kind kind = Kind::kSet;
  std::string name;
  std::string value;                    ///< kSet, kDefault
  std::vector<std::string> values;      ///< kPrepend, kAppend, in order
  std::string separator = ":";          ///< kPrepend, kAppend
  bool expand = false;                  ///< kSet: ${NAME} expands from the caller's environment
  std::vector<std::string> unless_set;  ///< kDefault: not applied if any of these is set

  bool operator==(const EnvOp&) const = default;
};

/// The launch plan. Applying it (apply_environment) to a caller's environment E, for each
/// variable V it names: base = E[V], replaced by each kSet (expanded if asked) and removed by
/// kUnset; the result is all kPrepend values in plan order, then base if non-empty, then all
/// kAppend values, joined with the separator; with nothing to add, V is base (a kSet to "" stays
/// set to "", and V is absent only if base is). Then each kDefault sets V if V is still absent
/// and none of its `unless_set` variables is set in E or the result. docs/plugins.md
/// and python/rtenv/launch_plan.py implement the same rules.
struct LaunchPlan {
  std::vector<EnvOp> env;
  std::optional<fs::path> cwd;            ///< working_dir's node copy
  std::vector<std::string> wrapper;       ///< the command runs as wrapper + command
  std::optional<fs::path> py_executable;  ///< the env's interpreter, for engines that start Python
  std::vector<std::string> resources;     ///< URIs of the resources the process uses

  void set(std::string name, std::string value, bool expand = false);
  void prepend(std::string name, std::vector<std::string> values, std::string separator = ":");
  void append(std::string name, std::vector<std::string> values, std::string separator = ":");

  /// Appends a part of a plan (a plugin's context, an activation): its operations after this
  /// plan's, its wrapper after this one's, its cwd if it has one.
  void add(const LaunchPlan& part);

  /// The JSON form (docs/plugins.md): {"env": [...], "cwd", "wrapper", "py_executable",
  /// "resources"}.
  nlohmann::json to_json() const;
  /// Parses the JSON form; kInvalidArgument naming what is wrong.
  static Result<LaunchPlan> from_json(const nlohmann::json& j);
  /// Reads the JSON form kept in `file` beside the resource `uri` (kNotFound if absent, kCorrupt
  /// if it does not parse).
  static Result<LaunchPlan> load(const fs::path& file, const std::string& uri);

  bool operator==(const LaunchPlan&) const = default;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// Expands ${NAME} in `value` from `lookup` (unset names expand to ""; `$$`... is left as is).
std::string expand_vars(const std::string& value, const EnvLookup& lookup);

/// The environment a process gets: `caller` with the plan's operations applied.
std::map<std::string, std::string> apply_environment(
    const LaunchPlan& plan, const std::map<std::string, std::string>& caller);

/// The variable that names the plan's cwd in `task_prolog_lines` (a Slurm task starts there).
inline constexpr const char* kWorkingDirVariable = "RTENV_WORKING_DIR";

/// The plan as the lines a Slurm TaskProlog prints (`export NAME=value`, `unset NAME`): what
/// applying it to `caller` changes, by name, then `export RTENV_WORKING_DIR=<cwd>` when the plan
/// has a cwd (a TaskProlog cannot set a task's cwd; rtenv's SPANK plugin starts tasks there and a
/// job script can `cd` there). kInvalidArgument if a value holds a newline (a line cannot carry
/// it), a name is not a shell variable name, or the plan has a wrapper (environment lines cannot
/// say it).
Result<std::vector<std::string>> task_prolog_lines(
    const LaunchPlan& plan, const std::map<std::string, std::string>& caller);

}  // namespace rtenv::env
