#include "env/setup.h"

#include <fmt/format.h>

#include "util/fs.h"

namespace rtenv::env {

using spec::Json;
using spec::RuntimeEnv;

// ---- Field's defaults ----------------------------------------------------------------------

Result<void> Field::validate(const Json&, const Home&, int64_t) const { return ok_result(); }
bool Field::needs_zip_support(const Json&) const { return false; }
Result<Json> Field::prepare(const Json& value, const PrepareContext&) const { return value; }
Result<void> Field::resources(const Json&, const RuntimeEnv&, const NodeCache&,
                              std::vector<Resource>*) const {
  return ok_result();
}
Result<void> Field::contribute(const Json&, const RuntimeEnv&, const NodeCache&,
                               const std::vector<Resource>&, LaunchPlan*) const {
  return ok_result();
}

namespace {

// The env's fields with the Field that handles each, in priority order.
Result<std::vector<std::pair<const Field*, const Json*>>> fields_of(const RuntimeEnv& env,
                                                                    const Registry& registry) {
  std::vector<std::pair<const Field*, const Json*>> out;
  const Json& j = env.to_json();
  for (const auto& name : env.fields()) {
    if (!registry.find(name)) {
      return make_error(ErrorCode::kUnsupported,
                        "runtime_env.{}: no plugin handles this field on this node (register "
                        "one in $RTENV_HOME/config.json \"plugins\" or RTENV_PLUGINS; "
                        "docs/plugins.md)",
                        name);
    }
  }
  for (const auto& f : registry.fields()) {
    auto it = j.find(f->name());
    if (it != j.end()) out.emplace_back(f.get(), &*it);
  }
  return out;
}

}  // namespace

bool needs_zip_support(const RuntimeEnv& env, const Registry& registry) {
  auto fields = fields_of(env, registry);
  if (!fields) return false;  // plan() reports the field no plugin handles
  for (const auto& [field, value] : *fields) {
    if (field->needs_zip_support(*value)) return true;
  }
  return false;
}

Result<Plan> plan(const RuntimeEnv& env, const Registry& registry, const NodeCache& cache) {
  RTENV_ASSIGN_OR_RETURN(auto fields, fields_of(env, registry));
  Plan out;
  for (const auto& [field, value] : fields) {
    size_t first = out.resources.size();
    RTENV_TRY(field->resources(*value, env, cache, &out.resources));
    for (size_t i = first; i < out.resources.size(); ++i) {
      Resource& r = out.resources[i];
      r.owner = field->name();
      r.kind = cache.kind_of(r.uri);
      if (!r.kind) {
        return make_error(ErrorCode::kInternal, "runtime_env.{}: no resource kind for {}", r.field,
                          r.uri);
      }
    }
  }
  return out;
}

Result<LaunchPlan> launch_plan(const RuntimeEnv& env, const Registry& registry,
                               const NodeCache& cache, const Plan& p) {
  RTENV_ASSIGN_OR_RETURN(auto fields, fields_of(env, registry));
  LaunchPlan out;
  for (const auto& [field, value] : fields) {
    std::vector<Resource> mine;
    for (const auto& r : p.resources) {
      if (r.owner == field->name()) mine.push_back(r);
    }
    RTENV_TRY(field->contribute(*value, env, cache, mine, &out));
  }
  for (const auto& r : p.resources) out.resources.push_back(r.uri);
  return out;
}

Result<void> validate_fields(const RuntimeEnv& env, const Registry& registry, const Home& home) {
  int64_t timeout_s = env.config().setup_timeout_seconds;
  const Json& j = env.to_json();
  for (const auto& name : env.plugin_fields()) {
    const Field* f = registry.find(name);
    if (!f) continue;  // plan() says no plugin handles it
    RTENV_TRY(f->validate(j[name], home, timeout_s > 0 ? timeout_s * 1000 : -1));
  }
  return ok_result();
}

Result<RuntimeEnv> upload_local(const RuntimeEnv& env, const Home& home, store::BlobStore& store,
                                const Registry& registry, const UploadOptions& options) {
  RTENV_ASSIGN_OR_RETURN(auto fields, fields_of(env, registry));
  RuntimeEnv out = env;
  for (const auto& [field, value] : fields) {
    PrepareContext ctx{home, store, options, out};
    RTENV_ASSIGN_OR_RETURN(Json prepared, field->prepare(*value, ctx));
    if (prepared != *value) out = out.with_field(field->name(), std::move(prepared));
  }
  return out;
}

std::vector<int> ActiveEnv::lease_fds() const {
  std::vector<int> out;
  for (const auto& l : leases) out.push_back(l->lock_fd());
  return out;
}

size_t ActiveEnv::release() {
  size_t restored = 0;
  for (auto& l : leases) restored += l->release() ? 1 : 0;
  leases.clear();
  return restored;
}

Result<ActiveEnv> activate(const RuntimeEnv& env, const Registry& registry, NodeCache& cache,
                           const InstallProgress& progress, int64_t timeout_ms) {
  RTENV_ASSIGN_OR_RETURN(Plan p, plan(env, registry, cache));
  ActiveEnv active;
  for (const auto& r : p.resources) {
    auto lease = r.kind->acquire(r, progress, timeout_ms);
    if (!lease)
      return lease.error().with_context(fmt::format("runtime_env.{} ({})", r.field, r.uri));
    active.leases.push_back(std::move(lease).value());
  }
  RTENV_ASSIGN_OR_RETURN(active.plan, launch_plan(env, registry, cache, p));
  return active;
}

}  // namespace rtenv::env
