// Load generator for the rtenv node agent, for bench/agent/run.py (which compiles it with g++
// against the code CMake generates from proto/agent.proto; it is not part of the CMake build).
//
//   rpc_latency latency SOCKET ENV_JSON HOLDER JOB CALLS WARMUP [RPCS]
//       One channel, one call at a time. After WARMUP rounds, CALLS rounds of: Ping (p), unary
//       GetOrCreateRuntimeEnv (g) and the streaming CreateRuntimeEnvWithProgress (s; what `rtenv
//       env create` and `rtenv run` use) for ENV_JSON held by HOLDER, in an order that rotates
//       every round. RPCS picks which (default "pgs"). Prints one JSON object:
//       {"ping": [µs...], "get_or_create": [...], "stream": [...]}.
//
// Exits 1 (with a message on stderr) on any RPC failure or error reply.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "agent.grpc.pb.h"

namespace pb = ::rtenv::agent::v1;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rpc_latency: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<pb::RuntimeEnvAgent::Stub> connect(const std::string& socket) {
  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    die("cannot connect to unix:" + socket);
  }
  return pb::RuntimeEnvAgent::NewStub(channel);
}

void ping(pb::RuntimeEnvAgent::Stub& stub) {
  grpc::ClientContext ctx;
  pb::PingReply reply;
  grpc::Status s = stub.Ping(&ctx, pb::PingRequest(), &reply);
  if (!s.ok()) die("Ping: " + s.error_message());
}

pb::GetOrCreateRuntimeEnvReply get_or_create(pb::RuntimeEnvAgent::Stub& stub,
                                             const pb::GetOrCreateRuntimeEnvRequest& req) {
  grpc::ClientContext ctx;
  pb::GetOrCreateRuntimeEnvReply reply;
  grpc::Status s = stub.GetOrCreateRuntimeEnv(&ctx, req, &reply);
  if (!s.ok()) die("GetOrCreateRuntimeEnv: " + s.error_message());
  if (!reply.ok()) die("GetOrCreateRuntimeEnv replied with an error: " + reply.error_message());
  return reply;
}

void stream(pb::RuntimeEnvAgent::Stub& stub, const pb::GetOrCreateRuntimeEnvRequest& req) {
  grpc::ClientContext ctx;
  auto reader = stub.CreateRuntimeEnvWithProgress(&ctx, req);
  pb::SetupUpdate update;
  bool got = false;
  while (reader->Read(&update)) {
    if (update.has_result()) {
      if (!update.result().ok())
        die("CreateRuntimeEnvWithProgress: " + update.result().error_message());
      got = true;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) die("CreateRuntimeEnvWithProgress: " + s.error_message());
  if (!got) die("CreateRuntimeEnvWithProgress ended without a result");
}

void print_samples(const char* name, const std::vector<double>& v, bool last) {
  std::printf("\"%s\":[", name);
  for (size_t i = 0; i < v.size(); ++i) std::printf(i ? ",%.2f" : "%.2f", v[i]);
  std::printf("]%s", last ? "" : ",");
}

int latency(int argc, char** argv) {
  if (argc != 8 && argc != 9) die("usage: latency SOCKET ENV_JSON HOLDER JOB CALLS WARMUP [RPCS]");
  // Which RPCs: any of p (Ping), g (GetOrCreateRuntimeEnv), s (CreateRuntimeEnvWithProgress).
  std::string rpcs = argc == 9 ? argv[8] : "pgs";
  std::vector<int> kinds;
  for (char c : rpcs) kinds.push_back(c == 'p' ? 0 : c == 'g' ? 1 : c == 's' ? 2 : -1);
  if (kinds.empty() || std::count(kinds.begin(), kinds.end(), -1)) die("RPCS: letters p, g, s");
  const long n = static_cast<long>(kinds.size());
  auto stub = connect(argv[2]);
  pb::GetOrCreateRuntimeEnvRequest req;
  req.set_serialized_runtime_env(argv[3]);
  req.set_holder(argv[4]);
  req.set_job_id(argv[5]);
  long calls = std::atol(argv[6]), warmup = std::atol(argv[7]);

  std::vector<double> t_ping, t_goc, t_stream;
  t_ping.reserve(calls);
  t_goc.reserve(calls);
  t_stream.reserve(calls);
  auto us = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  };
  for (long i = -warmup; i < calls; ++i) {
    for (long k = 0; k < n; ++k) {
      int which =
          kinds[static_cast<size_t>(((i % n) + n + k) % n)];  // rotate the order every round
      auto t0 = Clock::now();
      if (which == 0)
        ping(*stub);
      else if (which == 1)
        get_or_create(*stub, req);
      else
        stream(*stub, req);
      auto t1 = Clock::now();
      if (i < 0) continue;
      (which == 0 ? t_ping : which == 1 ? t_goc : t_stream).push_back(us(t0, t1));
    }
  }
  std::printf("{");
  print_samples("ping", t_ping, false);
  print_samples("get_or_create", t_goc, false);
  print_samples("stream", t_stream, true);
  std::printf("}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "latency") return latency(argc, argv);
  die("usage: rpc_latency latency SOCKET ENV_JSON HOLDER JOB CALLS WARMUP");
}
