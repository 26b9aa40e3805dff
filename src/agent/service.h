#pragma once
// The agent's gRPC service and server.

#include <filesystem>
#include <string>

#include "agent/agent.h"
#include "util/result.h"

namespace rtenv::agent {

struct ServeOptions {
  std::filesystem::path socket;  ///< Unix socket, created owner-only
  std::string tcp_address;       ///< e.g. "127.0.0.1:7777"; empty: none
  std::string token;             ///< bearer token TCP callers must send; required with TCP
  /// Serve the agent's metrics (Prometheus text, GET /metrics) over HTTP on "HOST:PORT"; port 0
  /// picks a free one (the address bound is printed). Empty: no metrics endpoint.
  std::string metrics_address;
  int idle_exit_seconds = 0;  ///< exit after this long without calls; 0: never
  /// Started by a client for itself (Ping says so; such an agent may be restarted by a client
  /// with another configuration), not by hand or a service manager.
  bool on_demand = false;
  /// How long a Shutdown call lets running calls (installs) finish before they are cancelled.
  int shutdown_grace_seconds = 600;
};

/// Serves `agent` until SIGTERM/SIGINT, a Shutdown call, or the idle time passes. Takes
/// $RTENV_HOME/agent.lock for its lifetime: kAlreadyExists if another agent serves this home.
/// kInvalidArgument for a metrics address that is not HOST:PORT, kUnavailable if it cannot be
/// bound.
Result<void> serve(Agent& agent, const ServeOptions& options);

}  // namespace rtenv::agent
