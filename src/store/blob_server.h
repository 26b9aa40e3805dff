#pragma once
// rtenv's own blob server (`rtenv store serve`): a LocalStore directory served over HTTP/1.1
// (store/http_server.h, which keeps slow clients from starving the others), for
// clusters without S3 or a shared filesystem. The client is HttpStore (store/http_store.h, which
// describes the protocol). Library rtenv_blob_server, linked only into rtenv-full (and tests).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace rtenv::store {

namespace fs = std::filesystem;

struct BlobServerOptions {
  fs::path root;                   ///< the LocalStore directory served (created if needed)
  std::string host = "127.0.0.1";  ///< address to listen on
  int port = 7878;                 ///< 0: any free port (see BlobServer::port())
  /// Callers must send `Authorization: Bearer <token>`; empty: anyone may call.
  std::string token;
  /// Requests answered at once; more wait (after their token was checked). Each node fetching
  /// keeps up to 16 requests in flight, so the default serves four nodes at the same moment.
  unsigned threads = 64;
  /// Largest request body: an encoded blob, a record or a missing() list (413 beyond, refused
  /// before the body travels). `rtenv store serve` sets the config's max_package_size.
  uint64_t max_body_bytes = 8ull << 30;
  /// How long an idle connection is kept open for its next request (no thread is held
  /// meanwhile).
  int keep_alive_seconds = 1;
  /// A request's head must arrive whole within this time, or the connection is closed (408).
  std::chrono::milliseconds head_timeout{10'000};
  /// Connections from one address still sending a request's head; beyond, the one of that
  /// address that has waited longest is closed (store/http_server.h).
  unsigned max_waiting_per_peer = 64;
  /// One line per request on stderr: method, path, status, bytes in and out, milliseconds.
  bool verbose = false;
};

/// A running server. Blobs are kept as LocalStore keeps them (raw, so the directory is also a
/// valid file:// store) and encoded with blob_codec on the way out. An upload is decoded and
/// hashed before it is stored: a body whose content does not hash to its name is refused (400)
/// and nothing of it is kept. Reads are not re-verified here: every client verifies what it
/// gets, so a damaged file on this disk is caught at the reader.
///
/// Thread-safe: stop() may be called from any thread (a signal handler's thread, a test).
class BlobServer {
 public:
  /// Opens the store, binds the address and starts serving on background threads. kInvalidArgument
  /// for a bad address, kUnavailable if the address cannot be bound (in use).
  static Result<std::unique_ptr<BlobServer>> start(BlobServerOptions options);
  ~BlobServer();  ///< stops and waits for the threads
  BlobServer(const BlobServer&) = delete;
  BlobServer& operator=(const BlobServer&) = delete;

  /// The port bound (the actual one when 0 was asked for).
  int port() const;
  /// "http://host:port" ("http://[::1]:port" for an IPv6 address).
  std::string url() const;
  /// Stops accepting and ends the serving threads once their requests are answered. Idempotent.
  void stop();
  /// False once the server has stopped (after stop(), or a failure of the listening socket).
  bool running() const;
  /// Blocks until the server has stopped (after stop(), or a failure of the listening socket).
  void wait();

 private:
  struct Impl;
  explicit BlobServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtenv::store
