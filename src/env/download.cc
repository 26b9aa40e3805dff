#include "env/download.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <curl/curl.h>

#include "pack/packer.h"
#include "util/redact.h"

namespace rtenv::env {
namespace {

struct Sink {
  FILE* file;
  uint64_t written = 0, max_bytes;
  bool too_large = false;
};

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t bytes = size * n;
  sink->written += bytes;
  if (sink->written > sink->max_bytes) {
    sink->too_large = true;
    return 0;  // aborts the transfer
  }
  return std::fwrite(data, 1, bytes, sink->file);
}

Result<void> attempt(const std::string& url, const std::filesystem::path& dest, uint64_t max_bytes,
                     const std::string& ca_bundle) {
  FILE* f = std::fopen(dest.c_str(), "wb");
  if (!f) return make_error(ErrorCode::kIo, "cannot create {}", dest.string());
  Sink sink{f, 0, max_bytes};
  CURL* curl = curl_easy_init();
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort a transfer stalled
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);  // for a minute
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (!ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_bundle.c_str());
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  bool write_failed = std::fclose(f) != 0;
  std::string shown = redact_url_credentials(url);
  if (sink.too_large) {
    return make_error(ErrorCode::kTooLarge, "{} is larger than the package limit of {}", shown,
                      pack::format_bytes(max_bytes));
  }
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    bool retryable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
                     rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_RECV_ERROR ||
                     rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE;
    return make_error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout
                      : retryable                    ? ErrorCode::kUnavailable
                                                     : ErrorCode::kIo,
                      "cannot download {}: {}", shown, why);
  }
  if (status >= 400) {
    ErrorCode code = status == 404   ? ErrorCode::kNotFound
                     : status >= 500 ? ErrorCode::kUnavailable
                                     : ErrorCode::kInvalidArgument;
    if (status == 404) return make_error(code, "cannot download {}: not found (HTTP 404)", shown);
    return make_error(code, "cannot download {}: the server answered HTTP {}", shown, status);
  }
  if (write_failed) return make_error(ErrorCode::kIo, "cannot write {}", dest.string());
  return ok_result();
}

}  // namespace

Result<void> download(const std::string& url, const std::filesystem::path& dest, uint64_t max_bytes,
                      const std::string& ca_bundle) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)initialized;
  constexpr int kAttempts = 4;
  for (int i = 0;; ++i) {
    auto r = attempt(url, dest, max_bytes, ca_bundle);
    if (r || !r.error().retryable() || i + 1 == kAttempts) {
      if (!r) std::remove(dest.c_str());
      if (!r && r.error().retryable()) {
        return Error(r.error().code(),
                     fmt::format("{} (gave up after {} attempts)", r.error().message(), kAttempts));
      }
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << i));
  }
}

}  // namespace rtenv::env
