#pragma once
// rtenv's settings, built once per process from (in order) built-in defaults,
// $RTENV_HOME/config.json, RTENV_* variables and command-line flags. Nothing else reads the
// environment for a setting: whatever needs one is given this object (or a value from it).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/result.h"

namespace rtenv::config {

namespace fs = std::filesystem;

/// Looks up one environment variable; nullopt if it is not set.
using Lookup = std::function<std::optional<std::string>(const std::string& name)>;
/// The process environment (getenv). The one place rtenv reads its variables.
Lookup process_environment();
/// A fixed environment (for tests and for building a Config from known values).
Lookup environment_of(std::map<std::string, std::string> variables);

/// Where a value came from.
struct Origin {
  enum class Kind { kDefault, kFile, kVariable, kFlag };
  Kind kind = Kind::kDefault;
  std::string where;  ///< the file's path, the variable's or the flag's name; empty for a default

  /// "default", "/home/u/.cache/rtenv/config.json", "RTENV_STORE", "--store".
  std::string describe() const;
  bool operator==(const Origin&) const = default;
};

/// Values given on the command line (the last layer).
struct Flags {
  std::optional<std::string> store;             ///< --store
  std::optional<std::string> max_package_size;  ///< --max-package-size
  std::optional<std::string> metrics_listen;    ///< --metrics-listen (rtenv agent)
};

/// An exec plugin: the runtime_env field it serves and the program that serves it.
struct Plugin {
  std::string field;
  std::string exec;  ///< absolute path
  int64_t priority = 10;
  bool operator==(const Plugin&) const = default;
};

/// The effective configuration. Immutable once built; safe to share between threads.
class Config {
 public:
  /// Builds the configuration from defaults, the file $RTENV_HOME/config.json (if it exists),
  /// the variables `env` gives, then `flags`. kInvalidArgument with one sentence naming the key
  /// and its origin for a malformed file (file:line:column), an unknown key (with a "did you
  /// mean"), a value of the wrong type or an invalid plugin list; kIo if the file exists but
  /// cannot be read.
  static Result<Config> load(const Lookup& env, const Flags& flags = {});
  /// load(process_environment(), flags).
  static Result<Config> from_environment(const Flags& flags = {});
  /// The built-in defaults for the home `root`, nothing read (for tests and Home::at).
  static Config defaults(const fs::path& root);

  /// Every key, in display order.
  static const std::vector<std::string>& keys();

  fs::path home() const;
  /// The store URL (default file://$RTENV_HOME/store).
  std::string store() const;
  /// True if the store is the home's own directory store (nothing set it).
  bool store_is_home_default() const;
  std::optional<std::string> store_token() const;
  std::optional<std::string> ca_bundle() const;
  std::optional<std::string> s3_endpoint() const;
  /// How stale an S3 blob's LastModified may get before a use refreshes it (store/s3_store.h).
  double s3_touch_interval_seconds() const;
  uint64_t cache_limit() const;
  uint64_t cache_low() const;  ///< never above cache_limit()
  std::map<std::string, uint64_t> kind_limits() const;
  double failure_ttl_seconds() const;
  std::string python() const;     ///< base interpreter, default "python3"
  std::string installer() const;  ///< "auto", "uv" or "pip"
  std::optional<std::string> uv() const;
  std::string share_builds() const;  ///< "auto", "1" or "0"
  double build_lease_seconds() const;
  /// The Ed25519 private key (PEM file) this node signs the venvs it publishes with; nullopt:
  /// it publishes them unsigned.
  std::optional<std::string> build_signing_key() const;
  /// The Ed25519 public key (PEM file) a published venv's record must be signed by (besides the
  /// signing key's own). With either set, an unsigned record is refused (docs/cluster.md).
  std::optional<std::string> build_verify_key() const;
  int64_t agent_idle_exit_seconds() const;
  bool no_agent() const;
  uint64_t max_package_size() const;
  uint64_t warn_file_size() const;
  /// HOST:PORT the agent serves its metrics on (as given; the agent checks it); nullopt: none.
  std::optional<std::string> metrics_listen() const;
  const std::vector<Plugin>& plugins() const { return plugins_; }
  /// Registries ("host[:port]") images are pulled from over plain HTTP.
  std::vector<std::string> insecure_registries() const;
  /// The registry credentials file (docker's config.json format); default
  /// $HOME/.docker/config.json.
  std::optional<std::string> registry_auth_file() const;

  /// Where `key`'s value came from. `key` must be one of keys().
  const Origin& origin(std::string_view key) const;
  /// The value of `key` as JSON (null when unset); store_token is masked.
  nlohmann::json shown_value(std::string_view key) const;

  /// {"<key>": {"value": V, "origin": "..."}} for every key; the token masked.
  nlohmann::json to_json() const;
  /// The values the agent acts on, canonical (sorted keys); the token as its SHA-256. Not the
  /// client-only ones (home, no_agent, agent_idle_exit_seconds, package limits).
  nlohmann::json agent_values() const;
  /// SHA-256 (hex) of agent_values()'s canonical JSON: equal for two configurations under which
  /// an agent would behave the same.
  std::string fingerprint() const;
  /// The keys whose values differ between two agent_values() objects, sorted.
  static std::vector<std::string> differing_keys(const nlohmann::json& a, const nlohmann::json& b);

 private:
  struct Entry {
    nlohmann::json value;  ///< normalized: sizes in bytes, seconds as numbers, null if unset
    Origin origin;
  };
  const Entry& entry(std::string_view key) const;

  std::map<std::string, Entry, std::less<>> entries_;
  std::vector<Plugin> plugins_;
};

/// Formats a byte count the way sizes are written in the config: "10G", "500M", "1234".
std::string format_size(uint64_t bytes);

}  // namespace rtenv::config
