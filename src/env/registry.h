#pragma once
// Which fields this rtenv knows: the built-in ones and the configured exec plugins.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "env/exec_plugin.h"
#include "env/field.h"

namespace rtenv::env {

/// The fields of a process, by name and in priority order. Immutable once built.
class Registry {
 public:
  /// The built-in fields and one field per exec plugin. Registers the plugins' fields with the
  /// spec's validation (spec::register_plugin_field). kInvalidArgument for a plugin naming a
  /// built-in field or one named twice.
  static Result<std::shared_ptr<const Registry>> make(std::vector<PluginSpec> plugins);
  /// make() with the plugins of `home`'s configuration (config.json "plugins" or RTENV_PLUGINS;
  /// config::Config::plugins).
  static Result<std::shared_ptr<const Registry>> standard(const Home& home);

  /// The field called `name`, or nullptr.
  const Field* find(std::string_view name) const;
  /// Every field, in ascending priority (ties: by name).
  const std::vector<std::shared_ptr<const Field>>& fields() const { return fields_; }
  const std::vector<PluginSpec>& plugins() const { return plugins_; }

  /// Stops the helper programs fields keep running between requests in this process (conda's
  /// solver and installer, which leave by themselves only after minutes idle): a command's own
  /// process calls it before it starts the command.
  static void stop_helpers();

 private:
  std::vector<std::shared_ptr<const Field>> fields_;
  std::vector<PluginSpec> plugins_;
};

}  // namespace rtenv::env
