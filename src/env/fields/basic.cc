// env_vars, excludes, config, and the fields without an installer yet.

#include <fmt/format.h>

#include "env/fields/fields.h"

namespace rtenv::env::fields {

namespace {

class EnvVars : public Field {
 public:
  std::string name() const override { return "env_vars"; }
  int priority() const override { return 0; }
  Result<void> contribute(const spec::Json&, const spec::RuntimeEnv& env, const NodeCache&,
                          const std::vector<Resource>&, LaunchPlan* plan) const override {
    // ${NAME} expands from the environment of the process being started, as Ray does.
    for (const auto& [name, value] : env.env_vars()) plan->set(name, value, /*expand=*/true);
    return ok_result();
  }
};

// Applied when the paths it filters are packed (so dropped after the fields that pack); nodes
// never see it.
class Excludes : public Field {
 public:
  std::string name() const override { return "excludes"; }
  int priority() const override { return 9; }
  Result<spec::Json> prepare(const spec::Json&, const PrepareContext&) const override {
    return spec::Json();
  }
};

// How to set an env up, not what it holds (the agent and commands read it).
class Config : public Field {
 public:
  std::string name() const override { return "config"; }
  int priority() const override { return 0; }
};

class NotSupportedYet : public Field {
 public:
  NotSupportedYet(const char* name, const char* what) : name_(name), what_(what) {}
  std::string name() const override { return name_; }
  int priority() const override { return 5; }
  Result<void> resources(const spec::Json&, const spec::RuntimeEnv&, const NodeCache&,
                         std::vector<Resource>*) const override {
    return make_error(ErrorCode::kUnsupported,
                      "not supported yet: {} ({} are not implemented in this version of rtenv); "
                      "remove the field to run without it",
                      name_, what_);
  }

 private:
  std::string name_, what_;
};

}  // namespace

std::shared_ptr<const Field> env_vars() { return std::make_shared<EnvVars>(); }
std::shared_ptr<const Field> excludes() { return std::make_shared<Excludes>(); }
std::shared_ptr<const Field> config() { return std::make_shared<Config>(); }
std::shared_ptr<const Field> not_supported_yet(const char* name, const char* what) {
  return std::make_shared<NotSupportedYet>(name, what);
}

}  // namespace rtenv::env::fields
