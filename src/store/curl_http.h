#pragma once
// The HTTP layer a network store needs, on libcurl: one request on this thread's handle (its
// connections reused between requests), and the retry loop with randomized exponential backoff.
// Store-neutral (no signing, no store's URL layout), so every network backend can share it; it
// lives in the network library (rtenv_store_net), never in the lean rtenv front.

#include <chrono>
#include <functional>
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
};

/// One HTTP request. `body` is sent for PUT and POST and must outlive the call.
struct HttpRequest {
  std::string method;  ///< GET, HEAD, PUT, POST or DELETE
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  std::string_view body;
  /// How the request is named in errors (secrets left out); default "METHOD <redacted url>".
  std::string description;
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

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
