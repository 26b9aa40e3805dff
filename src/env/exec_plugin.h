#pragma once
// Exec plugins: runtime_env fields implemented by a program that speaks `rtenv-plugin/1`
// (docs/plugins.md). To the rest of rtenv a plugin is a Field plus a ResourceKind like any other.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "env/field.h"
#include "env/home.h"
#include "env/kind.h"
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

/// The field of an exec plugin: validate asks the program; a value is one resource
/// `plugin://<field>/<key>`, key = SHA-256 of the field, the value's canonical JSON and the
/// program's content; its launch-plan contribution is the `context` answer kept beside it.
class ExecPluginField : public Field {
 public:
  explicit ExecPluginField(PluginSpec spec) : spec_(std::move(spec)) {}

  std::string name() const override { return spec_.field; }
  int priority() const override { return spec_.priority; }
  Result<void> validate(const spec::Json& value, int64_t timeout_ms) const override;
  /// True if `value`'s resource is published in `home` already: this program created it, so
  /// the value was valid (validate_fields skips asking again on the warm path).
  bool is_published(const spec::Json& value, const Home& home) const;
  Result<void> resources(const spec::Json& value, const spec::RuntimeEnv& env,
                         const NodeCache& cache, std::vector<Resource>* out) const override;
  Result<void> contribute(const spec::Json& value, const spec::RuntimeEnv& env,
                          const NodeCache& cache, const std::vector<Resource>& mine,
                          LaunchPlan* plan) const override;

 private:
  PluginSpec spec_;
};

/// The directory of a plugin field's resources in `home`: $RTENV_HOME/plugins/<field>.
fs::path plugin_root(const Home& home, const std::string& field);

/// Where an exec plugin's resources live: $RTENV_HOME/plugins/<field>/<key>/, with <key>.lock,
/// <key>.context.json (the program's `context` answer) and <key>.ready (written last).
class ExecPluginKind : public ResourceKind {
 public:
  ExecPluginKind(const Home& home, PluginSpec spec);

  std::string name() const override { return "plugin:" + spec_.field; }
  bool owns(std::string_view uri) const override;
  Result<bool> ensure(const Resource& r, const InstallProgress& progress,
                      int64_t timeout_ms) override;
  Result<std::unique_ptr<ResourceLease>> acquire(const Resource& r, const InstallProgress& progress,
                                                 int64_t timeout_ms) override;
  bool is_ready(const std::string& uri) const override;
  Result<bool> evict(const std::string& uri) override;
  size_t process_leases(const std::string& uri) const override;
  int64_t last_leased_ms(const std::string& uri) const override;
  fs::path dir_of(const std::string& uri) const override;
  std::vector<std::string> list_ready() const override;

  /// The URI prefix of this plugin's resources: "plugin://<field>/".
  std::string prefix() const { return "plugin://" + spec_.field + "/"; }
  /// The `context` answer kept for a ready resource, as launch-plan operations.
  Result<LaunchPlan> context_of(const std::string& uri) const;

 private:
  std::string key_of(const std::string& uri) const { return uri.substr(prefix().size()); }

  PluginSpec spec_;
  PublishedDirs dirs_;
};

}  // namespace rtenv::env
