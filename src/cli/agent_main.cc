// rtenv-agent: the node agent alone (see agent_serve.cc). Same flags as `rtenv agent`.

#include <csignal>
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a helper that exits early must give EPIPE, not end the agent
  try {
    rtenv::cli::AgentArgs args;
    CLI::App app{"rtenv-agent: the rtenv node agent (the same as `rtenv agent`)", "rtenv-agent"};
    rtenv::cli::add_agent_options(&app, &args);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int code = app.exit(e);
      return code == 0 ? 0 : rtenv::cli::kExitUsage;
    }
    return rtenv::cli::agent_command(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rtenv-agent: internal error: %s\n", e.what());
    return 70;
  }
}
