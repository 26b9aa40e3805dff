#pragma once
// Building once per cluster. When several nodes share a store, the first node that needs an
// expensive resource (a Python env) takes a build lease recorded in the store, builds it and
// publishes it there; the other nodes wait for the lease holder and fetch what it published. A
// lease carries an expiry that its holder renews while it works, so a builder that died blocks
// the others only until the lease runs out; then one of them takes over.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "store/blob_store.h"
#include "util/result.h"

namespace rtenv::env {

/// A build lease this process holds in the store: renewed in the background until released
/// (or destroyed), then removed if it is still this process's.
class BuildLease {
 public:
  ~BuildLease();
  BuildLease(const BuildLease&) = delete;
  BuildLease& operator=(const BuildLease&) = delete;
  void release();

 private:
  friend class SharedBuilds;
  struct State;
  explicit BuildLease(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

class SharedBuilds {
 public:
  struct Options {
    int64_t lease_ms = 60'000;      ///< a lease's lifetime; renewed every third of it
    int64_t poll_ms = 100;          ///< how often a waiting node looks for the record, at most
    int64_t lease_check_ms = 1000;  ///< how often it looks at the lease (expired?)
  };
  /// Options from the configuration: build_lease_seconds (RTENV_BUILD_LEASE_SECONDS, default
  /// 60).
  static Options options_from(const config::Config& config);

  SharedBuilds(store::BlobStore& store, Options options);

  /// The outcome of claim(): the published record, or the lease to build under.
  struct Claim {
    std::optional<std::string> published;
    std::unique_ptr<BuildLease> lease;
  };

  /// Returns the record `published` once it exists, or the build lease `lease` once this
  /// process holds it (no one else holds a live one and nothing is published). Waits for another
  /// holder until `deadline_ms` (steady clock; negative: no deadline), reporting who it waits
  /// for; kTimeout then. Store errors are returned as they are.
  Result<Claim> claim(const std::string& published, const std::string& lease, int64_t deadline_ms,
                      const std::function<void(const std::string&)>& report);

  /// "<host>:<pid>": who this process is in leases and records.
  static std::string this_holder();

 private:
  store::BlobStore& store_;
  Options options_;
};

}  // namespace rtenv::env
