// `rtenv store serve`: rtenv's own blob server, for clusters without S3 or a shared filesystem.
// Only in rtenv-full (it links the HTTP server); the lean front hands the command over.

#include <signal.h>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "cli/commands.h"
#include "cli/store_gc_command.h"
#include "store/blob_server.h"
#include "store/http_server.h"
#include "store/local_store.h"
#include "util/fs.h"
#include "util/size.h"

namespace rtenv::cli {

namespace {

// The token from --token-file, else the config's store_token (RTENV_STORE_TOKEN); empty if
// neither.
Result<std::string> read_token(const std::string& token_file) {
  std::string token;
  if (!token_file.empty()) {
    RTENV_ASSIGN_OR_RETURN(token, read_file(token_file));
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
      token.pop_back();
    }
    if (token.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "token file {} is empty", token_file);
    }
  } else if (auto t = process_config().store_token()) {
    token = *t;
  }
  if (token.find_first_of("\r\n") != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "the token has a line break in it");
  }
  return token;
}

int64_t monotonic_ms() {
  timespec t;
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

// One collection of the served store, said on stderr.
void collect_served_store(store::LocalStore& store, int64_t keep_ms) {
  auto c = collect_shared_store(store, keep_ms, /*dry_run=*/false);
  if (!c) {
    std::fprintf(stderr, "rtenv store: collecting %s failed: %s\n", store.url().c_str(),
                 c.error().message().c_str());
    return;
  }
  std::fprintf(stderr, "rtenv store: %s\n", collection_summary(*c, false).c_str());
}

}  // namespace

int store_serve_command(const StoreServeArgs& args) {
  auto address = store::http::parse_listen_address(args.listen);
  if (!address) return fail(kExitUsage, address.error().message());
  auto token = read_token(args.token_file);
  if (!token) return fail(kExitUsage, token.error().message());
  int64_t gc_every_ms = 0;
  int64_t gc_keep_ms = 0;
  if (!args.gc_every.empty()) {
    auto every = parse_duration_ms(args.gc_every);
    if (!every || *every <= 0) {
      return fail(kExitUsage, "store serve: --gc-every: " +
                                  (every ? "must be more than 0" : every.error().message()));
    }
    auto keep = parse_duration_ms(args.gc_older_than);
    if (!keep) return fail(kExitUsage, "store serve: --gc-older-than: " + keep.error().message());
    if (*keep < store::LocalStore::kTouchIntervalMs * 2) {
      return fail(kExitUsage, "store serve: --gc-older-than must be at least " +
                                  format_duration_ms(store::LocalStore::kTouchIntervalMs * 2) +
                                  ": blobs in use are marked as used every " +
                                  format_duration_ms(store::LocalStore::kTouchIntervalMs));
    }
    gc_every_ms = *every;
    gc_keep_ms = *keep;
  }

  store::BlobServerOptions options;
  if (!args.root.empty()) {
    std::error_code ec;
    options.root = fs::absolute(args.root, ec).lexically_normal();
  } else {
    auto home = open_home();
    if (!home) return fail(kExitUsage, home.error().message());
    options.root = home->store();
  }
  options.host = address->first;
  options.port = address->second;
  options.token = std::move(token).value();
  options.threads = args.threads;
  // An encoded blob is its content and a tag byte (or less, compressed); records and missing()
  // lists are small.
  options.max_body_bytes = process_config().max_package_size() + 4096;
  options.verbose = args.verbose;

  // Block the stop signals before any thread starts, so that every thread inherits the mask and
  // only the sigtimedwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = store::BlobServer::start(options);
  if (!server) return fail(kExitSetup, "starting the blob server: " + server.error().message());
  std::printf("listening on %s\n", (*server)->url().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "rtenv store: serving %s%s\n", options.root.c_str(),
               options.token.empty() ? "" : " (bearer token required)");
  if (options.token.empty() && !store::http::is_loopback_host(options.host)) {
    std::fprintf(stderr,
                 "rtenv store: warning: listening on %s without a token: anyone who can reach "
                 "it can read, write and delete blobs (use --token-file or RTENV_STORE_TOKEN)\n",
                 options.host.c_str());
  }

  // The collector works on the same directory through a store of its own; the server's `missing`
  // answers wait while it runs (BlobServer).
  std::unique_ptr<store::LocalStore> collected;
  if (gc_every_ms > 0) {
    auto opened = store::LocalStore::open(options.root);
    if (!opened) return fail(kExitSetup, opened.error().message());
    collected = std::move(opened).value();
    std::fprintf(stderr, "rtenv store: collecting every %s what was not used in %s\n",
                 args.gc_every.c_str(), args.gc_older_than.c_str());
  }
  int64_t next_gc = monotonic_ms();  // the first collection at start
  while ((*server)->running()) {
    if (collected && monotonic_ms() >= next_gc) {
      collect_served_store(*collected, gc_keep_ms);
      next_gc = monotonic_ms() + gc_every_ms;
    }
    timespec tick{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::fprintf(stderr, "rtenv store: stopping (signal %d)\n", sig);
      break;
    }
  }
  bool failed = !(*server)->running();
  (*server)->stop();
  (*server)->wait();
  if (failed) return fail(kExitSetup, "the blob server stopped: its listening socket failed");
  return 0;
}

}  // namespace rtenv::cli
