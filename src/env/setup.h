#pragma once
// From a runtime_env to a running process's surroundings, field by field (env/field.h): the
// submitting side prepares the env (upload_local: local paths packed, package lists locked), the
// node plans its resources, makes and leases them (activate), and the fields contribute the
// launch plan.

#include <memory>
#include <string>
#include <vector>

#include "env/field.h"
#include "env/fields/fields.h"
#include "env/home.h"
#include "env/launch_plan.h"
#include "env/node_cache.h"
#include "env/registry.h"
#include "spec/runtime_env.h"
#include "store/blob_store.h"

namespace rtenv::env {

/// The resources a URI-only env needs on a node, in field priority order.
struct Plan {
  std::vector<Resource> resources;
};

/// Plans a URI-only env with its Python packages locked, without making anything (the base
/// interpreter may be probed once). kUnsupported for fields without an installer yet ("not
/// supported yet: conda ...") or a plugin field no plugin of this node handles;
/// kInvalidArgument for a field that is not a package URI or a Python list that is not locked.
Result<Plan> plan(const spec::RuntimeEnv& env, const Registry& registry, const NodeCache& cache);

/// What a process needs to run inside the env, once its resources are ready: each field's
/// contribution in priority order, and the resources' URIs. `${NAME}` in env_vars stays for the
/// applier to expand from the environment of the process being started.
Result<LaunchPlan> launch_plan(const spec::RuntimeEnv& env, const Registry& registry,
                               const NodeCache& cache, const Plan& plan);

/// Asks each plugin field's program whether its value is valid (built-in fields are checked by
/// the spec's own validation), unless the value's resource is published in `home` already (it
/// was valid for this program). kInvalidArgument naming the field.
Result<void> validate_fields(const spec::RuntimeEnv& env, const Registry& registry,
                             const Home& home);

/// An activated env: its launch plan and the leases that keep its resources whole until released.
struct ActiveEnv {
  LaunchPlan plan;
  std::vector<std::unique_ptr<ResourceLease>> leases;
  /// Descriptors of every lease, for a process that must keep them (inheriting them).
  std::vector<int> lease_fds() const;
  /// Gives every lease back; returns how many resources had been changed and were restored.
  size_t release();
};

/// Prepares a job-level env for nodes: each field's prepare step in priority order (local paths
/// of working_dir and py_modules packed into `store` with `excludes` applied, remote .zip URIs
/// downloaded and packed, `pip`/`uv` locked). Returns the env with package URIs in their place,
/// its Python packages pinned and `excludes` dropped. Errors name the field and the path.
Result<spec::RuntimeEnv> upload_local(const spec::RuntimeEnv& env, const Home& home,
                                      store::BlobStore& store, const Registry& registry,
                                      const UploadOptions& options);

/// True if preparing `env` needs UploadOptions::unpack_archive or ::fetch
/// (Field::needs_zip_support).
bool needs_zip_support(const spec::RuntimeEnv& env, const Registry& registry);

/// Plans a URI-only env, makes what is missing on this node, leases every resource and builds
/// the launch plan. `timeout_ms` bounds helper processes (negative: none).
Result<ActiveEnv> activate(const spec::RuntimeEnv& env, const Registry& registry, NodeCache& cache,
                           const InstallProgress& progress = nullptr, int64_t timeout_ms = -1);

}  // namespace rtenv::env
