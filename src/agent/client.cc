#include "agent/client.h"

#include <unistd.h>
#include <chrono>

#include <fmt/format.h>
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

Result<std::unique_ptr<AgentClient>> AgentClient::connect(const env::Home& home, bool start) {
  auto impl = std::make_unique<Impl>();
  std::string target = "unix:" + (home.root / "agent.sock").string();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  impl->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  bool socket_exists = ::access((home.root / "agent.sock").c_str(), F_OK) == 0;
  if (!socket_exists || !wait_connected(*impl->channel, std::chrono::milliseconds(500))) {
    if (!start) {
      return make_error(ErrorCode::kUnavailable,
                        "no rtenv agent is running for {} (start one with "
                        "`rtenv agent`)",
                        home.root.string());
    }
    RTENV_TRY(env::start_agent_process(home));
    // Wait for the socket, then connect on a fresh channel: the first one failed already and
    // would retry only after its backoff.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::access((home.root / "agent.pid").c_str(), F_OK) != 0 &&
           std::chrono::steady_clock::now() < deadline) {
      ::usleep(2000);
    }
    impl->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!wait_connected(*impl->channel, std::chrono::seconds(10))) {
      return make_error(ErrorCode::kUnavailable,
                        "the rtenv agent did not start within 10 s; see {}",
                        (home.logs() / "agent.log").string());
    }
  }
  impl->stub = pb::RuntimeEnvAgent::NewStub(impl->channel);
  return std::unique_ptr<AgentClient>(new AgentClient(std::move(impl)));
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

}  // namespace rtenv::agent
