#pragma once
// A small HTTP/1.1 server for `rtenv store serve`, built so that clients which are slow on
// purpose cannot starve the others. One thread watches every connection that is still sending
// its request's head (poll, no thread per connection): a head must arrive whole within a time
// limit and a size limit, each peer address may have only so many such connections, and the
// head is shown to a gate (the bearer-token check) before anything else. Only a request that
// passed the gate reaches the pool of handler threads, which read its body and answer it.
// Idle keep-alive connections go back to the watching thread.
//
// Bodies are sent with Content-Length (no chunked transfer encoding: refused with 411/501).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "util/result.h"

namespace rtenv::store::http {

/// A request's head, parsed. Header names are kept lowercase.
struct Request {
  std::string method;  ///< "GET", "PUT", ...
  std::string path;    ///< the target up to '?', percent-decoded
  std::string query;   ///< after '?', as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string peer;             ///< the client's address
  uint64_t content_length = 0;  ///< the body's size (0 without Content-Length)
  bool http_1_0 = false;        ///< sent as HTTP/1.0 (which has no chunked answers)

  /// The first header of that name (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type;  ///< none when empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;  ///< close the connection after this answer
  /// For HEAD answers: the Content-Length to announce (the body is not sent).
  std::optional<uint64_t> head_length;
  /// A body too large to hold, sent as it is read instead of `body`: up to `n` bytes per call,
  /// 0 at its end. With `stream_length` it goes with that Content-Length (and must give exactly
  /// that many bytes); without, chunked (to an HTTP/1.0 client: until the connection closes).
  /// An error, or a wrong length, cuts the body short and closes the connection, so the client
  /// sees a failed transfer rather than a short blob.
  std::function<Result<size_t>(char* out, size_t n)> body_stream;
  std::optional<uint64_t> stream_length;
};

/// A request's head that parsed: the request (without its peer), and whether its connection may
/// carry another request after it.
struct ParsedHead {
  Request request;
  bool keep_alive = false;
};

/// Parses a request's head as a client sent it: the request line and header lines, each ending
/// in CRLF except the last, without the blank line that ends the head. Returns the answer that
/// refuses it instead when it is not a request this server takes: 400 for a malformed line, a
/// broken %-escape or a bad Content-Length, 501 for Transfer-Encoding, 505 for a version other
/// than HTTP/1.1 and HTTP/1.0. Never throws; linear in the head's size (the caller bounds it).
std::variant<ParsedHead, Response> parse_request_head(std::string_view head);

/// The body of the request a handler is serving: at most Request::content_length bytes.
class Body {
 public:
  virtual ~Body() = default;
  /// Reads up to `n` bytes; 0 at the end of the body. kTimeout/kUnavailable when the client
  /// stalls or goes away.
  virtual Result<size_t> read(char* out, size_t n) = 0;
  /// The rest of the body, which must be at most `limit` bytes (kTooLarge beyond).
  Result<std::string> read_all(uint64_t limit);
  virtual uint64_t remaining() const = 0;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;           ///< 0: any free port
  unsigned threads = 16;  ///< handler threads: requests answered at once
  /// A request's head (request line and headers) must fit in this many bytes (431 beyond).
  size_t max_head_bytes = 16 * 1024;
  /// ... and arrive whole within this time of its first byte (or of the connection's accept).
  std::chrono::milliseconds head_timeout{10'000};
  /// A connection idle between requests is closed after this long.
  std::chrono::milliseconds keep_alive{1'000};
  /// Each read or write of a body, once a handler serves the request.
  std::chrono::milliseconds io_timeout{30'000};
  /// Connections from one peer address that are still sending a head; more are closed at once.
  unsigned max_waiting_per_peer = 64;
  /// Connections still sending a head, from all peers together.
  unsigned max_waiting = 4096;
  /// Requests served on one connection before it is closed.
  unsigned max_requests_per_connection = 1000;
};

/// Sees each request's head as soon as it is whole, on the watching thread (so it must be quick
/// and must not block): an answer refuses the request (it is sent and the connection closed,
/// the body never read); nullopt lets it through to the handler.
using Gate = std::function<std::optional<Response>(const Request&)>;
/// Answers a request that passed the gate, on a handler thread. An exception becomes a 500.
using Handler = std::function<void(const Request&, Body&, Response&)>;
/// Called once per answered request (also refusals by the gate and the server itself).
using Logger = std::function<void(const Request&, const Response&, uint64_t body_bytes_read,
                                  std::chrono::milliseconds elapsed)>;

class Server {
 public:
  /// Binds the address and starts serving. kInvalidArgument for an address that does not
  /// resolve, kUnavailable if it cannot be bound.
  static Result<std::unique_ptr<Server>> start(ServerOptions options, Gate gate, Handler handler,
                                               Logger logger);
  ~Server();  ///< stops and waits
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  /// Stops accepting, closes the connections that wait, and lets handlers finish. Idempotent;
  /// callable from any thread.
  void stop();
  /// False once stopped (after stop(), or when the listening socket failed).
  bool running() const;
  /// Blocks until every thread of the server has ended.
  void wait();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The reason phrase of a status code ("Not Found"), "Unknown" for codes not listed.
std::string_view reason_phrase(int status);

/// Parses "HOST:PORT" ("[v6 address]:PORT" for IPv6; PORT 0 to 65535): kInvalidArgument naming
/// the problem.
Result<std::pair<std::string, int>> parse_listen_address(std::string_view address);

/// True for an address that only this machine can reach (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(std::string_view host);

}  // namespace rtenv::store::http
