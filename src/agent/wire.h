#pragma once
// Conversions between the agent's types and its protocol messages (proto/agent.proto), used by
// both ends so they agree by construction.

#include "env/launch_plan.h"
#include "util/result.h"

namespace rtenv::agent {

namespace v1 {
class LaunchPlan;
}

void to_proto(const env::LaunchPlan& plan, v1::LaunchPlan* out);
env::LaunchPlan from_proto(const v1::LaunchPlan& plan);

/// ErrorCode <-> the protocol's enum (as an int: the generated enum's values).
int to_proto(ErrorCode code);
/// An unknown or unspecified value gives `fallback` (an older agent sends none).
ErrorCode error_code_from_proto(int code, ErrorCode fallback);

}  // namespace rtenv::agent
