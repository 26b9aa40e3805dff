#include "agent/client.h"

#include <unistd.h>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "agent.grpc.pb.h"
#include "agent/wire.h"
#include "env/agent_process.h"
#include "util/fs.h"

namespace rtenv::agent {

namespace pb = ::rtenv::agent::v1;

struct AgentClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::RuntimeEnvAgent::Stub> stub;
};

namespace {

Error unreachable(const grpc::Status& s) {
  return make_error(ErrorCode::kUnavailable, "the rtenv agent did not answer: {}",
                    s.error_message());
}

// Every call has a deadline: an agent that stops answering fails the call instead of hanging it.
constexpr auto kCallDeadline = std::chrono::seconds(60);
constexpr auto kGcDeadline = std::chrono::minutes(30);
// Past the env's own setup timeout (the agent gives up then), time to answer.
constexpr auto kSetupGrace = std::chrono::seconds(60);

void set_deadline(grpc::ClientContext* ctx, std::chrono::seconds in) {
  ctx->set_deadline(std::chrono::system_clock::now() + in);
}

// The deadline of a setup call: the env's config.setup_timeout_seconds (default 600; <= 0: none)
// plus grace.
void set_setup_deadline(grpc::ClientContext* ctx, const std::string& serialized_env) {
  int64_t seconds = 600;
  auto j = nlohmann::json::parse(serialized_env, nullptr, false);
  if (j.is_object() && j.contains("config") && j["config"].is_object() &&
      j["config"].contains("setup_timeout_seconds") &&
      j["config"]["setup_timeout_seconds"].is_number_integer()) {
    seconds = j["config"]["setup_timeout_seconds"].get<int64_t>();
  }
  if (seconds <= 0) return;
  set_deadline(ctx, std::chrono::seconds(seconds) + kSetupGrace);
}

bool wait_connected(grpc::Channel& channel, std::chrono::milliseconds timeout) {
  return channel.WaitForConnected(std::chrono::system_clock::now() + timeout);
}

}  // namespace

AgentClient::AgentClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentClient::~AgentClient() = default;

namespace {

std::shared_ptr<grpc::Channel> open_channel(const env::Home& home) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  return grpc::CreateCustomChannel("unix:" + (home.root / "agent.sock").string(),
                                   grpc::InsecureChannelCredentials(), args);
}

// Starts the agent and connects to it. Fails at once if the started process exits without an
// agent answering (its own error, from the log, is the message).
Result<std::shared_ptr<grpc::Channel>> start_and_connect(const env::Home& home) {
  RTENV_ASSIGN_OR_RETURN(env::StartedAgent started, env::start_agent_process(home));
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  auto exited = [&] {
    std::string tail = env::agent_log_tail(home, started);
    return make_error(ErrorCode::kUnavailable, "the rtenv agent exited at once{}{}",
                      tail.empty() ? "" : ":\n", tail.empty() ? " (no output)" : tail);
  };
  // The pid file is written once the agent listens.
  while (::access((home.root / "agent.pid").c_str(), F_OK) != 0) {
    if (!env::process_alive(started.pid)) {
      // Another client's agent may have won the home's lock: its pid file comes next.
      ::usleep(20'000);
      if (::access((home.root / "agent.pid").c_str(), F_OK) == 0) break;
      return exited();
    }
    if (Clock::now() > deadline) break;
    ::usleep(2000);
  }
  // A fresh channel: a first one that failed would retry only after its backoff.
  auto channel = open_channel(home);
  while (!wait_connected(*channel, std::chrono::milliseconds(100))) {
    if (!env::process_alive(started.pid) && !env::agent_process_running(home)) return exited();
    if (Clock::now() > deadline) {
      return make_error(ErrorCode::kUnavailable,
                        "the rtenv agent did not start within 10 s; see {}",
                        (home.logs() / "agent.log").string());
    }
  }
  return channel;
}

// Waits until the process `pid` is gone; false if it is still there at the deadline.
bool wait_gone(int64_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (env::process_alive(static_cast<pid_t>(pid))) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    ::usleep(10'000);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<AgentClient>> AgentClient::connect(const env::Home& home, bool start) {
  ConnectOptions options;
  options.start = start;
  return connect(home, options);
}

Result<std::unique_ptr<AgentClient>> AgentClient::connect(const env::Home& home,
                                                          const ConnectOptions& options) {
  auto warn = [&](const std::string& message) {
    if (options.warn) {
      options.warn(message);
    } else {
      std::fprintf(stderr, "rtenv: warning: %s\n", message.c_str());
    }
  };
  auto make = [](std::shared_ptr<grpc::Channel> channel) {
    auto impl = std::make_unique<Impl>();
    impl->channel = std::move(channel);
    impl->stub = pb::RuntimeEnvAgent::NewStub(impl->channel);
    return std::unique_ptr<AgentClient>(new AgentClient(std::move(impl)));
  };
  auto channel = open_channel(home);
  bool socket_exists = ::access((home.root / "agent.sock").c_str(), F_OK) == 0;
  if (!socket_exists || !wait_connected(*channel, std::chrono::milliseconds(500))) {
    if (!options.start) {
      return make_error(ErrorCode::kUnavailable,
                        "no rtenv agent is running for {} (start one with "
                        "`rtenv agent`)",
                        home.root.string());
    }
    RTENV_ASSIGN_OR_RETURN(channel, start_and_connect(home));
    return make(std::move(channel));
  }
  auto client = make(std::move(channel));
  if (options.any_config) return client;
  // An agent that is already running may have been started with another configuration than
  // this caller's (a changed variable or config.json).
  auto status = client->status();
  if (!status) return status.error();
  if (status->config_fingerprint == home.config().fingerprint()) return client;
  std::vector<std::string> keys = differing_keys(*status, home);
  std::string differing = keys.empty() ? "its version" : fmt::format("{}", fmt::join(keys, ", "));
  if (!status->on_demand || !options.start) {
    warn(fmt::format(
        "the rtenv agent (pid {}) runs with another configuration than this shell's (differs in: "
        "{}); it keeps its own until restarted (`rtenv agent stop`, then start it again)",
        status->pid, differing));
    return client;
  }
  // Only an idle agent is restarted: one installing for another client keeps going (and this
  // caller uses it as it is), and of two clients that both see the difference only the first
  // restarts it.
  AgentClient::ShutdownIf condition;
  condition.idle = true;
  condition.pid = status->pid;
  condition.unless_fingerprint = home.config().fingerprint();
  auto stopped = client->shutdown(condition);
  if (!stopped) {
    if (stopped.error().code() != ErrorCode::kAlreadyExists) return stopped.error();
    warn(
        fmt::format("the rtenv agent (pid {}) runs with another configuration than this "
                    "shell's (differs in: {}) and was not restarted ({}); this call uses it as "
                    "it is",
                    status->pid, differing, stopped.error().message()));
    return client;
  }
  if (options.note) {
    options.note(fmt::format(
        "the rtenv agent (pid {}) was started with another configuration (differs in: {}); "
        "restarted it with this one",
        status->pid, differing));
  }
  client.reset();
  if (!wait_gone(status->pid, std::chrono::seconds(30))) {
    return make_error(ErrorCode::kUnavailable,
                      "the rtenv agent (pid {}) was asked to restart with this configuration "
                      "but is still finishing its installs after 30 s; try again",
                      status->pid);
  }
  RTENV_ASSIGN_OR_RETURN(channel, start_and_connect(home));
  return make(std::move(channel));
}

std::vector<std::string> AgentClient::differing_keys(const AgentStatus& status,
                                                     const env::Home& home) {
  auto theirs = nlohmann::json::parse(status.config_json, nullptr, /*allow_exceptions=*/false);
  if (theirs.is_discarded()) theirs = nlohmann::json::object();
  return config::Config::differing_keys(theirs, home.config().agent_values());
}

Result<CreateResult> AgentClient::get_or_create(
    const std::string& serialized_env, const std::string& job_id, const std::string& holder,
    const std::function<void(const std::string&)>& progress) {
  pb::GetOrCreateRuntimeEnvRequest req;
  req.set_serialized_runtime_env(serialized_env);
  req.set_job_id(job_id);
  req.set_holder(holder);
  grpc::ClientContext ctx;
  set_setup_deadline(&ctx, serialized_env);
  auto reader = impl_->stub->CreateRuntimeEnvWithProgress(&ctx, req);
  pb::SetupUpdate update;
  std::optional<pb::GetOrCreateRuntimeEnvReply> reply;
  while (reader->Read(&update)) {
    if (update.has_event()) {
      if (progress) progress(update.event().message());
    } else if (update.has_result()) {
      reply = update.result();
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return unreachable(s);
  if (!reply)
    return Error(ErrorCode::kUnavailable, "the rtenv agent ended the call without a result");
  if (!reply->ok()) {
    ErrorCode fallback = reply->retryable() ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument;
    return Error(error_code_from_proto(reply->error_code(), fallback), reply->error_message());
  }
  CreateResult out;
  out.env_id = reply->env_id();
  out.installed = reply->installed();
  out.plan = from_proto(reply->plan());
  out.resource_uris = out.plan.resources;
  for (const auto& t : reply->timings()) out.timings.push_back({t.phase(), t.ms()});
  return out;
}

Result<bool> AgentClient::release(const std::string& serialized_env, const std::string& holder) {
  pb::DeleteRuntimeEnvIfPossibleRequest req;
  req.set_serialized_runtime_env(serialized_env);
  req.set_holder(holder);
  pb::DeleteRuntimeEnvIfPossibleReply reply;
  grpc::ClientContext ctx;
  set_deadline(&ctx, kCallDeadline);
  grpc::Status s = impl_->stub->DeleteRuntimeEnvIfPossible(&ctx, req, &reply);
  if (!s.ok()) return unreachable(s);
  if (!reply.ok()) {
    return Error(error_code_from_proto(reply.error_code(), ErrorCode::kInvalidArgument),
                 reply.error_message());
  }
  return reply.released();
}

Result<std::string> AgentClient::prepare_field(const std::string& field,
                                               const std::string& serialized_env) {
  pb::PrepareFieldRequest req;
  req.set_field(field);
  req.set_serialized_runtime_env(serialized_env);
  pb::PrepareFieldReply reply;
  grpc::ClientContext ctx;  // bounded by the env's setup timeout, which the agent applies
  grpc::Status s = impl_->stub->PrepareField(&ctx, req, &reply);
  if (!s.ok()) return unreachable(s);
  if (!reply.ok()) {
    return Error(error_code_from_proto(reply.error_code(), ErrorCode::kInvalidArgument),
                 reply.error_message());
  }
  return reply.value();
}

Result<uint32_t> AgentClient::release_holder(const std::string& holder) {
  pb::ReleaseHolderRequest req;
  req.set_holder(holder);
  pb::ReleaseHolderReply reply;
  grpc::ClientContext ctx;
  set_deadline(&ctx, kCallDeadline);
  grpc::Status s = impl_->stub->ReleaseHolder(&ctx, req, &reply);
  if (!s.ok()) return unreachable(s);
  return reply.released();
}

Result<pb::GetRuntimeEnvsInfoReply> AgentClient::info() {
  pb::GetRuntimeEnvsInfoReply reply;
  grpc::ClientContext ctx;
  set_deadline(&ctx, kCallDeadline);
  grpc::Status s = impl_->stub->GetRuntimeEnvsInfo(&ctx, pb::GetRuntimeEnvsInfoRequest(), &reply);
  if (!s.ok()) return unreachable(s);
  return reply;
}

Result<pb::GarbageCollectReply> AgentClient::gc(bool dry_run) {
  pb::GarbageCollectRequest req;
  req.set_dry_run(dry_run);
  pb::GarbageCollectReply reply;
  grpc::ClientContext ctx;
  set_deadline(&ctx, kGcDeadline);
  grpc::Status s = impl_->stub->GarbageCollect(&ctx, req, &reply);
  if (!s.ok()) return unreachable(s);
  return reply;
}

Result<void> AgentClient::ping() {
  pb::PingReply reply;
  grpc::ClientContext ctx;
  set_deadline(&ctx, kCallDeadline);
  grpc::Status s = impl_->stub->Ping(&ctx, pb::PingRequest(), &reply);
  if (!s.ok()) return unreachable(s);
  return ok_result();
}

Result<AgentStatus> AgentClient::status() {
  pb::PingReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status s = impl_->stub->Ping(&ctx, pb::PingRequest(), &reply);
  if (!s.ok()) return unreachable(s);
  AgentStatus out;
  out.pid = reply.pid();
  out.version = reply.version();
  out.on_demand = reply.on_demand();
  out.config_fingerprint = reply.config_fingerprint();
  out.config_json = reply.config_json();
  return out;
}

Result<int64_t> AgentClient::shutdown(const ShutdownIf& condition) {
  pb::ShutdownRequest req;
  req.set_only_if_idle(condition.idle);
  req.set_pid(condition.pid);
  req.set_unless_fingerprint(condition.unless_fingerprint);
  pb::ShutdownReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status s = impl_->stub->Shutdown(&ctx, req, &reply);
  if (!s.ok()) return unreachable(s);
  // An older agent does not know the conditions and always stops.
  if (!reply.stopping() && !reply.refused_because().empty()) {
    return make_error(ErrorCode::kAlreadyExists, "the rtenv agent (pid {}) did not stop: {}",
                      reply.pid(), reply.refused_because());
  }
  return reply.pid();
}

}  // namespace rtenv::agent
