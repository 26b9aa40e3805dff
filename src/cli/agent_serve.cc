// `rtenv agent`: serve this node's agent. Also the whole of the lean `rtenv-agent` binary, which
// links none of the client-side libraries (libcurl, libarchive), so the long-running agent maps
// less memory; `rtenv agent` hands over to it when it is installed beside rtenv.

#include <unistd.h>
#include <cstdio>

#include <fmt/format.h>

#include "agent/service.h"
#include "cli/commands.h"
#include "store/http_server.h"
#include "util/fs.h"

namespace rtenv::cli {

int agent_command(const AgentArgs& args) {
  auto home = open_home();
  if (!home) return fail(kExitUsage, home.error().message());
  agent::AgentOptions options(home->config());
  auto store = open_any_store(home->store_url());
  if (!store) return fail(kExitSetup, "opening the store: " + store.error().message());
  agent::ServeOptions serve;
  serve.socket = home->root / "agent.sock";
  serve.tcp_address = args.tcp_address;
  serve.idle_exit_seconds = args.idle_exit_seconds;
  serve.on_demand = args.on_demand;
  if (auto metrics = home->config().metrics_listen()) {
    // Checked before anything starts: a bad address names where it came from.
    auto address = store::http::parse_listen_address(*metrics);
    if (!address) {
      return fail(kExitUsage, fmt::format("metrics_listen (from {}): {}",
                                          home->config().origin("metrics_listen").describe(),
                                          address.error().message()));
    }
    serve.metrics_address = *metrics;
  }
  if (!args.token_file.empty()) {
    auto token = read_file(args.token_file);
    if (!token) return fail(kExitUsage, token.error().message());
    serve.token = *token;
    while (!serve.token.empty() && std::isspace(static_cast<unsigned char>(serve.token.back()))) {
      serve.token.pop_back();
    }
  }
  auto registry = env::Registry::standard(*home);
  if (!registry) return fail(kExitUsage, registry.error().message());
  auto a = agent::Agent::open(*home, std::move(store).value(), options, *registry);
  if (!a) return fail(kExitSetup, "starting the agent: " + a.error().message());
  std::fprintf(stderr, "rtenv agent %d serving %s on %s%s\n", ::getpid(), home->root.c_str(),
               serve.socket.c_str(),
               args.tcp_address.empty() ? "" : (" and " + args.tcp_address).c_str());
  auto r = agent::serve(**a, serve);
  if (!r) {
    if (r.error().code() == ErrorCode::kAlreadyExists) {
      std::fprintf(stderr, "rtenv: %s\n", r.error().message().c_str());
      return 0;
    }
    return fail(kExitSetup, r.error().message());
  }
  return 0;
}

}  // namespace rtenv::cli
