#include "store/blob_server.h"

#include <sys/stat.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "store/blob_codec.h"
#include "store/http_server.h"
#include "store/local_store.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/lines.h"
#include "util/redact.h"

namespace rtenv::store {

namespace {

// Tokens are compared as SHA-256 digests, byte by byte without an early exit: how long the
// comparison takes says nothing about how much of a guess was right (not even its length).
bool same_token(std::string_view given, const Digest& expected) {
  std::string a = Digest::of(given).hex(), b = expected.hex();
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

int status_of(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
    case ErrorCode::kUnsafe:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 412;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
      return 503;
    default:
      return 500;
  }
}

void answer_text(http::Response& res, int status, std::string_view text) {
  res.status = status;
  res.content_type = "text/plain";
  res.body = std::string(text) + "\n";
}

void answer_error(http::Response& res, const Error& e) {
  answer_text(res, status_of(e), e.message());
}

// The digest named in a blob path, or a 400 answer.
std::optional<Digest> digest_of(std::string_view hex, http::Response& res) {
  auto d = Digest::from_hex(hex);
  if (!d || d->hex() != hex) {
    answer_text(res, 400,
                fmt::format("\"{}\" is not a blob name (64 lowercase hex digits of its SHA-256)",
                            log_escaped(hex.substr(0, 100))));
    return std::nullopt;
  }
  return *d;
}

constexpr std::string_view kBlobs = "/v1/blobs";
/// Blobs larger than this are sent as they are read, not encoded whole in memory.
constexpr uint64_t kStreamBytes = 1 << 20;
/// Request bodies are read in pieces of this size.
constexpr size_t kBodyChunk = 256 * 1024;
constexpr std::string_view kRecords = "/v1/records/";

}  // namespace

struct BlobServer::Impl {
  BlobServerOptions options;
  std::unique_ptr<LocalStore> store;
  std::optional<Digest> token_digest;
  std::unique_ptr<http::Server> http;

  bool authorized(const http::Request& req) const {
    if (!token_digest) return true;
    std::string_view auth = req.header("Authorization").value_or("");
    constexpr std::string_view kBearer = "Bearer ";
    if (!auth.starts_with(kBearer)) return false;
    return same_token(auth.substr(kBearer.size()), *token_digest);
  }

  /// Before any body is read: a caller without the token sends nothing we keep, and a body over
  /// the limit is refused before it travels.
  std::optional<http::Response> gate(const http::Request& req) const {
    http::Response res;
    if (!authorized(req)) {
      res.headers.emplace_back("WWW-Authenticate", "Bearer");
      answer_text(res, 401,
                  req.header("Authorization")
                      ? "the bearer token is wrong (the client's RTENV_STORE_TOKEN must be the "
                        "server's token)"
                      : "this server needs 'Authorization: Bearer <token>' (set RTENV_STORE_TOKEN "
                        "on the client)");
      return res;
    }
    if (req.content_length > options.max_body_bytes) {
      answer_text(res, 413,
                  fmt::format("the request body ({} bytes) is larger than this server accepts "
                              "({} bytes)",
                              req.content_length, options.max_body_bytes));
      return res;
    }
    return std::nullopt;
  }

  void serve(const http::Request& req, http::Body& body, http::Response& res) {
    const std::string& path = req.path;
    const std::string& m = req.method;
    if (path.starts_with(kBlobs) && path.size() > kBlobs.size() + 1 && path[kBlobs.size()] == '/') {
      std::string_view name = std::string_view(path).substr(kBlobs.size() + 1);
      if (m == "GET" || m == "HEAD") return get_blob(name, m == "HEAD", res);
      if (m == "PUT") return put_blob(name, body, res);
      if (m == "DELETE") return delete_blob(name, res);
    } else if (path == kBlobs) {
      if (m == "GET") return list_blobs(res);
    } else if (path == "/v1/missing") {
      if (m == "POST") return missing(body, res);
    } else if (path.starts_with(kRecords) && path.size() > kRecords.size()) {
      std::string name = path.substr(kRecords.size());
      if (m == "GET") return get_record(name, res);
      if (m == "PUT") return put_record(req, name, body, res);
      if (m == "DELETE") return delete_record(name, res);
    } else {
      return answer_text(res, 404, fmt::format("no such endpoint: {} {}", m, path));
    }
    answer_text(res, 405, fmt::format("{} is not served on {}", m, path));
  }

  void get_blob(std::string_view name, bool head, http::Response& res);
  void put_blob(std::string_view name, http::Body& body, http::Response& res);
  void delete_blob(std::string_view name, http::Response& res);
  void list_blobs(http::Response& res);
  void missing(http::Body& body, http::Response& res);
  void get_record(const std::string& name, http::Response& res);
  void put_record(const http::Request& req, const std::string& name, http::Body& body,
                  http::Response& res);
  void delete_record(const std::string& name, http::Response& res);

  void log(const http::Request& req, const http::Response& res, uint64_t in,
           std::chrono::milliseconds ms) const {
    // Server failures are always worth a line; everything else only when asked for.
    if (!options.verbose && res.status < 500) return;
    std::string line = fmt::format("rtenv store: {} {} {} in={} out={} {}ms {}",
                                   log_escaped(req.method), log_escaped(req.path), res.status, in,
                                   res.body.size(), ms.count(), log_escaped(req.peer));
    if (res.status >= 500) line += ": " + log_escaped(res.body.substr(0, 300));
    std::fprintf(stderr, "%s\n", line.c_str());
  }
};

void BlobServer::Impl::get_blob(std::string_view name, bool head, http::Response& res) {
  auto digest = digest_of(name, res);
  if (!digest) return;
  fs::path path = store->blob_path(*digest);
  if (head) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
      return;
    }
    res.status = 200;
    return;
  }
  // Sent as it is on disk, unverified: the client checks the digest of what it decodes. A small
  // blob is encoded whole; a larger one as it is read (chunked when compressed, its encoded
  // size unknown), so a GET holds a few hundred KiB whatever the blob's size.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
    return answer_error(res, io_error("cannot stat", path, errno));
  }
  if (static_cast<uint64_t>(st.st_size) > kStreamBytes) {
    auto reader = EncodedFileReader::open(path, std::nullopt);
    if (!reader) return answer_error(res, reader.error());
    std::shared_ptr<EncodedFileReader> shared = std::move(reader).value();
    res.status = 200;
    res.content_type = "application/octet-stream";
    if (!shared->compressed()) res.stream_length = shared->known_encoded_size();
    res.body_stream = [shared](char* out, size_t n) { return shared->read(out, n); };
    return;
  }
  auto data = read_file(path);
  if (!data) {
    if (data.error().code() == ErrorCode::kNotFound) {
      answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
    } else {
      answer_error(res, data.error());
    }
    return;
  }
  res.status = 200;
  res.content_type = "application/octet-stream";
  res.body = encode_blob(*data);
}

void BlobServer::Impl::put_blob(std::string_view name, http::Body& body, http::Response& res) {
  auto digest = digest_of(name, res);
  if (!digest) return;
  // Read and decoded as it arrives, into a temp file the store renames into place only if the
  // content hashes to the name: memory stays at a chunk whatever the size, and the decoded size
  // is bounded as the body is (a small compressed body must not fill the disk).
  std::unique_ptr<char[]> buf(new char[kBodyChunk]);
  BlobDecoder decoder(options.max_body_bytes);
  std::optional<Error> decode_error;
  auto r = store->put_stream(
      *digest,
      [&](const ChunkSink& sink) -> Result<void> {
        for (;;) {
          RTENV_ASSIGN_OR_RETURN(size_t n, body.read(buf.get(), kBodyChunk));
          if (n == 0) break;
          if (auto d = decoder.update(std::string_view(buf.get(), n), sink); !d) {
            if (d.error().code() == ErrorCode::kCorrupt) decode_error = d.error();
            return d;
          }
        }
        if (auto d = decoder.finish(); !d) {
          decode_error = d.error();
          return d;
        }
        return ok_result();
      },
      "the body sent");
  if (decode_error) {
    return answer_text(res, 400,
                       fmt::format("the body sent for blob {} is not an encoded blob: {}; nothing "
                                   "was stored",
                                   digest->hex(), decode_error->message()));
  }
  if (!r && r.error().code() == ErrorCode::kCorrupt) {
    return answer_text(
        res, 400,
        fmt::format("refused blob {}: {}; nothing was stored", digest->hex(), r.error().message()));
  }
  if (!r) return answer_error(res, r.error());
  // The blob was here already (the body was not read): drop the body, so the client, which is
  // still sending it, gets the answer rather than a reset.
  while (body.remaining() > 0) {
    auto n = body.read(buf.get(), kBodyChunk);
    if (!n || *n == 0) break;
  }
  res.status = 204;
}

void BlobServer::Impl::delete_blob(std::string_view name, http::Response& res) {
  auto digest = digest_of(name, res);
  if (!digest) return;
  auto removed = store->remove(*digest);
  if (!removed) return answer_error(res, removed.error());
  if (!*removed) return answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
  res.status = 204;
}

void BlobServer::Impl::list_blobs(http::Response& res) {
  std::string body;
  auto r = store->list([&](const Digest& d, uint64_t bytes) {
    body += d.hex();
    body += ' ';
    body += std::to_string(bytes);
    body += '\n';
  });
  if (!r) return answer_error(res, r.error());
  res.status = 200;
  res.content_type = "text/plain";
  res.body = std::move(body);
}

void BlobServer::Impl::missing(http::Body& body, http::Response& res) {
  auto text = body.read_all(options.max_body_bytes);
  if (!text) return answer_error(res, text.error());
  std::vector<Digest> digests;
  std::string_view rest = *text;
  size_t line_no = 0;
  while (!rest.empty()) {
    std::string_view line = next_line(&rest);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    auto d = Digest::from_hex(line);
    if (!d) {
      return answer_text(res, 400,
                         fmt::format("line {} of the body is not a digest (64 hex digits): \"{}\"",
                                     line_no, log_escaped(line.substr(0, 100))));
    }
    digests.push_back(*d);
  }
  // A collection (`store serve --gc-every`) waits for the query and the query for it: what is
  // found present is marked used before a collector can look.
  auto held = store->hold_against_collection();
  if (!held) return answer_error(res, held.error());
  auto absent = store->missing(digests);
  if (!absent) return answer_error(res, absent.error());
  std::string out;
  for (size_t i = 0; i < digests.size(); ++i) {
    if (!(*absent)[i]) continue;
    out += digests[i].hex();
    out += '\n';
  }
  res.status = 200;
  res.content_type = "text/plain";
  res.body = std::move(out);
}

void BlobServer::Impl::get_record(const std::string& name, http::Response& res) {
  auto data = store->get_record(name);
  if (!data) return answer_error(res, data.error());
  res.status = 200;
  res.content_type = "application/octet-stream";
  res.body = std::move(data).value();
}

void BlobServer::Impl::put_record(const http::Request& req, const std::string& name,
                                  http::Body& body, http::Response& res) {
  std::string_view condition = req.header("If-None-Match").value_or("");
  if (!condition.empty() && condition != "*") {
    return answer_text(res, 400, "If-None-Match: only \"*\" (create only) is understood");
  }
  auto value = body.read_all(options.max_body_bytes);
  if (!value) return answer_error(res, value.error());
  auto r = condition == "*" ? store->create_record(name, *value) : store->put_record(name, *value);
  if (!r) return answer_error(res, r.error());
  res.status = 204;
}

void BlobServer::Impl::delete_record(const std::string& name, http::Response& res) {
  auto removed = store->remove_record(name);
  if (!removed) return answer_error(res, removed.error());
  if (!*removed) return answer_text(res, 404, fmt::format("record {} is not here", name));
  res.status = 204;
}

BlobServer::BlobServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BlobServer::~BlobServer() {
  stop();
  wait();
}

Result<std::unique_ptr<BlobServer>> BlobServer::start(BlobServerOptions options) {
  if (options.port < 0 || options.port > 65535) {
    return make_error(ErrorCode::kInvalidArgument, "port {} is not in 0..65535", options.port);
  }
  if (options.threads == 0) {
    return make_error(ErrorCode::kInvalidArgument, "the blob server needs at least one thread");
  }
  auto impl = std::make_unique<Impl>();
  RTENV_ASSIGN_OR_RETURN(impl->store, LocalStore::open(options.root));
  if (!options.token.empty()) impl->token_digest = Digest::of(options.token);
  impl->options = std::move(options);
  const BlobServerOptions& o = impl->options;

  http::ServerOptions server;
  server.host = o.host;
  server.port = o.port;
  server.threads = o.threads;
  server.keep_alive = std::chrono::seconds(o.keep_alive_seconds);
  server.head_timeout = o.head_timeout;
  server.max_waiting_per_peer = o.max_waiting_per_peer;
  Impl* raw = impl.get();
  RTENV_ASSIGN_OR_RETURN(
      impl->http, http::Server::start(
                      server, [raw](const http::Request& req) { return raw->gate(req); },
                      [raw](const http::Request& req, http::Body& body, http::Response& res) {
                        raw->serve(req, body, res);
                      },
                      [raw](const http::Request& req, const http::Response& res, uint64_t in,
                            std::chrono::milliseconds ms) { raw->log(req, res, in, ms); }));
  return std::unique_ptr<BlobServer>(new BlobServer(std::move(impl)));
}

int BlobServer::port() const { return impl_->http->port(); }

std::string BlobServer::url() const {
  const std::string& host = impl_->options.host;
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port());
}

void BlobServer::stop() { impl_->http->stop(); }

bool BlobServer::running() const { return impl_->http->running(); }

void BlobServer::wait() { impl_->http->wait(); }

}  // namespace rtenv::store
