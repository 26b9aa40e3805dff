// A field implemented by an exec plugin (env/exec_plugin.h has the protocol and its kind).

#include <fmt/format.h>

#include "env/exec_plugin.h"
#include "env/fields/fields.h"
#include "env/node_cache.h"

namespace rtenv::env {

namespace {

class ExecPlugin : public Field {
 public:
  explicit ExecPlugin(PluginSpec spec) : spec_(std::move(spec)) {}

  std::string name() const override { return spec_.field; }
  int priority() const override { return spec_.priority; }
  Result<void> validate(const spec::Json& value, const Home& home,
                        int64_t timeout_ms) const override;
  Result<void> resources(const spec::Json& value, const spec::RuntimeEnv& env,
                         const NodeCache& cache, std::vector<Resource>* out) const override;
  Result<void> contribute(const spec::Json& value, const spec::RuntimeEnv& env,
                          const NodeCache& cache, const std::vector<Resource>& mine,
                          LaunchPlan* plan) const override;

 private:
  bool is_published(const spec::Json& value, const Home& home) const;

  PluginSpec spec_;
};

Result<void> ExecPlugin::validate(const spec::Json& value, const Home& home,
                                  int64_t timeout_ms) const {
  // Published already: this program created it from this value, so the value was valid (no
  // process on the warm path).
  if (is_published(value, home)) return ok_result();
  std::string stderr_text;
  auto reply = call_plugin(spec_, "validate", {{"value", value}}, timeout_ms, &stderr_text);
  if (reply) return ok_result();
  // The plugin's own words say what is wrong with the value; without any, what happened.
  std::string tail = plugin_stderr_tail(stderr_text);
  if (reply.error().code() == ErrorCode::kInvalidArgument && !tail.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "runtime_env.{}: {}", spec_.field, tail);
  }
  // A plugin that cannot run, hangs or answers garbage is a broken installation, not a bad
  // value: its own code says so.
  return reply.error().with_context("runtime_env." + spec_.field);
}

bool ExecPlugin::is_published(const spec::Json& value, const Home& home) const {
  auto key = plugin_key(spec_, value);
  if (!key) return false;
  return PublishedDirs(plugin_root(home, spec_.field), home.tmp(), ".ready").is_ready(*key);
}

Result<void> ExecPlugin::resources(const spec::Json& value, const spec::RuntimeEnv&,
                                   const NodeCache&, std::vector<Resource>* out) const {
  auto key = plugin_key(spec_, value);
  if (!key) return key.error().with_context("runtime_env." + spec_.field);
  Resource r;
  r.field = spec_.field;
  r.uri = "plugin://" + spec_.field + "/" + *key;
  r.request = std::make_shared<PluginRequest>(PluginRequest{value});
  out->push_back(std::move(r));
  return ok_result();
}

Result<void> ExecPlugin::contribute(const spec::Json&, const spec::RuntimeEnv&,
                                    const NodeCache& cache, const std::vector<Resource>& mine,
                                    LaunchPlan* plan) const {
  // The resource as planned and leased: its key is not computed again (the program may have
  // been replaced since).
  if (mine.size() != 1) {
    return make_error(ErrorCode::kInternal, "runtime_env.{}: expected one planned resource",
                      spec_.field);
  }
  auto* kind = dynamic_cast<const ExecPluginKind*>(cache.kind_of(mine[0].uri));
  if (!kind) {
    return make_error(ErrorCode::kInternal, "runtime_env.{}: {} is not a plugin resource",
                      spec_.field, mine[0].uri);
  }
  auto part = kind->context_of(mine[0].uri);
  if (!part) return part.error().with_context("runtime_env." + spec_.field);
  plan->add(*part);
  return ok_result();
}

}  // namespace

namespace fields {
std::shared_ptr<const Field> exec_plugin(PluginSpec spec) {
  return std::make_shared<ExecPlugin>(std::move(spec));
}
}  // namespace fields

}  // namespace rtenv::env
