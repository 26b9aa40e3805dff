#include "store/curl_http.h"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <curl/curl.h>

#include "util/redact.h"

namespace rtenv::store {

namespace {

struct CurlHandle {
  CURL* curl = nullptr;
  ~CurlHandle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

// This thread's handle, reset to defaults. Keeping one per thread keeps its connections (and TLS
// sessions) open between requests, which matters when S3Store::missing() sends thousands of HEADs.
CURL* thread_curl() {
  http_global_init();
  thread_local CurlHandle handle;
  if (!handle.curl) {
    handle.curl = curl_easy_init();
  } else {
    curl_easy_reset(handle.curl);
  }
  return handle.curl;
}

struct UploadSource {
  std::string_view data;
  size_t offset = 0;
};

size_t read_body(char* buf, size_t size, size_t n, void* user) {
  auto* src = static_cast<UploadSource*>(user);
  size_t len = std::min(size * n, src->data.size() - src->offset);
  std::memcpy(buf, src->data.data() + src->offset, len);
  src->offset += len;
  return len;
}

int seek_body(void* user, curl_off_t offset, int origin) {
  auto* src = static_cast<UploadSource*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > src->data.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  src->offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// An upload read from a BodySource; its error, if it failed, is the request's.
struct SourceReader {
  BodySource* source;
  std::optional<Error> error;
};

size_t read_source(char* buf, size_t size, size_t n, void* user) {
  auto* reader = static_cast<SourceReader*>(user);
  auto got = reader->source->read(buf, size * n);
  if (!got) {
    reader->error = std::move(got).error();
    return CURL_READFUNC_ABORT;
  }
  return *got;
}

int seek_source(void* user, curl_off_t offset, int origin) {
  auto* reader = static_cast<SourceReader*>(user);
  // libcurl rewinds to resend a body (a redirect, an authentication round): only to the start.
  if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
  if (auto r = reader->source->restart(); !r) {
    reader->error = std::move(r).error();
    return CURL_SEEKFUNC_FAIL;
  }
  return CURL_SEEKFUNC_OK;
}

// Where an answer's body goes: memory, or the request's sink once the answer is a success.
struct BodyTarget {
  CURL* curl;
  std::string* body;
  BodySink* sink;
  std::optional<Error> sink_error;
};

size_t take_body(char* data, size_t size, size_t n, void* user) {
  auto* target = static_cast<BodyTarget*>(user);
  std::string_view chunk(data, size * n);
  long status = 0;
  if (target->sink) curl_easy_getinfo(target->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    target->body->append(chunk);
    return chunk.size();
  }
  if (auto r = target->sink->write(chunk); !r) {
    target->sink_error = std::move(r).error();
    return 0;  // aborts the transfer
  }
  return chunk.size();
}

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// One header line at a time, each answer's status line first (an interim "100 Continue" has one
// too, so only the final answer's headers are kept).
size_t keep_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<decltype(HttpResponse::headers)*>(user);
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (line.starts_with("HTTP/")) {
    headers->clear();
  } else if (colon != std::string_view::npos) {
    std::string name(trim(line.substr(0, colon)));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    (*headers)[std::move(name)] = std::string(trim(line.substr(colon + 1)));
  }
  return size * n;
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::string describe(const HttpRequest& req) {
  if (!req.description.empty()) return req.description;
  return req.method + " " + redact_url_credentials(req.url);
}

}  // namespace

FileSink::FileSink(std::string path, uint64_t max_bytes, std::string what)
    : path_(std::move(path)), max_bytes_(max_bytes), what_(std::move(what)) {}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> FileSink::restart() {
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0 || ::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
    return make_error(ErrorCode::kIo, "cannot write {}: {}", path_, std::strerror(errno));
  }
  written_ = 0;
  return ok_result();
}

Result<void> FileSink::write(std::string_view chunk) {
  if (chunk.size() > max_bytes_ - std::min(written_, max_bytes_)) {
    return make_error(ErrorCode::kTooLarge, "{} is larger than the limit of {} bytes", what_,
                      max_bytes_);
  }
  while (!chunk.empty()) {
    ssize_t n = ::write(fd_, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return make_error(ErrorCode::kIo, "cannot write {}: {}", path_, std::strerror(errno));
    }
    chunk.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
  return ok_result();
}

Result<uint64_t> FileSink::finish() {
  if (fd_ < 0) RTENV_TRY(restart());  // an empty body: never written to
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    return make_error(ErrorCode::kIo, "cannot write {}: {}", path_, std::strerror(errno));
  }
  return written_;
}

std::string HttpResponse::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void http_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  auto delay = policy.initial_backoff;
  for (int i = 0; i < attempt && delay < policy.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, policy.max_backoff);
  // Half to all of it: clients that failed together do not come back together.
  std::uniform_int_distribution<long> pick(delay.count() / 2, std::max<long>(delay.count(), 0));
  return std::chrono::milliseconds(pick(rng));
}

Result<HttpResponse> http_perform(const HttpRequest& req, const RetryPolicy& policy) {
  CURL* curl = thread_curl();
  if (!curl) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  HttpResponse resp;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_slist* raw = nullptr;
  for (const auto& h : req.headers) raw = curl_slist_append(raw, h.c_str());
  // libcurl would otherwise wait for "100 Continue" before larger bodies: a round trip per PUT.
  if (!req.expect_continue && (req.method == "PUT" || req.method == "POST")) {
    raw = curl_slist_append(raw, "Expect:");
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);

  if (req.body_sink) RTENV_TRY(req.body_sink->restart());
  BodyTarget target{curl, &resp.body, req.body_sink, std::nullopt};

  if (req.body_source) RTENV_TRY(req.body_source->restart());
  SourceReader reader{req.body_source, std::nullopt};
  UploadSource source{req.body};
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  if (req.sigv4) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, req.sigv4->provider.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, req.sigv4->access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, req.sigv4->secret_access_key.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (policy.tcp_keepalive) curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(policy.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, policy.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(policy.low_speed_time.count()));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, take_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &target);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keep_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp.headers);
  if (!req.ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, req.ca_bundle.c_str());
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    if (req.body_source) {
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_source);
      curl_easy_setopt(curl, CURLOPT_READDATA, &reader);
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, seek_source);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &reader);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(req.body_source->size()));
    } else {
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_body);
      curl_easy_setopt(curl, CURLOPT_READDATA, &source);
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, seek_body);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &source);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    }
  } else if (req.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
  } else if (req.method == "DELETE") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }

  CURLcode rc = curl_easy_perform(curl);
  // The handle outlives this call: it must not keep pointers into this frame.
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  if (target.sink_error) return std::move(*target.sink_error);
  if (reader.error) return std::move(*reader.error);
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    bool retryable =
        rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
        rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE || rc == CURLE_SSL_CONNECT_ERROR ||
        rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM || rc == CURLE_OPERATION_TIMEDOUT;
    return make_error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout
                      : retryable                    ? ErrorCode::kUnavailable
                                                     : ErrorCode::kIo,
                      "{}: {}", describe(req), why);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

Result<HttpResponse> http_send(const HttpRequest& req, const RetryPolicy& policy,
                               const RetryableAnswer& retryable) {
  int attempts = std::max(policy.max_attempts, 1);
  for (int i = 0;; ++i) {
    auto r = http_perform(req, policy);
    std::optional<Error> failed;
    if (!r) {
      if (!r.error().retryable()) return r;
      failed = r.error();
    } else if (retryable) {
      failed = retryable(*r);
      if (!failed) return r;
    } else {
      return r;
    }
    if (i + 1 >= attempts) {
      return Error(failed->code(),
                   fmt::format("{} (gave up after {} attempts)", failed->message(), attempts));
    }
    std::this_thread::sleep_for(backoff_delay(policy, i));
  }
}

}  // namespace rtenv::store
