#pragma once
// A runtime_env field, from what the user wrote to what a process is started with: one
// implementation of one interface per field, registered in one place (env/registry.cc). Adding a
// field: ARCHITECTURE.md, "How a field is added".

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "env/home.h"
#include "env/kind.h"
#include "env/launch_plan.h"
#include "pack/packer.h"
#include "spec/runtime_env.h"
#include "store/blob_store.h"

namespace rtenv::env {

class NodeCache;

/// One line of what setup did, for -v and for logs.
using SetupReporter = std::function<void(const std::string& line)>;

/// How the submitting side prepares an env (packing, locking).
struct UploadOptions {
  uint64_t max_package_bytes = uint64_t{2} << 30;
  uint64_t warn_file_bytes = uint64_t{100} << 20;
  SetupReporter report;  ///< summaries and warnings
  /// Live progress while hashing; `what` names the field ("working_dir").
  std::function<void(const std::string& what, const pack::PackProgress&)> progress;
  /// Fetches a URL (http://, https://, s3:// or file://, with an optional "#sha256=<hex>"
  /// fragment that is checked) to a local file: downloads it to the new file `dest` and returns
  /// that, or returns a file:// URL's own file. Set by binaries with network support
  /// (env/remote_fetch.h); unset, a URL that must be fetched is refused with kUnsupported.
  using Fetch = std::function<Result<fs::path>(const std::string& url, const fs::path& dest)>;
  Fetch fetch;
  /// Unpacks an archive (spec::archive_suffixes: a .zip, .tar.gz, ...; a local path, or a URL
  /// `fetch` takes) into the new directory `dest`. Set with `fetch` by binaries that carry the
  /// archive and download code (env/remote_fetch.h); unset, an archive is refused with
  /// kUnsupported.
  using UnpackArchive =
      std::function<Result<void>(const std::string& source, const fs::path& dest)>;
  UnpackArchive unpack_archive;
  /// Puts an image from a registry or an OCI archive (`ref`) into `store` (env/image_import.h),
  /// returning the pinned manifest. Set with `fetch` by binaries with network and archive
  /// support; unset, such images are refused with kUnsupported (an `oci:` layout needs neither).
  using ImportImage =
      std::function<Result<Digest>(const std::string& ref, store::BlobStore& store)>;
  ImportImage import_image;
  /// Lines of the resolver's progress while `pip`/`uv` is locked.
  InstallProgress install_progress;
  /// Resolve `pip`/`uv` again even if the same list was resolved before.
  bool refresh_lock = false;
  /// Called once just before a resolver starts (the slow path), e.g. to start the agent.
  std::function<void()> before_resolving;
  /// Prepares a field's value (one with Field::prepares_in_agent) in the node's agent, whose
  /// helper stays warm between envs; `env` is the env the value is part of. Set by commands that
  /// use the agent anyway; unset, such fields prepare in this process.
  std::function<Result<spec::Json>(const std::string& field, const spec::Json& value,
                                   const spec::RuntimeEnv& env)>
      prepare_in_agent;
};

/// What a field's prepare step may use.
struct PrepareContext {
  const Home& home;
  store::BlobStore& store;
  const UploadOptions& options;
  const spec::RuntimeEnv& env;  ///< the whole env (e.g. `excludes` for the packing fields)
};

/// One top-level runtime_env field. Implementations are immutable and thread-safe.
class Field {
 public:
  virtual ~Field() = default;

  /// The top-level key ("working_dir", "pip", a plugin's field).
  virtual std::string name() const = 0;
  /// Fields are prepared, planned and contribute to the launch plan in ascending priority
  /// (built-in fields 0-9; exec plugins 10 unless configured).
  virtual int priority() const = 0;

  /// Checks beyond the spec's own validation (which checks every built-in field's shape): exec
  /// plugins ask their program. kInvalidArgument naming the field for an invalid value.
  virtual Result<void> validate(const spec::Json& value, const Home& home,
                                int64_t timeout_ms) const;
  /// True if preparing `value` needs UploadOptions::unpack_archive or ::fetch (an archive, or any
  /// URL to download): the lean binary hands such envs to the one that has archive and network
  /// support.
  virtual bool needs_zip_support(const spec::Json& value) const;
  /// True if prepare()'s slow path runs a helper program worth keeping warm in the node's agent
  /// (conda's solver): it then hands that path to UploadOptions::prepare_in_agent when set.
  virtual bool prepares_in_agent() const { return false; }
  /// Submitting side: the value made node-independent (local paths packed into the store,
  /// package lists locked). The default keeps it as is.
  virtual Result<spec::Json> prepare(const spec::Json& value, const PrepareContext& ctx) const;
  /// Node side: the resources the value needs (appended to `out`), without making them.
  virtual Result<void> resources(const spec::Json& value, const spec::RuntimeEnv& env,
                                 const NodeCache& cache, std::vector<Resource>* out) const;
  /// Node side, once the resources are ready: what a process needs to run inside them.
  /// `mine`: the resources resources() named for this value, as planned (and leased).
  virtual Result<void> contribute(const spec::Json& value, const spec::RuntimeEnv& env,
                                  const NodeCache& cache, const std::vector<Resource>& mine,
                                  LaunchPlan* plan) const;
};

}  // namespace rtenv::env
