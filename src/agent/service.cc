#include "agent/service.h"

#include <sys/stat.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "agent.grpc.pb.h"
#include "agent/wire.h"
#include "store/http_server.h"
#include "util/fs.h"

namespace rtenv::agent {
namespace {

namespace pb = ::rtenv::agent::v1;

std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop = true; }

// What a caller names (a job, a holder, a field) goes into the database, log lines and log file
// names: bounded, and one line of printable characters.
constexpr size_t kMaxName = 1024;
constexpr size_t kMaxSerializedEnv = 16 << 20;
constexpr size_t kMaxSerializedConfig = 64 << 10;

Result<void> check_name(std::string_view what, std::string_view value) {
  if (value.size() > kMaxName) {
    return make_error(ErrorCode::kInvalidArgument, "{} is {} bytes long; at most {} are accepted",
                      what, value.size(), kMaxName);
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{} contains a control character (byte {:#04x}); give one line of "
                        "printable characters",
                        what, c);
    }
  }
  return ok_result();
}

Result<void> check_text(std::string_view what, std::string_view value, size_t max) {
  if (value.size() <= max) return ok_result();
  return make_error(ErrorCode::kTooLarge, "{} is {} bytes long; at most {} are accepted", what,
                    value.size(), max);
}

Result<void> check_request(const pb::GetOrCreateRuntimeEnvRequest& req) {
  RTENV_TRY(check_name("job_id", req.job_id()));
  RTENV_TRY(check_name("holder", req.holder()));
  RTENV_TRY(check_text("serialized_runtime_env", req.serialized_runtime_env(), kMaxSerializedEnv));
  return check_text("serialized_config", req.serialized_config(), kMaxSerializedConfig);
}

void fill_context(const CreateResult& r, pb::GetOrCreateRuntimeEnvReply* reply) {
  reply->set_ok(true);
  reply->set_env_id(r.env_id);
  reply->set_installed(r.installed);
  to_proto(r.plan, reply->mutable_plan());
  for (const auto& t : r.timings) {
    auto* pt = reply->add_timings();
    pt->set_phase(t.phase);
    pt->set_ms(t.ms);
  }
}

void fill_error(const Error& e, pb::GetOrCreateRuntimeEnvReply* reply) {
  reply->set_ok(false);
  reply->set_error_message(e.message());
  reply->set_retryable(e.retryable());
  reply->set_error_code(static_cast<pb::ErrorCode>(to_proto(e.code())));
}

class Service final : public pb::RuntimeEnvAgent::Service {
 public:
  Service(Agent& agent, std::string token, bool on_demand, std::atomic<bool>* shutdown)
      : agent_(agent),
        token_(std::move(token)),
        on_demand_(on_demand),
        shutdown_(shutdown),
        config_json_(agent.home().config().agent_values().dump()),
        fingerprint_(agent.home().config().fingerprint()) {}

  grpc::Status GetOrCreateRuntimeEnv(grpc::ServerContext* ctx,
                                     const pb::GetOrCreateRuntimeEnvRequest* req,
                                     pb::GetOrCreateRuntimeEnvReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto bad = check_request(*req); !bad) {
      fill_error(bad.error(), reply);
      return grpc::Status::OK;
    }
    auto r = agent_.get_or_create(req->serialized_runtime_env(), req->serialized_config(),
                                  req->job_id(), req->holder());
    if (r)
      fill_context(*r, reply);
    else
      fill_error(r.error(), reply);
    return grpc::Status::OK;
  }

  grpc::Status CreateRuntimeEnvWithProgress(grpc::ServerContext* ctx,
                                            const pb::GetOrCreateRuntimeEnvRequest* req,
                                            grpc::ServerWriter<pb::SetupUpdate>* writer) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto bad = check_request(*req); !bad) {
      pb::SetupUpdate refused;
      fill_error(bad.error(), refused.mutable_result());
      writer->Write(refused);
      return grpc::Status::OK;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::mutex mu;
    auto progress = [&](const std::string& message) {
      pb::SetupUpdate u;
      u.mutable_event()->set_message(message);
      u.mutable_event()->set_elapsed_ms(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      std::lock_guard lock(mu);
      writer->Write(u);
    };
    auto r = agent_.get_or_create(req->serialized_runtime_env(), req->serialized_config(),
                                  req->job_id(), req->holder(), progress);
    pb::SetupUpdate last;
    if (r)
      fill_context(*r, last.mutable_result());
    else
      fill_error(r.error(), last.mutable_result());
    std::lock_guard lock(mu);
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status DeleteRuntimeEnvIfPossible(grpc::ServerContext* ctx,
                                          const pb::DeleteRuntimeEnvIfPossibleRequest* req,
                                          pb::DeleteRuntimeEnvIfPossibleReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    auto named = check_name("holder", req->holder());
    auto r = named ? agent_.release(req->serialized_runtime_env(), req->holder())
                   : Result<bool>(named.error());
    reply->set_ok(r.ok());
    if (r) {
      reply->set_released(*r);
    } else {
      reply->set_error_message(r.error().message());
      reply->set_error_code(static_cast<pb::ErrorCode>(to_proto(r.error().code())));
    }
    return grpc::Status::OK;
  }

  grpc::Status PrepareField(grpc::ServerContext* ctx, const pb::PrepareFieldRequest* req,
                            pb::PrepareFieldReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    auto named = check_name("field", req->field());
    if (named) {
      named =
          check_text("serialized_runtime_env", req->serialized_runtime_env(), kMaxSerializedEnv);
    }
    auto r = named ? agent_.prepare_field(req->field(), req->serialized_runtime_env())
                   : Result<std::string>(named.error());
    reply->set_ok(r.ok());
    if (r) {
      reply->set_value(*r);
    } else {
      reply->set_error_message(r.error().message());
      reply->set_error_code(static_cast<pb::ErrorCode>(to_proto(r.error().code())));
    }
    return grpc::Status::OK;
  }

  grpc::Status ReleaseHolder(grpc::ServerContext* ctx, const pb::ReleaseHolderRequest* req,
                             pb::ReleaseHolderReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    if (auto bad = check_name("holder", req->holder()); !bad) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, bad.error().message());
    }
    auto r = agent_.release_holder(req->holder());
    if (!r) return grpc::Status(grpc::StatusCode::INTERNAL, r.error().message());
    reply->set_released(*r);
    return grpc::Status::OK;
  }

  grpc::Status GetRuntimeEnvsInfo(grpc::ServerContext* ctx, const pb::GetRuntimeEnvsInfoRequest*,
                                  pb::GetRuntimeEnvsInfoReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    auto info = agent_.info();
    if (!info) return grpc::Status(grpc::StatusCode::INTERNAL, info.error().message());
    for (const auto& e : info->envs) {
      auto* pe = reply->add_envs();
      pe->set_env_id(e.env_id);
      pe->set_state(e.state);
      pe->set_error_message(e.error);
      pe->set_job_id(e.job_id);
      pe->set_summary(e.summary);
      pe->set_created_ms(e.created_ms);
      pe->set_last_used_ms(e.last_used_ms);
      for (const auto& h : e.holders) pe->add_holders(h);
      for (const auto& u : e.resources) pe->add_resource_uris(u);
      auto timings = nlohmann::json::parse(e.timings, nullptr, false);
      if (timings.is_array()) {
        for (const auto& t : timings) {
          if (!t.is_array() || t.size() != 2 || !t[0].is_string() || !t[1].is_number()) continue;
          auto* pt = pe->add_timings();
          pt->set_phase(t[0].get<std::string>());
          pt->set_ms(t[1].get<double>());
        }
      }
    }
    for (size_t i = 0; i < info->resources.size(); ++i) {
      const auto& r = info->resources[i];
      auto* pr = reply->add_resources();
      pr->set_uri(r.uri);
      pr->set_kind(r.kind);
      pr->set_state("ready");
      pr->set_size_bytes(r.size_bytes);
      pr->set_created_ms(r.created_ms);
      pr->set_last_used_ms(r.last_used_ms);
      pr->set_env_references(r.env_references);
      pr->set_process_leases(info->process_leases[i]);
      pr->set_path(info->paths[i]);
    }
    reply->set_cache_bytes(info->cache_bytes);
    reply->set_high_watermark_bytes(agent_.options().cache_high_bytes);
    reply->set_low_watermark_bytes(agent_.options().cache_low_bytes);
    return grpc::Status::OK;
  }

  grpc::Status GarbageCollect(grpc::ServerContext* ctx, const pb::GarbageCollectRequest* req,
                              pb::GarbageCollectReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    auto r = agent_.gc(req->dry_run(), /*in_background=*/false, /*prune_tool_caches=*/true);
    if (!r) return grpc::Status(grpc::StatusCode::INTERNAL, r.error().message());
    for (const auto& t : r->tool_caches) {
      auto* out = reply->add_tool_caches();
      out->set_name(t.name);
      out->set_bytes_before(t.bytes_before);
      out->set_bytes_after(t.bytes_after);
      out->set_pruned(t.pruned);
      out->set_note(t.note);
    }
    for (const auto& u : r->evicted) reply->add_evicted(u);
    for (uint64_t b : r->evicted_bytes) reply->add_evicted_bytes(b);
    reply->set_bytes_freed(r->bytes_freed);
    reply->set_cache_bytes(r->cache_bytes);
    return grpc::Status::OK;
  }

  grpc::Status Ping(grpc::ServerContext* ctx, const pb::PingRequest*,
                    pb::PingReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    reply->set_pid(::getpid());
    reply->set_version("0.1.0");
    reply->set_config_fingerprint(fingerprint_);
    reply->set_config_json(config_json_);
    reply->set_on_demand(on_demand_);
    return grpc::Status::OK;
  }

  grpc::Status Shutdown(grpc::ServerContext* ctx, const pb::ShutdownRequest* req,
                        pb::ShutdownReply* reply) override {
    if (auto s = authorize(ctx); !s.ok()) return s;
    reply->set_pid(::getpid());
    std::string refused;
    if (req->pid() != 0 && req->pid() != ::getpid()) {
      refused = fmt::format("it is agent {}, not {}", ::getpid(), req->pid());
    } else if (!req->unless_fingerprint().empty() && req->unless_fingerprint() == fingerprint_) {
      refused = "it runs with that configuration already";
    } else if (req->only_if_idle() && agent_.busy()) {
      refused = "it is installing an env";
    }
    reply->set_stopping(refused.empty());
    reply->set_refused_because(refused);
    if (refused.empty()) *shutdown_ = true;
    return grpc::Status::OK;
  }

 private:
  // The Unix socket is owner-only; TCP callers must show the token.
  grpc::Status authorize(grpc::ServerContext* ctx) const {
    if (ctx->peer().starts_with("unix:")) return grpc::Status::OK;
    auto md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (!token_.empty() && it != md.end() &&
        std::string_view(it->second.data(), it->second.size()) == "Bearer " + token_) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this agent requires 'authorization: Bearer <token>' over TCP");
  }

  Agent& agent_;
  std::string token_;
  bool on_demand_;
  std::atomic<bool>* shutdown_;
  std::string config_json_;
  std::string fingerprint_;
};

// The metrics endpoint: GET (or HEAD) /metrics and nothing else. Whatever else arrives is refused
// by the gate, before any body is read; the server bounds heads and slow clients.
Result<std::unique_ptr<store::http::Server>> serve_metrics(Agent& agent,
                                                           const std::string& address) {
  namespace http = store::http;
  RTENV_ASSIGN_OR_RETURN(auto host_port, http::parse_listen_address(address));
  http::ServerOptions o;
  o.host = host_port.first;
  o.port = host_port.second;
  o.threads = 2;  // scrapes are rare and quick
  o.max_head_bytes = 8 * 1024;
  o.head_timeout = std::chrono::milliseconds(5'000);
  o.max_waiting_per_peer = 16;
  o.max_waiting = 256;
  auto gate = [](const http::Request& req) -> std::optional<http::Response> {
    http::Response res;
    res.content_type = "text/plain; charset=utf-8";
    res.close = true;
    if (req.path != "/metrics") {
      res.status = 404;
      res.body = "not found: the agent serves its metrics on /metrics\n";
      return res;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.headers.emplace_back("Allow", "GET, HEAD");
      res.body = "only GET and HEAD are served on /metrics\n";
      return res;
    }
    return std::nullopt;
  };
  auto handler = [&agent](const http::Request& req, http::Body&, http::Response& res) {
    res.content_type = std::string(metrics::kContentType);
    std::string text = agent.metrics_text();
    if (req.method == "HEAD") {
      res.head_length = text.size();
    } else {
      res.body = std::move(text);
    }
  };
  return http::Server::start(std::move(o), gate, handler, nullptr);
}

}  // namespace

Result<void> serve(Agent& agent, const ServeOptions& options) {
  fs::path lock_path = agent.home().root / "agent.lock";
  RTENV_ASSIGN_OR_RETURN(FileLock lock,
                         FileLock::try_acquire(lock_path, FileLock::Mode::kExclusive));
  if (!lock.held()) {
    return make_error(ErrorCode::kAlreadyExists, "an agent is already serving {}",
                      agent.home().root.string());
  }
  if (!options.tcp_address.empty() && options.token.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "listening on TCP needs a bearer token (--token-file)");
  }
  // Bound only by the agent that holds the lock, before it serves: a second agent that finds
  // the home served never takes the port, and an address that cannot be bound stops this one.
  std::unique_ptr<store::http::Server> metrics_server;
  if (!options.metrics_address.empty()) {
    auto m = serve_metrics(agent, options.metrics_address);
    if (!m) return m.error().with_context("serving metrics on " + options.metrics_address);
    metrics_server = std::move(m).value();
    std::string host = options.metrics_address.substr(0, options.metrics_address.rfind(':'));
    std::fprintf(stderr, "rtenv agent: serving metrics on http://%s:%d/metrics\n", host.c_str(),
                 metrics_server->port());
  }
  ::unlink(options.socket.c_str());  // a stale socket from a crash; we hold the agent lock
  std::atomic<bool> shutdown_requested{false};
  Service service(agent, options.token, options.on_demand, &shutdown_requested);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + options.socket.string(), grpc::InsecureServerCredentials());
  int tcp_port = 0;  // the port bound, when the address asks for any (":0")
  if (!options.tcp_address.empty()) {
    builder.AddListeningPort(options.tcp_address, grpc::InsecureServerCredentials(), &tcp_port);
  }
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  mode_t old_mask = ::umask(077);  // the socket is created owner-only
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_mask);
  if (!server) {
    return make_error(ErrorCode::kUnavailable, "cannot listen on {}{}", options.socket.string(),
                      options.tcp_address.empty() ? "" : " or " + options.tcp_address);
  }
  ::chmod(options.socket.c_str(), 0600);
  if (!options.tcp_address.empty()) {
    // The address as bound: with port 0 the system chose it, and a client needs to know it.
    std::string host = options.tcp_address.substr(0, options.tcp_address.rfind(':'));
    std::fprintf(stderr, "rtenv agent: listening on %s:%d (TCP, bearer token required)\n",
                 host.c_str(), tcp_port);
  }

  g_stop = false;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  (void)write_file_atomic(agent.home().root / "agent.pid", std::to_string(::getpid()) + "\n");
  std::thread watcher([&] {
    while (!g_stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (shutdown_requested) {
        // New calls are refused from here on; running ones (installs) get the grace period.
        std::fprintf(stderr, "rtenv agent %d: shutdown requested\n", ::getpid());
        server->Shutdown(std::chrono::system_clock::now() +
                         std::chrono::seconds(options.shutdown_grace_seconds));
        return;
      }
      if (options.idle_exit_seconds > 0 && agent.idle_ms() > options.idle_exit_seconds * 1000LL) {
        break;
      }
      // $RTENV_HOME was deleted under us (a test's temp home, a user's cleanup): nothing left
      // to serve.
      if (::access(lock_path.c_str(), F_OK) != 0) break;
    }
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  g_stop = true;
  watcher.join();
  if (metrics_server) metrics_server->stop();
  ::unlink(options.socket.c_str());
  ::unlink((agent.home().root / "agent.pid").c_str());
  return ok_result();
}

}  // namespace rtenv::agent
