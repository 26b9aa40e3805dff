// rtenv-agent: the node agent alone (see agent_serve.cc). Same flags as `rtenv agent`.

#include <csignal>
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "env/archive_import.h"

int main(int argc, char** argv) {
  rtenv::env::enable_image_layers();
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
    // A configuration that cannot be read stops the agent at once, with the reason (which the
    // client that started it reports).
    rtenv::config::Flags flags;
    if (!args.metrics_listen.empty()) flags.metrics_listen = args.metrics_listen;
    auto config = rtenv::config::Config::from_environment(flags);
    if (!config) return rtenv::cli::fail(rtenv::cli::kExitUsage, config.error().message());
    rtenv::cli::set_config(
        std::make_shared<const rtenv::config::Config>(std::move(config).value()));
    return rtenv::cli::agent_command(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rtenv-agent: internal error: %s\n", e.what());
    return 70;
  }
}
