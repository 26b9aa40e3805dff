#include "store/blob_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include <httplib.h>

#include "store/blob_codec.h"
#include "store/local_store.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/lines.h"
#include "util/redact.h"

namespace rtenv::store {

namespace {

using Clock = std::chrono::steady_clock;

// When the request now being served on this thread started (for the log line).
thread_local Clock::time_point t_request_start;

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

void answer_text(httplib::Response& res, int status, std::string_view text) {
  res.status = status;
  res.set_content(std::string(text) + "\n", "text/plain");
}

void answer_error(httplib::Response& res, const Error& e) {
  answer_text(res, status_of(e), e.message());
}

// The digest named in a blob path, or a 400 answer.
std::optional<Digest> digest_of(const httplib::Request& req, httplib::Response& res) {
  std::string hex = req.matches[1];
  auto d = Digest::from_hex(hex);
  if (!d || d->hex() != hex) {
    answer_text(res, 400,
                fmt::format("\"{}\" is not a blob name (64 lowercase hex digits of its SHA-256)",
                            hex.substr(0, 100)));
    return std::nullopt;
  }
  return *d;
}

}  // namespace

struct BlobServer::Impl {
  BlobServerOptions options;
  std::unique_ptr<LocalStore> store;
  std::optional<Digest> token_digest;
  httplib::Server http;
  int port = 0;
  std::thread listener;
  int listen_fd = -1;
  std::atomic<bool> listen_returned{false};
  std::mutex mu;  // guards joining `listener`

  void routes();
  bool authorized(const httplib::Request& req) const {
    if (!token_digest) return true;
    std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!std::string_view(auth).starts_with(kBearer)) return false;
    return same_token(std::string_view(auth).substr(kBearer.size()), *token_digest);
  }

  void get_blob(const httplib::Request& req, httplib::Response& res);
  void put_blob(const httplib::Request& req, httplib::Response& res);
  void delete_blob(const httplib::Request& req, httplib::Response& res);
  void list_blobs(const httplib::Request& req, httplib::Response& res);
  void missing(const httplib::Request& req, httplib::Response& res);
  void get_record(const httplib::Request& req, httplib::Response& res);
  void put_record(const httplib::Request& req, httplib::Response& res);
  void delete_record(const httplib::Request& req, httplib::Response& res);
};

void BlobServer::Impl::get_blob(const httplib::Request& req, httplib::Response& res) {
  auto digest = digest_of(req, res);
  if (!digest) return;
  fs::path path = store->blob_path(*digest);
  if (req.method == "HEAD") {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
      return;
    }
    res.status = 200;
    return;
  }
  // Sent as it is on disk, unverified: the client checks the digest of what it decodes.
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
  res.set_content(encode_blob(*data), "application/octet-stream");
}

void BlobServer::Impl::put_blob(const httplib::Request& req, httplib::Response& res) {
  auto digest = digest_of(req, res);
  if (!digest) return;
  auto data = decode_blob(req.body);
  if (!data) {
    answer_text(res, 400,
                fmt::format("the body sent for blob {} is not an encoded blob: {}", digest->hex(),
                            data.error().message()));
    return;
  }
  Digest actual = Digest::of(*data);
  if (actual != *digest) {
    answer_text(res, 400,
                fmt::format("refused blob {}: its content hashes to {} (expected {}); nothing "
                            "was stored",
                            digest->hex(), actual.hex(), digest->hex()));
    return;
  }
  if (auto r = store->put(*digest, *data); !r) {
    answer_error(res, r.error());
    return;
  }
  res.status = 204;
}

void BlobServer::Impl::delete_blob(const httplib::Request& req, httplib::Response& res) {
  auto digest = digest_of(req, res);
  if (!digest) return;
  auto removed = store->remove(*digest);
  if (!removed) return answer_error(res, removed.error());
  if (!*removed) return answer_text(res, 404, fmt::format("blob {} is not here", digest->hex()));
  res.status = 204;
}

void BlobServer::Impl::list_blobs(const httplib::Request&, httplib::Response& res) {
  std::string body;
  auto r = store->list([&](const Digest& d, uint64_t bytes) {
    body += d.hex();
    body += ' ';
    body += std::to_string(bytes);
    body += '\n';
  });
  if (!r) return answer_error(res, r.error());
  res.status = 200;
  res.set_content(std::move(body), "text/plain");
}

void BlobServer::Impl::missing(const httplib::Request& req, httplib::Response& res) {
  std::vector<Digest> digests;
  std::string_view rest = req.body;
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
                                     line_no, line.substr(0, 100)));
    }
    digests.push_back(*d);
  }
  auto absent = store->missing(digests);
  if (!absent) return answer_error(res, absent.error());
  std::string body;
  for (size_t i = 0; i < digests.size(); ++i) {
    if (!(*absent)[i]) continue;
    body += digests[i].hex();
    body += '\n';
  }
  res.status = 200;
  res.set_content(std::move(body), "text/plain");
}

void BlobServer::Impl::get_record(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.matches[1];
  auto data = store->get_record(name);
  if (!data) return answer_error(res, data.error());
  res.status = 200;
  res.set_content(std::move(data).value(), "application/octet-stream");
}

void BlobServer::Impl::put_record(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.matches[1];
  std::string condition = req.get_header_value("If-None-Match");
  if (!condition.empty() && condition != "*") {
    return answer_text(res, 400, "If-None-Match: only \"*\" (create only) is understood");
  }
  auto r =
      condition == "*" ? store->create_record(name, req.body) : store->put_record(name, req.body);
  if (!r) return answer_error(res, r.error());
  res.status = 204;
}

void BlobServer::Impl::delete_record(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.matches[1];
  auto removed = store->remove_record(name);
  if (!removed) return answer_error(res, removed.error());
  if (!*removed) return answer_text(res, 404, fmt::format("record {} is not here", name));
  res.status = 204;
}

void BlobServer::Impl::routes() {
  using httplib::Request;
  using httplib::Response;
  auto bind = [this](void (Impl::*fn)(const Request&, Response&)) {
    return [this, fn](const Request& req, Response& res) { (this->*fn)(req, res); };
  };
  const char* blob = R"(/v1/blobs/([^/]+))";
  const char* record = R"(/v1/records/(.+))";
  http.Get(blob, bind(&Impl::get_blob));  // HEAD too
  http.Put(blob, bind(&Impl::put_blob));
  http.Delete(blob, bind(&Impl::delete_blob));
  http.Get("/v1/blobs", bind(&Impl::list_blobs));
  http.Post("/v1/missing", bind(&Impl::missing));
  http.Get(record, bind(&Impl::get_record));
  http.Put(record, bind(&Impl::put_record));
  http.Delete(record, bind(&Impl::delete_record));

  // Before any body is read: a caller without the token sends nothing we keep.
  http.set_pre_routing_handler([this](const Request& req, Response& res) {
    t_request_start = Clock::now();
    if (authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    // The body (if any) is left unread, so the connection cannot carry another request.
    res.set_header("Connection", "close");
    answer_text(res, 401,
                req.has_header("Authorization")
                    ? "the bearer token is wrong (the client's RTENV_STORE_TOKEN must be the "
                      "server's token)"
                    : "this server needs 'Authorization: Bearer <token>' (set RTENV_STORE_TOKEN "
                      "on the client)");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      answer_text(res, 404, fmt::format("no such endpoint: {} {}", req.method, req.path));
    } else if (res.status == 413) {
      answer_text(res, 413, "the request body is larger than this server accepts");
    }
  });
  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    answer_text(res, 500, "internal error: " + what);
  });
  http.set_logger([this](const Request& req, const Response& res) {
    // Server failures are always worth a line; everything else only when asked for.
    if (!options.verbose && res.status < 500) return;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_request_start);
    std::string line =
        fmt::format("rtenv store: {} {} {} in={} out={} {}ms {}", log_escaped(req.method),
                    log_escaped(req.path), res.status, req.body.size(), res.body.size(), ms.count(),
                    log_escaped(req.remote_addr));
    if (res.status >= 500) line += ": " + log_escaped(res.body.substr(0, 300));
    std::fprintf(stderr, "%s\n", line.c_str());
  });
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

  unsigned threads = o.threads;
  impl->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl->http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  impl->http.set_keep_alive_timeout(o.keep_alive_seconds);
  impl->http.set_keep_alive_max_count(1000);
  impl->http.set_read_timeout(30);
  impl->http.set_write_timeout(30);
  // httplib's default is SO_REUSEPORT, which would let a second server share the port (and
  // split the requests between two stores) instead of failing.
  impl->http.set_socket_options([raw = impl.get()](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    raw->listen_fd = sock;  // the last socket tried is the one that binds
  });
  // A response's headers and body go out in separate writes: without this, Nagle's algorithm
  // and the client's delayed ACK add ~40 ms to every request.
  impl->http.set_tcp_nodelay(true);
  impl->routes();

  if (o.port == 0) {
    impl->port = impl->http.bind_to_any_port(o.host);
  } else {
    impl->port = impl->http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  // httplib listens with a backlog of 5: a node opening its 16 connections at once would have
  // SYNs dropped and wait a second for the retransmission. Listening again resizes the queue.
  if (impl->port > 0 && impl->listen_fd >= 0) ::listen(impl->listen_fd, SOMAXCONN);
  if (impl->port <= 0) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot listen on {}:{} (is the address this machine's, and the port "
                      "free?)",
                      o.host, o.port);
  }
  Impl* raw = impl.get();
  impl->listener = std::thread([raw] {
    raw->http.listen_after_bind();
    raw->listen_returned = true;
  });
  // Until the loop runs, stop() would do nothing (and wait() would never return).
  while (!raw->http.is_running() && !raw->listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<BlobServer>(new BlobServer(std::move(impl)));
}

int BlobServer::port() const { return impl_->port; }

std::string BlobServer::url() const {
  const std::string& host = impl_->options.host;
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", impl_->port);
}

void BlobServer::stop() { impl_->http.stop(); }

bool BlobServer::running() const { return !impl_->listen_returned; }

void BlobServer::wait() {
  std::lock_guard lock(impl_->mu);
  if (impl_->listener.joinable()) impl_->listener.join();
}

Result<std::pair<std::string, int>> parse_listen_address(std::string_view address) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "listen address \"{}\": {} (expected HOST:PORT, e.g. 127.0.0.1:7878 or "
                      "[::1]:7878)",
                      address, why);
  };
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string host(address.substr(0, colon));
  std::string port_text(address.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return bad("an IPv6 address must be in brackets");
  }
  if (host.empty()) return bad("no host");
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  return std::make_pair(host, static_cast<int>(port));
}

bool is_loopback_host(std::string_view host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace rtenv::store
