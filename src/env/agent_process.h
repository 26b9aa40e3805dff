#pragma once
// Starting the node's agent process: by the client that needs it, or ahead of time by a run that
// is about to do slow work first (resolving packages) and will need it after.

#include "env/home.h"
#include "util/result.h"

namespace rtenv::env {

/// The running program's path (/proc/self/exe), or "rtenv" if it cannot be read.
std::string self_executable();

/// Starts the agent for `home` in its own session, detached from the caller, with its output
/// appended to logs/agent.log: `rtenv-agent` beside the running program if there is one, else
/// `<this program> agent`. Idle exit after $RTENV_AGENT_IDLE_EXIT seconds (default 600). Returns
/// once it is started, not once it listens. A second agent for the same home exits at once
/// (the first holds agent.lock), so starting one too many is harmless.
Result<void> start_agent_process(const Home& home);

/// True if the agent of `home` is running (its pid file names a live process).
bool agent_process_running(const Home& home);

}  // namespace rtenv::env
