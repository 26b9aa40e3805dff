#include "agent/wire.h"

#include "agent.pb.h"

namespace rtenv::agent {

namespace pb = ::rtenv::agent::v1;

namespace {

constexpr std::pair<ErrorCode, pb::ErrorCode> kCodes[] = {
    {ErrorCode::kInvalidArgument, pb::INVALID_ARGUMENT},
    {ErrorCode::kNotFound, pb::NOT_FOUND},
    {ErrorCode::kAlreadyExists, pb::ALREADY_EXISTS},
    {ErrorCode::kCorrupt, pb::CORRUPT},
    {ErrorCode::kUnsafe, pb::UNSAFE},
    {ErrorCode::kTooLarge, pb::TOO_LARGE},
    {ErrorCode::kUnsupported, pb::UNSUPPORTED},
    {ErrorCode::kIo, pb::IO},
    {ErrorCode::kUnavailable, pb::UNAVAILABLE},
    {ErrorCode::kTimeout, pb::TIMEOUT},
    {ErrorCode::kInternal, pb::INTERNAL},
};

constexpr std::pair<env::EnvOp::Kind, pb::EnvOp::Kind> kOps[] = {
    {env::EnvOp::Kind::kSet, pb::EnvOp::SET},
    {env::EnvOp::Kind::kUnset, pb::EnvOp::UNSET},
    {env::EnvOp::Kind::kPrepend, pb::EnvOp::PREPEND},
    {env::EnvOp::Kind::kAppend, pb::EnvOp::APPEND},
    {env::EnvOp::Kind::kDefault, pb::EnvOp::DEFAULT},
};

}  // namespace

void to_proto(const env::LaunchPlan& plan, pb::LaunchPlan* out) {
  for (const auto& op : plan.env) {
    auto* o = out->add_env();
    for (const auto& [mine, theirs] : kOps) {
      if (mine == op.kind) o->set_kind(theirs);
    }
    o->set_name(op.name);
    o->set_value(op.value);
    for (const auto& v : op.values) o->add_values(v);
    o->set_separator(op.separator);
    o->set_expand(op.expand);
    for (const auto& u : op.unless_set) o->add_unless_set(u);
  }
  if (plan.cwd) out->set_cwd(plan.cwd->string());
  for (const auto& w : plan.wrapper) out->add_wrapper(w);
  if (plan.py_executable) out->set_py_executable(plan.py_executable->string());
  for (const auto& r : plan.resources) out->add_resources(r);
}

env::LaunchPlan from_proto(const pb::LaunchPlan& plan) {
  env::LaunchPlan out;
  for (const auto& o : plan.env()) {
    env::EnvOp op;
    for (const auto& [mine, theirs] : kOps) {
      if (theirs == o.kind()) op.kind = mine;
    }
    op.name = o.name();
    op.value = o.value();
    op.values.assign(o.values().begin(), o.values().end());
    op.separator = o.separator().empty() ? ":" : o.separator();
    op.expand = o.expand();
    op.unless_set.assign(o.unless_set().begin(), o.unless_set().end());
    out.env.push_back(std::move(op));
  }
  if (!plan.cwd().empty()) out.cwd = plan.cwd();
  out.wrapper.assign(plan.wrapper().begin(), plan.wrapper().end());
  if (!plan.py_executable().empty()) out.py_executable = plan.py_executable();
  out.resources.assign(plan.resources().begin(), plan.resources().end());
  return out;
}

int to_proto(ErrorCode code) {
  for (const auto& [mine, theirs] : kCodes) {
    if (mine == code) return theirs;
  }
  return pb::ERROR_CODE_UNSPECIFIED;
}

ErrorCode error_code_from_proto(int code, ErrorCode fallback) {
  for (const auto& [mine, theirs] : kCodes) {
    if (theirs == code) return mine;
  }
  return fallback;
}

}  // namespace rtenv::agent
