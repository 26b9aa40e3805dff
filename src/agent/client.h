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

/// How AgentClient::connect goes about it.
struct ConnectOptions {
  /// Start the agent if none answers (and restart one started on demand whose configuration is
  /// not the caller's).
  bool start = true;
  /// Told what connect did that a verbose caller shows (an agent restarted); may be empty.
  std::function<void(const std::string&)> note;
  /// Told of an agent kept with another configuration than the caller's; empty: printed to
  /// stderr as "rtenv: warning: ...".
  std::function<void(const std::string&)> warn;
  /// The caller only reads or gives back references (env list, env release): any running
  /// agent's configuration will do, and one is never restarted for it (an engine's release hook
  /// runs with another environment than its jobs, and restarting their agent for it would race
  /// with them).
  bool any_config = false;
};

/// What an agent says about itself (Ping).
struct AgentStatus {
  int64_t pid = 0;
  std::string version;
  bool on_demand = false;  ///< started by a client, with an idle exit
  std::string config_fingerprint;
  std::string config_json;  ///< config::Config::agent_values() of the agent
};

/// A connection to the agent of one $RTENV_HOME. Thread-compatible.
class AgentClient {
 public:
  /// Connects to the agent's socket; if nothing answers and `options.start` is true, starts the
  /// agent (`<rtenv> agent --idle-exit <seconds>`, detached, logging to
  /// $RTENV_HOME/logs/agent.log; the idle time is the config's agent_idle_exit_seconds) and
  /// waits up to 10 s for it; if the process it started exits first, fails at once with what
  /// the agent wrote. Then compares the agent's configuration (Ping) with `home.config()`: an
  /// agent started on demand with another one is shut down and started again with the caller's
  /// (options.note says so); one started by hand is kept, and options.warn names the keys that
  /// differ. kUnavailable if no agent can be reached.
  static Result<std::unique_ptr<AgentClient>> connect(const env::Home& home,
                                                      const ConnectOptions& options);
  /// connect() with options.start = `start`.
  static Result<std::unique_ptr<AgentClient>> connect(const env::Home& home, bool start);
  ~AgentClient();

  /// GetOrCreateRuntimeEnv with live progress (each event is passed to `progress`).
  Result<CreateResult> get_or_create(const std::string& serialized_env, const std::string& job_id,
                                     const std::string& holder,
                                     const std::function<void(const std::string&)>& progress);
  Result<bool> release(const std::string& serialized_env, const std::string& holder);
  Result<uint32_t> release_holder(const std::string& holder);
  /// The value of `field` prepared by the agent (Field::prepares_in_agent), from an env holding
  /// that field and the env's config; the field's own errors as they are.
  Result<std::string> prepare_field(const std::string& field, const std::string& serialized_env);
  Result<v1::GetRuntimeEnvsInfoReply> info();
  Result<v1::GarbageCollectReply> gc(bool dry_run);
  /// An empty round trip (for measuring the RPC itself).
  Result<void> ping();
  /// The agent's pid, version and configuration.
  Result<AgentStatus> status();
  /// Asks the agent to stop (it refuses new calls, lets running ones finish, exits); returns its
  /// pid. Does not wait for it to be gone.
  /// How shutdown() goes about it; the defaults stop the agent whatever it is doing (running
  /// installs finish first).
  struct ShutdownIf {
    bool idle = false;               ///< only if no install is running
    int64_t pid = 0;                 ///< only if it is this agent (0: any)
    std::string unless_fingerprint;  ///< not if it runs with this configuration already
  };
  /// Asks the agent to stop. Returns its pid, or kAlreadyExists (with its reason) if it refused.
  Result<int64_t> shutdown(const ShutdownIf& condition);
  Result<int64_t> shutdown() { return shutdown(ShutdownIf{}); }
  /// The keys whose values differ between the agent's configuration and `home.config()`.
  static std::vector<std::string> differing_keys(const AgentStatus& status, const env::Home& home);

 private:
  struct Impl;
  explicit AgentClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtenv::agent
