#pragma once
// $RTENV_HOME: where a node keeps all of rtenv's state. Moving it moves everything.

#include <filesystem>
#include <memory>
#include <string>

#include "config/config.h"
#include "util/result.h"

namespace rtenv::env {

namespace fs = std::filesystem;

/// The layout of $RTENV_HOME (default: $XDG_CACHE_HOME/rtenv, else ~/.cache/rtenv):
///   store/   the default blob store (file://$RTENV_HOME/store)
///   pkgs/    materialized packages: <digest>/ and its .lock, .state and .dirty files
///   index/   client-side file indexes of packed directories
///   tmp/     builds in progress; renamed into place when complete
///   logs/    setup logs
///   pyenvs/  virtualenvs: <key>/ and its .lock and .ready files
///   python/  what each base interpreter is (probed once)
///   locks/   resolved Python requirement lists
///   uv-cache/, pip-cache/  the package caches all Python envs share
///   conda/pkgs/  rattler's package cache, which conda envs link from
struct Home {
  fs::path root;
  /// The configuration this home was opened with (never null once opened by at() or
  /// from_config()). Shared: copies of a Home share one Config.
  std::shared_ptr<const config::Config> config_ptr;

  /// The configuration of this home: every setting a node-side component needs.
  const config::Config& config() const;

  fs::path store() const { return root / "store"; }
  fs::path pkgs() const { return root / "pkgs"; }
  fs::path index() const { return root / "index"; }
  fs::path tmp() const { return root / "tmp"; }
  fs::path logs() const { return root / "logs"; }
  fs::path pyenvs() const { return root / "pyenvs"; }
  fs::path python() const { return root / "python"; }
  fs::path locks() const { return root / "locks"; }
  fs::path uv_cache() const { return root / "uv-cache"; }
  fs::path pip_cache() const { return root / "pip-cache"; }
  fs::path conda_pkgs() const { return root / "conda" / "pkgs"; }

  /// The home `config` names (config->home()), with that configuration; creates the
  /// directories.
  static Result<Home> from_config(std::shared_ptr<const config::Config> config);
  /// The home at `root` with the built-in defaults (config::Config::defaults): nothing read.
  static Result<Home> at(const fs::path& root);

  /// The client-side file index of a packed directory (by its absolute path).
  fs::path index_for(const fs::path& root) const;

  /// The store URL: config().store() (--store, RTENV_STORE, "store" in config.json, else the
  /// local store).
  std::string store_url() const;
};

}  // namespace rtenv::env
