#pragma once
// Talking to the node agent: found on $RTENV_HOME/agent.sock, started on demand.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "env/home.h"

namespace rtenv::agent {

namespace v1 {
class GetRuntimeEnvsInfoReply;
class GarbageCollectReply;
}  // namespace v1

/// A connection to the agent of one $RTENV_HOME. Thread-compatible.
class AgentClient {
 public:
  /// Connects to the agent's socket; if nothing answers and `start` is true, starts the agent
  /// (`<rtenv> agent --idle-exit <seconds>`, detached, logging to $RTENV_HOME/logs/agent.log;
  /// the idle time is RTENV_AGENT_IDLE_EXIT, default 600 s) and waits up to 10 s for it.
  /// kUnavailable if no agent can be reached.
  static Result<std::unique_ptr<AgentClient>> connect(const env::Home& home, bool start);
  ~AgentClient();

  /// GetOrCreateRuntimeEnv with live progress (each event is passed to `progress`).
  Result<CreateResult> get_or_create(const std::string& serialized_env, const std::string& job_id,
                                     const std::string& holder,
                                     const std::function<void(const std::string&)>& progress);
  Result<bool> release(const std::string& serialized_env, const std::string& holder);
  Result<uint32_t> release_holder(const std::string& holder);
  Result<v1::GetRuntimeEnvsInfoReply> info();
  Result<v1::GarbageCollectReply> gc(bool dry_run);
  /// An empty round trip (for measuring the RPC itself).
  Result<void> ping();

 private:
  struct Impl;
  explicit AgentClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtenv::agent
