#include "store/http_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include "store/blob_codec.h"
#include "store/blob_transfer.h"
#include "util/fs.h"
#include "util/lines.h"
#include "util/redact.h"

namespace rtenv::store {

namespace {

constexpr std::string_view kTokenVariable = "RTENV_STORE_TOKEN";

bool retryable_status(long status) { return status >= 500 || status == 429 || status == 408; }

// The server's one-line reason (text/plain), cut short: it goes into an error message.
std::string reason_of(const HttpResponse& resp) {
  std::string text = resp.body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

bool is_http_store_url(std::string_view url) {
  return url.starts_with("http://") || url.starts_with("https://");
}

Result<std::unique_ptr<HttpStore>> HttpStore::open(std::string_view url) {
  return open(url, HttpStoreSettings());
}

Result<std::unique_ptr<HttpStore>> HttpStore::open(std::string_view url,
                                                   HttpStoreSettings settings) {
  if (!is_http_store_url(url)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: expected http://host:port or https://host:port",
                      redact_url_credentials(url));
  }
  std::string base(url);
  size_t host_at = base.find("://") + 3;
  while (base.size() > host_at && base.ends_with('/')) base.pop_back();
  std::string_view rest = std::string_view(base).substr(host_at);
  if (rest.empty() || rest.front() == '/') {
    return make_error(ErrorCode::kInvalidArgument, "store URL {}: no host",
                      redact_url_credentials(url));
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: a query or fragment is not allowed in a blob server's URL",
                      redact_url_credentials(url));
  }
  if (settings.token.find_first_of("\r\n") != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the blob server token ({}) contains a line break", kTokenVariable);
  }
  if (settings.retry.max_attempts < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "blob server retries: max_attempts must be >= 1");
  }
  return std::unique_ptr<HttpStore>(new HttpStore(std::move(base), std::move(settings)));
}

std::string HttpStore::url() const { return base_; }

std::string HttpStore::blob_url(const Digest& digest) const {
  return base_ + "/v1/blobs/" + digest.hex();
}

Result<HttpResponse> HttpStore::send(const char* method, const std::string& path,
                                     std::string_view body, std::vector<std::string> headers,
                                     BodySource* source, BodySink* sink) const {
  HttpRequest req;
  req.method = method;
  req.url = base_ + path;
  req.body = body;
  req.body_source = source;
  req.body_sink = sink;
  req.headers = std::move(headers);
  req.ca_bundle = settings_.ca_bundle;
  if (!settings_.token.empty()) req.headers.push_back("Authorization: Bearer " + settings_.token);
  if (req.method == "PUT" || req.method == "POST") {
    req.headers.push_back("Content-Type: application/octet-stream");
  }
  req.description = fmt::format("{} {}", method, redact_url_credentials(req.url));
  return http_send(req, settings_.retry, [&](const HttpResponse& resp) -> std::optional<Error> {
    if (!retryable_status(resp.status)) return std::nullopt;
    return failure(method, path, resp);
  });
}

Error HttpStore::failure(const char* method, const std::string& path,
                         const HttpResponse& resp) const {
  std::string where = fmt::format("{} {}{}", method, redact_url_credentials(base_), path);
  std::string why = reason_of(resp);
  std::string detail = why.empty() ? fmt::format("HTTP {}", resp.status)
                                   : fmt::format("{} (HTTP {})", why, resp.status);
  long s = resp.status;
  if (s == 401 || s == 403) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: the blob server refused the token: {}; set {} to the token the server "
                      "was started with ({})",
                      where, detail, kTokenVariable,
                      settings_.token.empty() ? "it is not set" : "the one set was not accepted");
  }
  if (s == 404) return make_error(ErrorCode::kNotFound, "{}: {}", where, detail);
  if (s == 412) return make_error(ErrorCode::kAlreadyExists, "{}: {}", where, detail);
  if (s == 413) return make_error(ErrorCode::kTooLarge, "{}: {}", where, detail);
  if (retryable_status(s)) {
    return make_error(ErrorCode::kUnavailable, "{}: the server failed: {}", where, detail);
  }
  if (s >= 400) return make_error(ErrorCode::kInvalidArgument, "{}: {}", where, detail);
  return make_error(ErrorCode::kIo, "{}: unexpected answer: {}", where, detail);
}

Result<std::vector<bool>> HttpStore::missing(const std::vector<Digest>& digests) {
  std::vector<bool> out(digests.size(), false);
  if (digests.empty()) return out;
  std::string body;
  body.reserve(digests.size() * 65);
  for (const auto& d : digests) {
    body += d.hex();
    body += '\n';
  }
  const std::string path = "/v1/missing";
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("POST", path, body));
  if (resp.status != 200) return failure("POST", path, resp);
  // The answer names a subset of what was asked, in any order.
  std::unordered_map<std::string, std::vector<size_t>> index;
  for (size_t i = 0; i < digests.size(); ++i) index[digests[i].hex()].push_back(i);
  std::string_view rest = resp.body;
  while (!rest.empty()) {
    std::string_view line = next_line(&rest);
    if (line.empty()) continue;
    auto it = index.find(std::string(line));
    if (it == index.end()) {
      return make_error(ErrorCode::kCorrupt,
                        "POST {}{}: the answer names \"{}\", which was not asked about",
                        redact_url_credentials(base_), path, line.substr(0, 80));
    }
    for (size_t i : it->second) out[i] = true;
  }
  return out;
}

Result<void> HttpStore::upload(const Digest& digest, std::string_view data,
                               std::string_view source) {
  Digest actual = Digest::of(data);
  if (actual != digest) return content_mismatch(digest, actual, source);
  std::string wire = encode_blob(data);
  std::string path = "/v1/blobs/" + digest.hex();
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("PUT", path, wire));
  if (resp.status != 200 && resp.status != 201 && resp.status != 204) {
    return failure("PUT", path, resp);
  }
  return ok_result();
}

Result<void> HttpStore::put(const Digest& digest, std::string_view data) {
  return upload(digest, data, "the data");
}

Result<void> HttpStore::put_file(const Digest& digest, const fs::path& file) {
  struct stat st;
  if (::stat(file.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) <= kInMemoryBytes) {
    RTENV_ASSIGN_OR_RETURN(std::string data, read_file(file));
    return upload(digest, data, file.string());
  }
  RTENV_ASSIGN_OR_RETURN(auto reader, EncodedFileReader::open(file, digest));
  uint64_t size = reader->known_encoded_size();
  if (reader->compressed()) {
    RTENV_ASSIGN_OR_RETURN(auto measured, reader->measure(/*hash=*/false));
    size = measured.bytes;
  }
  EncodedFileSource source(*reader, size);
  std::string path = "/v1/blobs/" + digest.hex();
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("PUT", path, {}, {}, &source));
  if (resp.status != 200 && resp.status != 201 && resp.status != 204) {
    return failure("PUT", path, resp);
  }
  return ok_result();
}

Result<std::string> HttpStore::fetch_verified(const Digest& digest) {
  std::string path = "/v1/blobs/" + digest.hex();
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("GET", path));
  if (resp.status == 404) {
    return make_error(ErrorCode::kNotFound, "blob {} is not in store {}", digest.hex(),
                      redact_url_credentials(base_));
  }
  if (resp.status != 200) return failure("GET", path, resp);
  auto data = decode_blob(resp.body);
  if (!data) {
    return make_error(ErrorCode::kCorrupt,
                      "blob {} from store {} is corrupt ({}); delete it on the server and pack "
                      "the package again",
                      digest.hex(), redact_url_credentials(base_), data.error().message());
  }
  Digest actual = Digest::of(*data);
  if (actual != digest) {
    return make_error(ErrorCode::kCorrupt,
                      "blob {} from store {} is corrupt (its content hashes to {}); delete it on "
                      "the server and pack the package again",
                      digest.hex(), redact_url_credentials(base_), actual.hex());
  }
  return std::move(data).value();
}

Result<std::string> HttpStore::get(const Digest& digest) { return fetch_verified(digest); }

Result<void> HttpStore::get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                                    uint64_t max_bytes) {
  DecodedFileWriter writer(digest, dest, mode, max_bytes, "store " + redact_url_credentials(base_));
  DecodedFileSink sink(writer);
  std::string path = "/v1/blobs/" + digest.hex();
  auto fetched = [&]() -> Result<void> {
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("GET", path, {}, {}, nullptr, &sink));
    if (resp.status == 404) {
      return make_error(ErrorCode::kNotFound, "blob {} is not in store {}", digest.hex(),
                        redact_url_credentials(base_));
    }
    if (resp.status != 200) return failure("GET", path, resp);
    return writer.finish();
  }();
  if (fetched) return fetched;
  writer.discard();
  if (fetched.error().code() != ErrorCode::kCorrupt) return fetched;
  return make_error(ErrorCode::kCorrupt, "{}; delete it on the server and pack the package again",
                    fetched.error().message());
}

Result<bool> HttpStore::remove(const Digest& digest) {
  std::string path = "/v1/blobs/" + digest.hex();
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("DELETE", path));
  if (resp.status == 404) return false;
  if (resp.status != 200 && resp.status != 204) return failure("DELETE", path, resp);
  return true;
}

Result<void> HttpStore::list(const std::function<void(const Digest&, uint64_t)>& fn) {
  const std::string path = "/v1/blobs";
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("GET", path));
  if (resp.status != 200) return failure("GET", path, resp);
  std::string_view rest = resp.body;
  while (!rest.empty()) {
    std::string_view line = next_line(&rest);
    if (line.empty()) continue;
    size_t space = line.find(' ');
    auto d = Digest::from_hex(line.substr(0, space));
    std::string size(space == std::string_view::npos ? "" : line.substr(space + 1));
    char* end = nullptr;
    uint64_t bytes = std::strtoull(size.c_str(), &end, 10);
    if (!d || size.empty() || *end != '\0') {
      return make_error(ErrorCode::kCorrupt, "GET {}{}: bad line in the listing: \"{}\"",
                        redact_url_credentials(base_), path, line.substr(0, 100));
    }
    fn(*d, bytes);
  }
  return ok_result();
}

Result<void> HttpStore::send_record(std::string_view name, std::string_view data,
                                    bool create_only) {
  RTENV_TRY(check_record_name(name));
  std::string path = "/v1/records/" + std::string(name);
  std::vector<std::string> headers;
  if (create_only) headers.push_back("If-None-Match: *");
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("PUT", path, data, std::move(headers)));
  if (resp.status == 412) {
    return make_error(ErrorCode::kAlreadyExists, "record {} already exists in store {}", name,
                      redact_url_credentials(base_));
  }
  if (resp.status != 200 && resp.status != 201 && resp.status != 204) {
    return failure("PUT", path, resp);
  }
  return ok_result();
}

Result<void> HttpStore::create_record(std::string_view name, std::string_view data) {
  return send_record(name, data, /*create_only=*/true);
}

Result<void> HttpStore::put_record(std::string_view name, std::string_view data) {
  return send_record(name, data, /*create_only=*/false);
}

Result<std::string> HttpStore::get_record(std::string_view name) {
  RTENV_TRY(check_record_name(name));
  std::string path = "/v1/records/" + std::string(name);
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("GET", path));
  if (resp.status == 404) {
    return make_error(ErrorCode::kNotFound, "record {} is not in store {}", name,
                      redact_url_credentials(base_));
  }
  if (resp.status != 200) return failure("GET", path, resp);
  return std::move(resp.body);
}

Result<bool> HttpStore::remove_record(std::string_view name) {
  RTENV_TRY(check_record_name(name));
  std::string path = "/v1/records/" + std::string(name);
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send("DELETE", path));
  if (resp.status == 404) return false;
  if (resp.status != 200 && resp.status != 204) return failure("DELETE", path, resp);
  return true;
}

}  // namespace rtenv::store
