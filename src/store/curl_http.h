#pragma once
// The HTTP layer a network store needs, on libcurl: one request on this thread's handle (its
// connections reused between requests), and the retry loop with randomized exponential backoff.
// Store-neutral (no store's URL layout or error format; AWS signing is libcurl's, asked for per
// request), so every network backend shares it: S3Store and HttpStore. It lives in the network
// library (rtenv_store_net), never in the lean rtenv front.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rtenv::store {

/// How patient to be with a server.
struct RetryPolicy {
  /// Connection errors, timeouts and the answers the caller calls retryable are tried up to
  /// `max_attempts` times in all, sleeping `initial_backoff` doubling up to `max_backoff` in
  /// between (each sleep randomized to half to all of that, so that many clients do not retry in
  /// step).
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  std::chrono::milliseconds connect_timeout{10000};
  /// A transfer moving fewer than `low_speed_bytes` per second for `low_speed_time` fails (and
  /// is retried): a stalled connection must not hang a job.
  long low_speed_bytes = 1024;
  std::chrono::seconds low_speed_time{30};
  /// TCP keepalive probes on the connections this thread's handle keeps open.
  bool tcp_keepalive = false;
};

/// AWS Signature Version 4 over a request, computed by libcurl (CURLOPT_AWS_SIGV4) from the
/// request as sent: its URL, its headers and the payload hash the caller gives in
/// `x-amz-content-sha256`. The secret is used to sign, never sent.
struct AwsSigV4 {
  std::string provider;  ///< "aws:amz:<region>:<service>"
  std::string access_key_id;
  std::string secret_access_key;
};

/// Where a download's body goes instead of memory (HttpRequest::body_sink). Only the body of a
/// successful (2xx) answer is given to it; other answers' bodies (an error's XML) stay in
/// HttpResponse::body.
class BodySink {
 public:
  virtual ~BodySink() = default;
  /// Called before every attempt: discard what an earlier attempt wrote.
  virtual Result<void> restart() = 0;
  /// The next chunk of the body. An error stops the transfer and becomes the request's error
  /// (retried only if it is retryable).
  virtual Result<void> write(std::string_view chunk) = 0;
};

/// A BodySink that writes to a file, created (or emptied) at each attempt, and refuses a body
/// larger than `max_bytes` (kTooLarge, naming `what`). The file is the caller's to remove.
class FileSink final : public BodySink {
 public:
  FileSink(std::string path, uint64_t max_bytes, std::string what);
  ~FileSink() override;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  Result<void> restart() override;
  Result<void> write(std::string_view chunk) override;
  /// Closes the file (kIo if the data could not be written); the bytes written so far.
  Result<uint64_t> finish();

 private:
  std::string path_;
  uint64_t max_bytes_;
  std::string what_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

/// A BodySink that keeps the body in memory (`data`), refusing one larger than `max_bytes`
/// (kTooLarge, naming `what`): a small document from a peer that is not trusted with memory.
class MemorySink final : public BodySink {
 public:
  MemorySink(uint64_t max_bytes, std::string what) : max_(max_bytes), what_(std::move(what)) {}
  Result<void> restart() override {
    data.clear();
    return ok_result();
  }
  Result<void> write(std::string_view chunk) override {
    if (data.size() + chunk.size() > max_) {
      return make_error(ErrorCode::kTooLarge, "{} is bigger than {} bytes", what_, max_);
    }
    data.append(chunk);
    return ok_result();
  }
  std::string data;

 private:
  uint64_t max_;
  std::string what_;
};

/// Where an upload's body comes from instead of memory (HttpRequest::body_source): a body too
/// large to hold, read as it is sent.
class BodySource {
 public:
  virtual ~BodySource() = default;
  /// The body's size in bytes (its Content-Length): read() must give exactly that many.
  virtual uint64_t size() const = 0;
  /// Called before every attempt: start again at the first byte.
  virtual Result<void> restart() = 0;
  /// The next bytes of the body, up to `n`; 0 at its end. An error stops the transfer (the
  /// server never sees a whole body) and becomes the request's error, retried only if it is
  /// retryable.
  virtual Result<size_t> read(char* out, size_t n) = 0;
};

/// One HTTP request. `body` is sent for PUT and POST and must outlive the call.
struct HttpRequest {
  std::string method;  ///< GET, HEAD, PUT, POST or DELETE
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  std::string_view body;
  /// How the request is named in errors (secrets left out); default "METHOD <redacted url>".
  std::string description;
  /// Signs the request; unset: unsigned.
  std::optional<AwsSigV4> sigv4;
  /// false: a PUT or POST body goes at once, without libcurl's "Expect: 100-continue" (a round
  /// trip before each larger body). true: libcurl's default.
  bool expect_continue = false;
  /// The CA certificates to trust (a PEM file); empty: the system's.
  std::string ca_bundle;
  /// For a GET too large to hold: the successful answer's body goes here, not to
  /// HttpResponse::body. Not owned; must outlive the call.
  BodySink* body_sink = nullptr;
  /// For a PUT too large to hold: the body is read from here instead of `body`. Not owned;
  /// must outlive the call.
  BodySource* body_source = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  /// The final answer's headers: names lower-case, values trimmed; a repeated name keeps its last
  /// value.
  std::map<std::string, std::string, std::less<>> headers;

  /// The value of header `name` (lower-case), or "" if the answer has none.
  std::string header(std::string_view name) const;
};

/// Initializes libcurl for the process, once (http_perform does it too). Calling it before
/// starting threads keeps that out of them.
void http_global_init();

/// The delay before retry number `attempt` (0 for the first retry) under `policy`.
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt);

/// Sends `request` once on this thread's libcurl handle. An answer with any status is a value;
/// errors only when none came: kUnavailable (cannot connect, connection lost), kTimeout, kIo
/// (anything else, e.g. a TLS certificate problem). Errors name the request, never its headers.
/// Honours RTENV_CA_BUNDLE (a CA file for https). Thread-safe.
Result<HttpResponse> http_perform(const HttpRequest& request, const RetryPolicy& policy);

/// Says whether an answer is a failure worth retrying (the error to give if the attempts run
/// out), or nullopt to hand the answer to the caller.
using RetryableAnswer = std::function<std::optional<Error>(const HttpResponse&)>;

/// http_perform, retried under `policy` while it fails retryably or `retryable` names the
/// answer a failure. After the last attempt the error says how many were made.
Result<HttpResponse> http_send(const HttpRequest& request, const RetryPolicy& policy,
                               const RetryableAnswer& retryable);

}  // namespace rtenv::store
