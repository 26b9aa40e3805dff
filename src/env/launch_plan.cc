#include "env/launch_plan.h"

#include <cctype>
#include <set>

#include <fmt/format.h>

#include "util/fs.h"

namespace rtenv::env {

using nlohmann::json;

namespace {

constexpr std::pair<EnvOp::Kind, const char*> kOpNames[] = {
    {EnvOp::Kind::kSet, "set"},         {EnvOp::Kind::kUnset, "unset"},
    {EnvOp::Kind::kPrepend, "prepend"}, {EnvOp::Kind::kAppend, "append"},
    {EnvOp::Kind::kDefault, "default"},
};

const char* op_name(EnvOp::Kind k) {
  for (const auto& [kind, name] : kOpNames) {
    if (kind == k) return name;
  }
  return "?";
}

Error bad(const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "launch plan: " + what);
}

Result<std::vector<std::string>> strings(const json& j, const std::string& what) {
  if (!j.is_array()) return bad(what + ": expected a list of strings");
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) return bad(what + ": expected a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::optional<fs::path>> optional_path(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::optional<fs::path>();
  if (!j[key].is_string()) return bad(fmt::format("{}: expected a string or null", key));
  std::string s = j[key].get<std::string>();
  if (s.empty()) return std::optional<fs::path>();
  return std::optional<fs::path>(s);
}

}  // namespace

void LaunchPlan::set(std::string name, std::string value, bool expand) {
  EnvOp op;
  op.kind = EnvOp::Kind::kSet;
  op.name = std::move(name);
  op.value = std::move(value);
  op.expand = expand;
  env.push_back(std::move(op));
}

namespace {

void add_list_op(std::vector<EnvOp>* env, EnvOp::Kind kind, std::string name,
                 std::vector<std::string> values, std::string separator) {
  if (values.empty()) return;
  EnvOp op;
  op.kind = kind;
  op.name = std::move(name);
  op.values = std::move(values);
  op.separator = std::move(separator);
  env->push_back(std::move(op));
}

}  // namespace

void LaunchPlan::prepend(std::string name, std::vector<std::string> values, std::string sep) {
  add_list_op(&env, EnvOp::Kind::kPrepend, std::move(name), std::move(values), std::move(sep));
}

void LaunchPlan::append(std::string name, std::vector<std::string> values, std::string sep) {
  add_list_op(&env, EnvOp::Kind::kAppend, std::move(name), std::move(values), std::move(sep));
}

json LaunchPlan::to_json() const {
  json ops = json::array();
  for (const auto& op : env) {
    json o = {{"op", op_name(op.kind)}, {"name", op.name}};
    switch (op.kind) {
      case EnvOp::Kind::kSet:
        o["value"] = op.value;
        if (op.expand) o["expand"] = true;
        break;
      case EnvOp::Kind::kUnset:
        break;
      case EnvOp::Kind::kPrepend:
      case EnvOp::Kind::kAppend:
        o["values"] = op.values;
        o["separator"] = op.separator;
        break;
      case EnvOp::Kind::kDefault:
        o["value"] = op.value;
        if (!op.unless_set.empty()) o["unless_set"] = op.unless_set;
        break;
    }
    ops.push_back(std::move(o));
  }
  return {{"env", ops},
          {"cwd", cwd ? json(cwd->string()) : json(nullptr)},
          {"wrapper", wrapper},
          {"py_executable", py_executable ? json(py_executable->string()) : json(nullptr)},
          {"resources", resources}};
}

void LaunchPlan::add(const LaunchPlan& part) {
  env.insert(env.end(), part.env.begin(), part.env.end());
  if (part.cwd) cwd = part.cwd;
  wrapper.insert(wrapper.end(), part.wrapper.begin(), part.wrapper.end());
}

Result<LaunchPlan> LaunchPlan::load(const fs::path& file, const std::string& uri) {
  auto text = read_file(file);
  if (!text) {
    return make_error(ErrorCode::kNotFound, "{} is not on this node ({} is missing)", uri,
                      file.string());
  }
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(ErrorCode::kCorrupt, "{}: {} is not JSON", uri, file.string());
  }
  auto plan = from_json(j);
  if (!plan) return make_error(ErrorCode::kCorrupt, "{}: {}", uri, plan.error().message());
  return plan;
}

Result<LaunchPlan> LaunchPlan::from_json(const json& j) {
  if (!j.is_object()) return bad("expected a JSON object");
  LaunchPlan plan;
  if (j.contains("env")) {
    if (!j["env"].is_array()) return bad("env: expected a list of operations");
    for (const auto& o : j["env"]) {
      if (!o.is_object() || !o.contains("op") || !o["op"].is_string() || !o.contains("name") ||
          !o["name"].is_string() || o["name"].get<std::string>().empty()) {
        return bad("env: each operation needs \"op\" and a non-empty \"name\"");
      }
      EnvOp op;
      op.name = o["name"].get<std::string>();
      std::string name = o["op"].get<std::string>();
      bool known = false;
      for (const auto& [kind, n] : kOpNames) {
        if (name == n) op.kind = kind, known = true;
      }
      if (!known) return bad(fmt::format("env: unknown operation '{}'", name));
      auto text = [&](const char* key) -> Result<std::string> {
        if (!o.contains(key) || !o[key].is_string()) {
          return bad(fmt::format("env {} {}: \"{}\" must be a string", name, op.name, key));
        }
        return o[key].get<std::string>();
      };
      if (op.kind == EnvOp::Kind::kSet || op.kind == EnvOp::Kind::kDefault) {
        RTENV_ASSIGN_OR_RETURN(op.value, text("value"));
      }
      if (op.kind == EnvOp::Kind::kPrepend || op.kind == EnvOp::Kind::kAppend) {
        if (o.contains("values")) {
          RTENV_ASSIGN_OR_RETURN(op.values, strings(o["values"], "env " + op.name + " values"));
        }
        if (o.contains("separator")) {
          RTENV_ASSIGN_OR_RETURN(op.separator, text("separator"));
        }
      }
      if (o.contains("expand")) {
        if (!o["expand"].is_boolean()) return bad("env " + op.name + ": expand must be a bool");
        op.expand = o["expand"].get<bool>();
      }
      if (o.contains("unless_set")) {
        RTENV_ASSIGN_OR_RETURN(op.unless_set,
                               strings(o["unless_set"], "env " + op.name + " unless_set"));
      }
      plan.env.push_back(std::move(op));
    }
  }
  RTENV_ASSIGN_OR_RETURN(plan.cwd, optional_path(j, "cwd"));
  RTENV_ASSIGN_OR_RETURN(plan.py_executable, optional_path(j, "py_executable"));
  if (j.contains("wrapper")) {
    RTENV_ASSIGN_OR_RETURN(plan.wrapper, strings(j["wrapper"], "wrapper"));
  }
  if (j.contains("resources")) {
    RTENV_ASSIGN_OR_RETURN(plan.resources, strings(j["resources"], "resources"));
  }
  return plan;
}

std::string expand_vars(const std::string& value, const EnvLookup& lookup) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '{') {
      size_t close = value.find('}', i + 2);
      if (close != std::string::npos) {
        std::string name = value.substr(i + 2, close - i - 2);
        if (auto v = lookup(name)) out += *v;
        i = close;
        continue;
      }
    }
    out += value[i];
  }
  return out;
}

std::map<std::string, std::string> apply_environment(
    const LaunchPlan& plan, const std::map<std::string, std::string>& caller) {
  auto lookup = [&](const std::string& name) -> std::optional<std::string> {
    auto it = caller.find(name);
    if (it == caller.end()) return std::nullopt;
    return it->second;
  };
  struct Var {
    std::optional<std::string> base;
    std::vector<std::string> front, back;
    std::string separator = ":";
  };
  std::map<std::string, Var> vars;
  std::vector<std::string> order;  // names in first-touched order
  auto var = [&](const std::string& name) -> Var& {
    auto [it, added] = vars.try_emplace(name);
    if (added) {
      it->second.base = lookup(name);
      order.push_back(name);
    }
    return it->second;
  };
  for (const auto& op : plan.env) {
    if (op.kind == EnvOp::Kind::kDefault) continue;
    Var& v = var(op.name);
    switch (op.kind) {
      case EnvOp::Kind::kSet:
        v.base = op.expand ? expand_vars(op.value, lookup) : op.value;
        break;
      case EnvOp::Kind::kUnset:
        v.base.reset();
        break;
      case EnvOp::Kind::kPrepend:
        v.front.insert(v.front.end(), op.values.begin(), op.values.end());
        v.separator = op.separator;
        break;
      case EnvOp::Kind::kAppend:
        v.back.insert(v.back.end(), op.values.begin(), op.values.end());
        v.separator = op.separator;
        break;
      case EnvOp::Kind::kDefault:
        break;
    }
  }
  std::map<std::string, std::string> out = caller;
  for (const auto& name : order) {
    const Var& v = vars[name];
    std::vector<std::string> parts = v.front;
    if (v.base && !v.base->empty()) parts.push_back(*v.base);
    parts.insert(parts.end(), v.back.begin(), v.back.end());
    if (parts.empty()) {
      // Set to "" by the plan stays set; otherwise absent.
      if (v.base) {
        out[name] = "";
      } else {
        out.erase(name);
      }
      continue;
    }
    std::string joined;
    for (size_t i = 0; i < parts.size(); ++i) joined += (i ? v.separator : "") + parts[i];
    out[name] = joined;
  }
  for (const auto& op : plan.env) {
    if (op.kind != EnvOp::Kind::kDefault || out.contains(op.name)) continue;
    bool blocked = false;
    for (const auto& other : op.unless_set)
      blocked |= out.contains(other) || caller.contains(other);
    if (!blocked) out[op.name] = op.value;
  }
  return out;
}

namespace {

bool shell_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

Result<std::vector<std::string>> task_prolog_lines(
    const LaunchPlan& plan, const std::map<std::string, std::string>& caller) {
  if (!plan.wrapper.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("the env runs commands through a wrapper ({}), which environment "
                             "lines cannot express; start the command with `rtenv run` instead",
                             plan.wrapper.front()));
  }
  auto after = apply_environment(plan, caller);
  if (plan.cwd) after[kWorkingDirVariable] = plan.cwd->string();
  std::vector<std::string> lines;
  auto check = [](const std::string& name, const std::string& value) -> Result<void> {
    if (!shell_name(name)) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("the env sets the variable '{}', which is not a name a job "
                               "script's shell can hold",
                               name));
    }
    if (value.find('\n') != std::string::npos || value.find('\r') != std::string::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   fmt::format("the env sets {} to a value with a line break, which one "
                               "`export` line cannot carry",
                               name));
    }
    return {};
  };
  for (const auto& [name, value] : after) {
    auto it = caller.find(name);
    if (it != caller.end() && it->second == value) continue;
    RTENV_TRY(check(name, value));
    lines.push_back("export " + name + "=" + value);
  }
  for (const auto& [name, value] : caller) {
    if (after.contains(name)) continue;
    RTENV_TRY(check(name, ""));
    lines.push_back("unset " + name);
  }
  return lines;
}

}  // namespace rtenv::env
