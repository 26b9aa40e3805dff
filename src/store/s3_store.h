#pragma once
// A blob store in an S3 bucket (AWS, or any S3-compatible server such as MinIO or Ceph), spoken
// to over HTTPS (store/curl_http.h, shared with HttpStore) and signed with AWS Signature Version
// 4. Lives in the network library (rtenv_store_net) so that programs which never open a network
// store do not load libcurl.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "store/blob_store.h"
#include "store/collectable.h"
#include "store/curl_http.h"
#include "store/open_store_any.h"  // open_store_any, which was declared here before

namespace rtenv::store {

/// An access key, as the AWS CLI finds it.
struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< empty unless the key is temporary (STS)
};

/// Where the bucket is, who we are, and how patient to be.
struct S3Settings {
  /// Base URL of an S3-compatible server ("http://127.0.0.1:9000"); buckets are then addressed
  /// path-style (<endpoint>/<bucket>/<key>). Empty: AWS itself,
  /// https://<bucket>.s3.<region>.amazonaws.com.
  std::string endpoint;
  std::string region = "us-east-1";
  S3Credentials credentials;
  /// The CA certificates to trust (a PEM file); empty: the system's.
  std::string ca_bundle;

  /// Connection errors, timeouts, HTTP 5xx and throttling are retried: up to `max_attempts`
  /// tries in all, sleeping `initial_backoff` doubling up to `max_backoff` in between (each
  /// sleep randomized to half to all of that, so that many clients do not retry in step).
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  std::chrono::seconds connect_timeout{10};
  /// A transfer moving fewer than `low_speed_bytes` per second for `low_speed_time` fails (and
  /// is retried): a stalled connection must not hang a job.
  long low_speed_bytes = 1024;
  std::chrono::seconds low_speed_time{30};

  /// Blobs whose encoded form is larger than this are uploaded in parts of `part_size` bytes
  /// (S3 takes at most 5 GiB in one PUT, and a failed part is cheaper to resend than a blob).
  /// S3 requires parts of at least 5 MiB, except the last.
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 8ull << 20;
  /// Parts of one upload sent at once. A file's upload holds this many parts and one more in
  /// memory (parallel_parts + 1) * part_size, whatever the file's size.
  unsigned parallel_parts = 4;
  /// Bytes of parts held in memory by all the store's uploads together (a pack uploads many
  /// files at once): an upload waits for room before it reads its next part. At least one part
  /// is always let through.
  uint64_t max_part_bytes_held = 256ull << 20;
  /// HEAD requests in flight at once in missing().
  unsigned parallel_requests = 16;
  /// Keys per ListObjectsV2 page (S3 gives at most 1000).
  unsigned list_page_size = 1000;
  /// How stale a blob's LastModified may get before a use refreshes it (see S3Store).
  int64_t touch_interval_ms = 24ll * 60 * 60 * 1000;

  /// Looks a variable up; nullopt when unset.
  using Lookup = std::function<std::optional<std::string>(const std::string& name)>;

  /// Reads the settings as the AWS CLI does, from `env` (default: this process's environment):
  /// - endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (rtenv's own s3_endpoint,
  ///   RTENV_S3_ENDPOINT, is the caller's to set over it: see store::StoreOptions);
  /// - region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's `region` in the config
  ///   file (AWS_CONFIG_FILE, default ~/.aws/config), else us-east-1;
  /// - credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the
  ///   profile in the credentials file (AWS_SHARED_CREDENTIALS_FILE, default
  ///   ~/.aws/credentials), else the profile in the config file.
  /// The profile is AWS_PROFILE, default "default". kInvalidArgument when no credentials are
  /// found, naming the variables and files that were looked at; kIo if a file cannot be read.
  static Result<S3Settings> from_environment(const Lookup& env = {});
};

/// Settings for the configuration's `options` (endpoint and CA bundle when given) over what
/// S3Settings::from_environment finds: how open_store_any opens an s3:// store, and how any
/// other object of S3 is fetched.
Result<S3Settings> s3_settings_for(const StoreOptions& options);

/// An object named "s3://bucket/key" (a package a runtime_env names by URL).
struct S3ObjectUrl {
  std::string bucket;
  std::string key;  ///< not empty, no leading '/'

  /// kInvalidArgument unless `url` is s3://<bucket>/<key>.
  static Result<S3ObjectUrl> parse(std::string_view url);
};

/// Blobs as objects `<prefix>/<first two hex digits>/<64 hex digits>` in a bucket (the layout
/// of LocalStore), each stored as blob_codec encodes it: zstd where that pays. Every read is
/// verified against its digest.
///
/// Thread-safe: every call may come from any thread; each thread keeps its own libcurl handle
/// (so its connections are reused) and no state is shared between calls.
class S3Store final : public BlobStore, public CollectableStore {
 public:
  /// Opens `s3://bucket[/prefix]` with settings from the environment (see
  /// S3Settings::from_environment). Makes no request: a missing bucket or bad credentials show
  /// on first use.
  static Result<std::unique_ptr<S3Store>> open(std::string_view url);
  static Result<std::unique_ptr<S3Store>> open(std::string_view url, S3Settings settings);

  /// "s3://bucket/prefix", normalized (no trailing slash).
  std::string url() const override;
  /// One HEAD per digest, `parallel_requests` at a time (S3 has no batched existence check).
  /// A blob found present is marked used (see touch_interval_ms).
  Result<std::vector<bool>> missing(const std::vector<Digest>& digests) override;
  /// Put-if-absent: a HEAD first, then one PUT (or a multipart upload) of the encoded blob.
  Result<void> put(const Digest& digest, std::string_view data) override;
  /// Streams the file's encoded form: files up to kInMemoryBytes are read whole; files up to the
  /// multipart threshold go in one PUT read from the file as it is sent (encoded once before to
  /// measure and hash it for the signature); larger ones in parts read from the file, up to
  /// `parallel_parts` sent at once (one PUT if they compress to less than a part). The file is
  /// hashed as it is read and the last bytes (the last part) go only if it matches `digest`.
  Result<void> put_file(const Digest& digest, const fs::path& path) override;
  /// kNotFound if absent; kCorrupt if it does not decode or does not hash to `digest` (reading
  /// again may help if the object was being replaced). The blob is marked used.
  Result<std::string> get(const Digest& digest) override;
  /// Downloads the blob into the new file `dest` (kAlreadyExists if it exists), decoded and
  /// hashed as it arrives: memory stays small whatever its size. kCorrupt if it does not hash to
  /// `digest`. Nothing is left on error.
  Result<void> get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                           uint64_t max_bytes = kAnySize) override;
  /// false if the blob was not there.
  Result<bool> remove(const Digest& digest) override;
  /// Every blob under the prefix (ListObjectsV2, page by page); `stored_bytes` is the encoded
  /// size. Objects that are not blobs (other names) are skipped.
  Result<void> list(const std::function<void(const Digest&, uint64_t)>& fn) override;
  unsigned parallel_reads() const override { return settings_.parallel_requests; }

  // ---- Collection (store/collectable.h). S3 keeps no access time: a use (found present by
  // `missing`, read by `get`/`get_to_file`) refreshes a blob's LastModified by copying the
  // object onto itself, at most once per settings().touch_interval_ms (one request per blob and
  // day by default). S3 has
  // no lock and no conditional delete: a collector checks an object's LastModified just before
  // deleting it, so a blob is kept unless it went unused for the whole window (days).

  int64_t touch_interval_ms() const override { return settings_.touch_interval_ms; }
  Result<void> scan(const std::function<void(const Digest&, uint64_t, int64_t)>& fn) override;
  Result<void> scan_records(
      const std::function<void(const std::string&, const std::string&)>& fn) override;
  /// A ranged GET of the first bytes (enough for zstd's first block), then the whole blob only
  /// when they are wanted.
  Result<std::optional<std::string>> read_if(const Digest& digest, size_t head_bytes,
                                             const HeadTest& wanted, uint64_t max_bytes) override;
  Result<bool> remove_if_untouched_since(const Digest& digest, int64_t cutoff_ms) override;
  Result<FileLock> lock_for_collection(FileLock::Mode) override { return FileLock(); }

  /// Downloads the object `key` of this store's bucket (a whole key, not one under the blob
  /// prefix; the bytes as stored, not blob-decoded) into the file `dest`, streamed, each request
  /// retried as the store's are. Returns its size. Errors name "s3://<bucket>/<key>":
  /// kNotFound "...: not found (HTTP 404)" for no such object, kInvalidArgument for no such
  /// bucket or a refusal, kTooLarge past `max_bytes`, kUnavailable once the attempts ran out.
  /// `dest` is removed on error.
  Result<uint64_t> get_object_to_file(std::string_view key, const fs::path& dest,
                                      uint64_t max_bytes) const;

  /// Records are objects "<prefix>/records/<name>", stored as is; create_record is a PUT with
  /// `If-None-Match: *` (S3's conditional write: 412 if the object exists).
  Result<void> create_record(std::string_view name, std::string_view data) override;
  Result<void> put_record(std::string_view name, std::string_view data) override;
  Result<std::string> get_record(std::string_view name) override;
  Result<bool> remove_record(std::string_view name) override;

  /// The object key of a blob: "<prefix>/ab/ab12...".
  std::string object_key(const Digest& digest) const;
  /// The HTTP(S) URL of a blob's object (what is requested; no credentials in it).
  std::string object_url(const Digest& digest) const;
  const S3Settings& settings() const { return settings_; }
  /// The most bytes of parts held at once since the store was opened (settings'
  /// max_part_bytes_held bounds it).
  uint64_t peak_part_bytes_held() const;

 private:
  struct Request;
  S3Store(std::string bucket, std::string prefix, S3Settings settings);

  std::string http_url(std::string_view key, std::string_view query) const;
  /// One signed request, retried as `settings_` says (http_send). Errors only when no answer
  /// came (or only retryable ones did); any other HTTP status is the caller's to judge.
  Result<HttpResponse> send(const Request& request, BodySink* sink = nullptr) const;
  /// The error for a failed (non-2xx) answer, with S3's own code and message where it sent one.
  Error failure(const Request& request, const HttpResponse& response) const;
  Result<bool> exists(const Digest& digest) const;
  /// When the blob was last used (its LastModified, ms since the epoch; 0 if S3 did not say),
  /// nullopt if it is absent.
  Result<std::optional<int64_t>> last_used(const Digest& digest) const;
  /// Marks the object used (a copy onto itself) if it was last modified (`modified_ms`) more than
  /// touch_interval_ms() ago. Best effort: a failure only leaves it older.
  void touch_if_stale(const std::string& key, int64_t modified_ms) const;
  /// Every object under "<prefix>/<under>": `fn(key relative to it, size, LastModified ms)`.
  Result<void> list_objects(std::string_view under,
                            const std::function<void(std::string_view, uint64_t, int64_t)>& fn);
  /// Uploads `data` as blob `digest` after checking that it hashes to it (content_mismatch
  /// naming `source` otherwise).
  Result<void> upload(const Digest& digest, std::string_view data, std::string_view source);
  /// Whether a blob of this size may be uploaded in parts (encoded, it may pass the threshold).
  bool may_go_multipart(uint64_t raw_bytes) const;
  /// One PUT of an encoded blob, or a multipart upload past the threshold.
  Result<void> upload_wire(const std::string& key, std::string_view wire);
  Result<void> upload_multipart(const std::string& key, std::string_view wire);
  /// Fills the next part of an upload; false once that was the last.
  using NextPart = std::function<Result<bool>(std::string* part)>;
  /// A multipart upload of the parts `next_part` gives (each at most `part_bytes`), read on the
  /// calling thread and sent by up to settings_.parallel_parts threads, each part's bytes taken
  /// from the store's PartBudget before it is read (`first_reserved`: what the caller took for
  /// a first part it holds already); aborted (the upload, never an object) on error.
  Result<void> upload_multipart(const std::string& key, const NextPart& next_part,
                                uint64_t part_bytes, uint64_t first_reserved = 0);
  /// The error for a 404 of the blob's object: kNotFound, or kInvalidArgument when the bucket
  /// itself does not exist.
  Error not_found(const Digest& digest, const HttpResponse& resp) const;
  /// Sends `put` (its body set) as a put-if-absent of a blob's object: an object already there
  /// is success, left as it is.
  Result<void> put_if_absent(Request& put) const;
  Result<std::string> fetch_verified(const Digest& digest);
  Result<std::string> record_key(std::string_view name) const;
  Result<void> write_record(std::string_view name, std::string_view data, bool if_absent);

  /// The bytes of parts all uploads may hold (settings_.max_part_bytes_held). Thread-safe.
  class PartBudget {
   public:
    explicit PartBudget(uint64_t total) : total_(std::max<uint64_t>(total, 1)), free_(total_) {}
    /// Waits for `n` bytes (at most the whole budget) and takes them; returns what was taken.
    uint64_t take(uint64_t n);
    void give_back(uint64_t n);
    uint64_t peak() const;

   private:
    const uint64_t total_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    uint64_t free_;      ///< guarded by mu_
    uint64_t peak_ = 0;  ///< guarded by mu_
  };

  std::string bucket_;
  std::string prefix_;  ///< without leading or trailing '/'; may be empty
  S3Settings settings_;
  std::unique_ptr<PartBudget> part_budget_;
  RetryPolicy retry_;  ///< settings_'s patience, in curl_http's terms
};

}  // namespace rtenv::store
