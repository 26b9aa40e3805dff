#pragma once
// A blob store on rtenv's own blob server (`rtenv store serve`, store/blob_server.h), spoken to
// over HTTP(S) with libcurl. Lives in the network library (rtenv_store_net) with S3Store, so
// programs that never open a network store do not load libcurl.
//
// The protocol (all paths under the server's base URL; `Authorization: Bearer <token>` on every
// request when the server has a token):
//   GET/HEAD/PUT /v1/blobs/<64 hex>  a blob; its body is blob_codec's encoded form both ways
//   POST /v1/missing                 body: digests, one hex per line; answer: those absent
//   GET/PUT/DELETE /v1/records/<name>  a record's raw bytes; PUT with `If-None-Match: *` only
//                                    creates (412 if it exists)
// Errors come back as a status and one line of text/plain saying why.

#include <memory>
#include <string>
#include <string_view>

#include "store/blob_store.h"
#include "store/curl_http.h"

namespace rtenv::store {

struct HttpStoreSettings {
  /// The bearer token; empty sends none (the caller passes the config's store_token,
  /// RTENV_STORE_TOKEN).
  std::string token;
  /// The CA certificates to trust (a PEM file); empty: the system's.
  std::string ca_bundle;
  RetryPolicy retry;
};

/// Blobs on a blob server at `http(s)://host:port[/base]`. Every read is verified against its
/// digest (the server is not trusted with that); uploads are verified again by the server.
///
/// Thread-safe: every call may come from any thread; each thread keeps its own libcurl handle
/// (so its connections are reused) and no state is shared between calls.
class HttpStore final : public BlobStore {
 public:
  /// Opens `url` with the token from RTENV_STORE_TOKEN (if set). Makes no request: a server that
  /// is down or refuses the token shows on first use.
  static Result<std::unique_ptr<HttpStore>> open(std::string_view url);
  static Result<std::unique_ptr<HttpStore>> open(std::string_view url, HttpStoreSettings settings);

  /// The URL as opened, without a trailing slash.
  std::string url() const override;
  /// One POST whatever the number of digests.
  Result<std::vector<bool>> missing(const std::vector<Digest>& digests) override;
  /// One PUT of the encoded blob; the server keeps the copy it has if it has one.
  Result<void> put(const Digest& digest, std::string_view data) override;
  /// One PUT, the file's encoded form read as it is sent (a compressed one is encoded twice: once
  /// to learn its Content-Length); files up to kInMemoryBytes are read whole first. Its last
  /// bytes are sent only once the file hashed to `digest`.
  Result<void> put_file(const Digest& digest, const fs::path& path) override;
  /// kNotFound if absent; kCorrupt if it does not decode or does not hash to `digest`.
  Result<std::string> get(const Digest& digest) override;
  /// Downloads the blob into the new file `dest` (kAlreadyExists if it exists), decoded and
  /// hashed as it arrives: memory stays small whatever its size. kCorrupt if it does not hash to
  /// `digest`. Nothing is left on error.
  Result<void> get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                           uint64_t max_bytes = kAnySize) override;
  Result<bool> remove(const Digest& digest) override;
  /// GET /v1/blobs: one "<hex> <stored bytes>" line per blob.
  Result<void> list(const std::function<void(const Digest&, uint64_t)>& fn) override;
  /// The blob server serves 64 connections by default: four nodes fetching at once.
  unsigned parallel_reads() const override { return 16; }

  Result<void> create_record(std::string_view name, std::string_view data) override;
  Result<void> put_record(std::string_view name, std::string_view data) override;
  Result<std::string> get_record(std::string_view name) override;
  Result<bool> remove_record(std::string_view name) override;

  /// The URL of a blob on the server.
  std::string blob_url(const Digest& digest) const;
  const HttpStoreSettings& settings() const { return settings_; }

 private:
  HttpStore(std::string base, HttpStoreSettings settings)
      : base_(std::move(base)), settings_(std::move(settings)) {}

  /// One request to `path` (under the base URL), retried on connection errors, timeouts and 5xx.
  /// Any answer that is not retryable is returned for the caller to judge.
  Result<HttpResponse> send(const char* method, const std::string& path, std::string_view body = {},
                            std::vector<std::string> headers = {}, BodySource* source = nullptr,
                            BodySink* sink = nullptr) const;
  /// The error for a failed answer: the server's reason, and what to do for 401/403.
  Error failure(const char* method, const std::string& path, const HttpResponse& resp) const;
  /// Uploads `data` as blob `digest` after checking that it hashes to it (content_mismatch
  /// naming `source` otherwise).
  Result<void> upload(const Digest& digest, std::string_view data, std::string_view source);
  Result<std::string> fetch_verified(const Digest& digest);
  Result<void> send_record(std::string_view name, std::string_view data, bool create_only);

  std::string base_;  ///< "http://host:port[/base]", no trailing '/'
  HttpStoreSettings settings_;
};

/// Files up to this size are read whole before they are sent.
inline constexpr uint64_t kInMemoryBytes = 1 << 20;

/// True if `url` names a blob server (http:// or https://).
bool is_http_store_url(std::string_view url);

}  // namespace rtenv::store
