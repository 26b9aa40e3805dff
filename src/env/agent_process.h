#pragma once
// Starting the node's agent process: by the client that needs it, or ahead of time by a run that
// is about to do slow work first (resolving packages) and will need it after.

#include <sys/types.h>

#include <cstdint>

#include "env/home.h"
#include "util/result.h"

namespace rtenv::env {

/// The running program's path (/proc/self/exe), or "rtenv" if it cannot be read.
std::string self_executable();

/// An agent process this one started.
struct StartedAgent {
  pid_t pid = 0;            ///< the agent's own pid (not a child of the caller)
  uint64_t log_offset = 0;  ///< the size of logs/agent.log before it started
};

/// Starts the agent for `home` in its own session, detached from the caller, with its output
/// appended to logs/agent.log: `rtenv-agent` beside the running program if there is one, else
/// `<this program> agent`. Idle exit after home.config().agent_idle_exit_seconds() (default
/// 600; an agent started this way is "on demand"). It inherits this process's environment, so
/// it builds the same configuration. Returns once it is started, not once it listens. A second
/// agent for the same home exits at once (the first holds agent.lock), so starting one too many
/// is harmless.
Result<StartedAgent> start_agent_process(const Home& home);

/// What an agent that exited early wrote to logs/agent.log after `started.log_offset` (its
/// last lines, at most ~2000 characters); empty if nothing.
std::string agent_log_tail(const Home& home, const StartedAgent& started);

/// True if the process `pid` exists.
bool process_alive(pid_t pid);

/// True if the agent of `home` is running (its pid file names a live process).
bool agent_process_running(const Home& home);

}  // namespace rtenv::env
