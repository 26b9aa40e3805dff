#include "env/registry.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

// The built-in fields: adding one is one line here (ARCHITECTURE.md, "How a field is added").
std::vector<std::shared_ptr<const Field>> builtin_fields() {
  return {
      fields::env_vars(),      fields::excludes(),  fields::config(),    fields::working_dir(),
      fields::py_modules(),    fields::pip(),       fields::uv(),        fields::conda(),
      fields::py_executable(), fields::java_jars(), fields::image_uri(), fields::container(),
  };
}

}  // namespace

Result<std::shared_ptr<const Registry>> Registry::make(std::vector<PluginSpec> plugins) {
  auto r = std::make_shared<Registry>();
  r->fields_ = builtin_fields();
  for (const auto& p : plugins) {
    if (spec::is_builtin_field(p.field)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "plugin {} ({}): '{}' is a built-in field; a plugin needs a field name of "
                        "its own",
                        p.field, p.exec.string(), p.field);
    }
    if (r->find(p.field)) {
      return make_error(ErrorCode::kInvalidArgument, "two plugins for the field '{}'", p.field);
    }
    r->fields_.push_back(fields::exec_plugin(p));
    spec::register_plugin_field(p.field);
  }
  std::stable_sort(r->fields_.begin(), r->fields_.end(), [](const auto& a, const auto& b) {
    if (a->priority() != b->priority()) return a->priority() < b->priority();
    return a->name() < b->name();
  });
  r->plugins_ = std::move(plugins);
  return std::shared_ptr<const Registry>(std::move(r));
}

Result<std::shared_ptr<const Registry>> Registry::standard(const Home& home) {
  // Checked when the configuration was built (config.json "plugins", or RTENV_PLUGINS).
  std::vector<PluginSpec> plugins;
  for (const auto& p : home.config().plugins()) {
    plugins.push_back(PluginSpec{p.field, p.exec, static_cast<int>(p.priority)});
  }
  return make(std::move(plugins));
}

void Registry::stop_helpers() { fields::stop_helpers(); }

const Field* Registry::find(std::string_view name) const {
  for (const auto& f : fields_) {
    if (f->name() == name) return f.get();
  }
  return nullptr;
}

}  // namespace rtenv::env
