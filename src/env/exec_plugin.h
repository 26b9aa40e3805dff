#pragma once
// Exec plugins: runtime_env fields implemented by a program that speaks `rtenv-plugin/1`
// (docs/plugins.md). Here: the protocol and the plugin's resource kind; its Field is
// fields/plugin.cc. To the rest of rtenv a plugin is a Field plus a ResourceKind like any other.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/home.h"
#include "env/kind.h"
#include "env/launch_plan.h"
#include "env/published_dirs.h"

namespace rtenv::env {

/// A configured plugin: `{"field": F, "exec": "/abs/path", "priority": N}` (config::Config
/// parses and checks the list).
struct PluginSpec {
  std::string field;
  fs::path exec;
  int priority = 10;
};

inline constexpr const char* kPluginProtocol = "rtenv-plugin/1";

/// What an exec plugin resource is made from (Resource::request of its kind): the field's value.
struct PluginRequest {
  nlohmann::json value;
};

/// Runs `<exec> <verb>` with `request` (protocol and field added) on stdin, within `timeout_ms`
/// (negative: none; the whole process group is killed past it), and returns its reply: one JSON
/// object on stdout, at most 1 MiB. Errors: kTimeout, kInvalidArgument for a non-zero exit (with
/// the stderr tail, credentials redacted), kCorrupt for a reply that is not a JSON object,
/// kTooLarge, or the error of starting it. `stderr_text` (if set) gets all of its stderr.
Result<nlohmann::json> call_plugin(const PluginSpec& spec, const std::string& verb,
                                   nlohmann::json request, int64_t timeout_ms,
                                   std::string* stderr_text = nullptr);
/// The last `n` lines of a program's stderr, each made printable (printable_line: no terminal
/// escapes, credentials in URLs hidden).
std::string plugin_stderr_tail(const std::string& err, size_t n = 20);
/// The key of a value's resource: SHA-256 of the field, the value's canonical JSON and the
/// program's content (a changed program makes new resources).
Result<std::string> plugin_key(const PluginSpec& spec, const nlohmann::json& value);

/// The directory of a plugin field's resources in `home`: $RTENV_HOME/plugins/<field>.
fs::path plugin_root(const Home& home, const std::string& field);

/// Where an exec plugin's resources live: $RTENV_HOME/plugins/<field>/<key>/, with <key>.lock,
/// <key>.context.json (the program's `context` answer) and <key>.ready (written last).
/// Its URI prefix (prefix()) is "plugin://<field>/".
class ExecPluginKind : public PublishedDirsKind {
 public:
  ExecPluginKind(const Home& home, PluginSpec spec);

  std::string name() const override { return "plugin:" + spec_.field; }
  Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                      int64_t timeout_ms) override;
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress& progress,
                                                 int64_t timeout_ms) override;
  /// The plugin's `delete` runs first.
  Result<bool> evict(const std::string& uri) override;

  /// The `context` answer kept for a ready resource, as launch-plan operations.
  Result<LaunchPlan> context_of(const std::string& uri) const;

 private:
  /// Creates the resource `r` asks for: `create` into a temp dir renamed into place, then
  /// `context`, kept beside it.
  PublishedDirs::Make maker(const Resource& r, const InstallProgress& progress,
                            int64_t deadline) const;

  PluginSpec spec_;
};

}  // namespace rtenv::env
