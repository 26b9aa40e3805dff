#include "store/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>

#include "util/digest.h"

namespace rtenv::store::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kHeadEnd = "\r\n\r\n";
/// How long a refused connection is drained (its unread request discarded) before it is closed,
/// so the client reads the answer instead of a reset.
constexpr std::chrono::milliseconds kLinger{1'000};
/// A body left unread by a handler is read and discarded up to this size to keep the connection;
/// beyond, the connection is closed.
constexpr uint64_t kMaxDrainBytes = 64 * 1024;
/// Chunks read and discarded from a refused connection per round of the watching thread.
constexpr int kMaxDiscardChunks = 16;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// `s` with its %XX escapes decoded; nullopt for a broken escape.
std::optional<std::string> percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? hex_digit_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_digit_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string peer_address(const sockaddr_storage& addr) {
  char host[NI_MAXHOST] = "?";
  ::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr), host, sizeof(host), nullptr,
                0, NI_NUMERICHOST);
  return host;
}

void set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

void set_io_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/// Writes all of `data` (blocking socket with a send timeout); false if the peer is gone or
/// stalls.
bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string response_head(const Request& req, const Response& res, bool keep_alive) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\n", res.status, reason_phrase(res.status));
  if (req.method == "HEAD" && res.head_length) {
    head += fmt::format("Content-Length: {}\r\n", *res.head_length);
  } else if (!res.body_stream) {
    head += fmt::format("Content-Length: {}\r\n", res.body.size());
  } else if (res.stream_length) {
    head += fmt::format("Content-Length: {}\r\n", *res.stream_length);
  } else if (!req.http_1_0) {
    head += "Transfer-Encoding: chunked\r\n";
  }
  if (!res.content_type.empty()) head += fmt::format("Content-Type: {}\r\n", res.content_type);
  for (const auto& [name, value] : res.headers) head += fmt::format("{}: {}\r\n", name, value);
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return head;
}

Response plain(int status, std::string text) {
  Response res;
  res.status = status;
  res.content_type = "text/plain";
  res.body = std::move(text) + "\n";
  res.close = true;
  return res;
}

/// A connection the server holds: waiting for a head on the watching thread, or being served.
struct Conn {
  int fd = -1;
  std::string peer;
  std::string buf;             ///< bytes read and not consumed yet (the start of a head or a body)
  Clock::time_point since;     ///< accepted, or last handed back to the watching thread
  Clock::time_point deadline;  ///< closed when reached while waiting
  bool idle = false;           ///< between requests, no byte of the next one yet
  bool lingering = false;      ///< answered and half-closed: input is discarded until EOF
  unsigned served = 0;

  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
};

/// A request whose head passed the gate, for a handler thread.
struct Ready {
  std::unique_ptr<Conn> conn;
  Request req;
  bool keep_alive = false;
  Clock::time_point start;
};

}  // namespace

std::variant<ParsedHead, Response> parse_request_head(std::string_view head) {
  auto bad = [](std::string why) { return plain(400, "bad request: " + why); };
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);

  Request req;
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad("the request line is not 'METHOD TARGET HTTP/1.1'");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) {
    return bad("the method is not a word");
  }
  if (target.empty() || target.front() != '/') return bad("the target is not a path");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return plain(505, "only HTTP/1.1 and HTTP/1.0 are served");
  }
  req.method = std::string(method);
  size_t q = target.find('?');
  std::optional<std::string> path = percent_decoded(target.substr(0, q));
  if (!path) return bad("the target has a broken %-escape");
  req.path = std::move(*path);
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));

  std::optional<uint64_t> length;
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view h = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    size_t colon = h.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(h.begin(), h.begin() + static_cast<ptrdiff_t>(colon), is_token_char)) {
      return bad("a header line is not 'Name: value'");
    }
    std::string name = lower(h.substr(0, colon));
    std::string_view value = trim(h.substr(colon + 1));
    if (name == "content-length") {
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || p != value.data() + value.size() ||
          n > (uint64_t{1} << 62)) {
        return bad("Content-Length is not a number");
      }
      if (length && *length != n) return bad("two different Content-Lengths");
      length = n;
    } else if (name == "transfer-encoding") {
      return plain(501, "bodies must be sent with Content-Length (no Transfer-Encoding)");
    }
    req.headers.emplace_back(std::move(name), std::string(value));
  }
  req.content_length = length.value_or(0);
  req.http_1_0 = version == "HTTP/1.0";
  std::string connection = lower(req.header("connection").value_or(""));
  bool keep_alive = version == "HTTP/1.1" ? connection.find("close") == std::string::npos
                                          : connection.find("keep-alive") != std::string::npos;
  return ParsedHead{std::move(req), keep_alive};
}

namespace {

class SocketBody : public Body {
 public:
  SocketBody(Conn& conn, uint64_t length) : conn_(conn), left_(length) {}

  Result<size_t> read(char* out, size_t n) override {
    n = static_cast<size_t>(std::min<uint64_t>(n, left_));
    if (n == 0) return size_t{0};
    if (!conn_.buf.empty()) {
      size_t take = std::min(n, conn_.buf.size());
      std::memcpy(out, conn_.buf.data(), take);
      conn_.buf.erase(0, take);
      left_ -= take;
      return take;
    }
    for (;;) {
      ssize_t got = ::recv(conn_.fd, out, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return make_error(ErrorCode::kTimeout, "the client stopped sending its request's body");
      }
      if (got <= 0) {
        return make_error(ErrorCode::kUnavailable,
                          "the client closed the connection before sending its whole body");
      }
      left_ -= static_cast<uint64_t>(got);
      return static_cast<size_t>(got);
    }
  }

  uint64_t remaining() const override { return left_; }

 private:
  Conn& conn_;
  uint64_t left_;
};

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  std::string key = lower(name);
  for (const auto& [n, v] : headers) {
    if (n == key) return std::string_view(v);
  }
  return std::nullopt;
}

Result<std::string> Body::read_all(uint64_t limit) {
  if (remaining() > limit) {
    return make_error(ErrorCode::kTooLarge,
                      "the request body ({} bytes) is over this server's "
                      "limit of {} bytes",
                      remaining(), limit);
  }
  std::string out(static_cast<size_t>(remaining()), '\0');
  size_t at = 0;
  while (at < out.size()) {
    RTENV_ASSIGN_OR_RETURN(size_t n, read(out.data() + at, out.size() - at));
    if (n == 0) break;
    at += n;
  }
  out.resize(at);
  return out;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

struct Server::Impl {
  ServerOptions options;
  Gate gate;
  Handler handler;
  Logger logger;
  int listen_fd = -1;
  int wake_fd = -1;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  std::thread watcher;
  std::vector<std::thread> workers;
  std::mutex join_mu;

  std::mutex mu;  // guards ready, returned
  std::condition_variable cv;
  std::deque<Ready> ready;
  std::vector<std::unique_ptr<Conn>> returned;

  // Watching thread only.
  std::vector<std::unique_ptr<Conn>> waiting;
  std::map<std::string, unsigned> waiting_per_peer;

  ~Impl() {
    if (listen_fd >= 0) ::close(listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() {
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
  }

  void log(const Request& req, const Response& res, uint64_t body_read, Clock::time_point start) {
    if (!logger) return;
    try {
      logger(req, res, body_read,
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start));
    } catch (...) {
    }
  }

  // ---- the watching thread ------------------------------------------------------------------

  /// Adds a connection to the watching thread's list; false if it was closed instead (too many
  /// connections wait).
  bool add_waiting(std::unique_ptr<Conn> conn) {
    auto count = waiting_per_peer.find(conn->peer);
    if (count != waiting_per_peer.end() && count->second >= options.max_waiting_per_peer) {
      // The peer's connection that has waited longest makes room: a client that sends its head
      // at once still gets through while others from the same address dawdle.
      auto oldest = waiting.end();
      for (auto it = waiting.begin(); it != waiting.end(); ++it) {
        if ((*it)->peer == conn->peer &&
            (oldest == waiting.end() || (*it)->since < (*oldest)->since)) {
          oldest = it;
        }
      }
      if (oldest != waiting.end()) drop(static_cast<size_t>(oldest - waiting.begin()));
    }
    if (waiting.size() >= options.max_waiting) return false;  // closed by the unique_ptr
    ++waiting_per_peer[conn->peer];
    waiting.push_back(std::move(conn));
    return true;
  }

  /// Takes waiting connection `i` off the watching thread's list, for a handler.
  std::unique_ptr<Conn> take(size_t i) {
    std::unique_ptr<Conn> conn = std::move(waiting[i]);
    auto it = waiting_per_peer.find(conn->peer);
    if (it != waiting_per_peer.end() && --it->second == 0) waiting_per_peer.erase(it);
    waiting[i] = std::move(waiting.back());
    waiting.pop_back();
    return conn;
  }

  /// Closes waiting connection `i`.
  void drop(size_t i) { (void)take(i); }

  /// Answers on a connection that is not going to be served, then drains it until the client
  /// closes (or kLinger passes), so the answer is read rather than lost to a reset.
  void refuse(Conn& conn, const Request& req, const Response& res, Clock::time_point start) {
    std::string out = response_head(req, res, false);
    if (req.method != "HEAD") out += res.body;
    (void)::send(conn.fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(conn.fd, SHUT_WR);
    conn.lingering = true;
    conn.buf.clear();
    conn.deadline = Clock::now() + kLinger;
    log(req, res, 0, start);
  }

  /// A whole head is in waiting[i]'s buffer: refuse it or hand it to a handler. Returns true if
  /// the connection left the list.
  bool head_arrived(size_t i, size_t head_size) {
    Conn& conn = *waiting[i];
    const Clock::time_point start = Clock::now();
    auto parsed = parse_request_head(std::string_view(conn.buf).substr(0, head_size));
    conn.buf.erase(0, head_size + kHeadEnd.size());
    if (auto* refusal = std::get_if<Response>(&parsed)) {
      Request req;
      req.peer = conn.peer;
      refuse(conn, req, *refusal, start);
      return false;
    }
    auto& [req, keep_alive] = std::get<ParsedHead>(parsed);
    req.peer = conn.peer;
    std::optional<Response> refused;
    try {
      if (gate) refused = gate(req);
    } catch (const std::exception& e) {
      refused = plain(500, std::string("internal error: ") + e.what());
    }
    if (refused) {
      refused->close = true;
      refuse(conn, req, *refused, start);
      return false;
    }
    Ready r{take(i), std::move(req), keep_alive, start};
    {
      std::lock_guard lock(mu);
      ready.push_back(std::move(r));
    }
    cv.notify_one();
    return true;
  }

  /// Reads what waiting[i] sent. Returns true if the connection left the list.
  bool readable(size_t i) {
    Conn& conn = *waiting[i];
    char chunk[16 * 1024];
    // What a refused client keeps sending is discarded, a bounded amount per round, so one
    // client that floods cannot hold this thread.
    for (int discarded = 0; discarded < kMaxDiscardChunks;) {
      ssize_t n = ::recv(conn.fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        drop(i);
        return true;
      }
      if (conn.lingering) {
        ++discarded;
        continue;
      }
      if (conn.idle) {
        conn.idle = false;
        conn.deadline = Clock::now() + options.head_timeout;
      }
      size_t searched_from = conn.buf.size() >= 3 ? conn.buf.size() - 3 : 0;
      conn.buf.append(chunk, static_cast<size_t>(n));
      size_t end = conn.buf.find(kHeadEnd, searched_from);
      if (end != std::string::npos) {
        if (end > options.max_head_bytes) break;  // answered below
        return head_arrived(i, end);
      }
      if (conn.buf.size() > options.max_head_bytes) break;
    }
    if (!conn.lingering && conn.buf.size() > options.max_head_bytes) {
      Request req;
      req.peer = conn.peer;
      refuse(conn, req,
             plain(431, fmt::format("the request's head is over {} bytes", options.max_head_bytes)),
             Clock::now());
    }
    return false;
  }

  /// Accepts every connection that is queued. Returns false when out of file descriptors.
  bool accept_all() {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof(addr);
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return errno != EMFILE && errno != ENFILE;
      }
      int yes = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
      auto conn = std::make_unique<Conn>();
      conn->fd = fd;
      conn->peer = peer_address(addr);
      conn->since = Clock::now();
      conn->deadline = conn->since + options.head_timeout;
      add_waiting(std::move(conn));
    }
  }

  void take_returned() {
    std::vector<std::unique_ptr<Conn>> back;
    {
      std::lock_guard lock(mu);
      back.swap(returned);
    }
    Clock::time_point now = Clock::now();
    for (auto& conn : back) {
      conn->since = now;
      if (!conn->lingering) {
        conn->idle = conn->buf.empty();
        conn->deadline = now + (conn->idle ? options.keep_alive : options.head_timeout);
      }
      if (!add_waiting(std::move(conn))) continue;
      // A client may have sent its next request already (pipelining).
      size_t i = waiting.size() - 1;
      if (!waiting[i]->lingering && !waiting[i]->buf.empty()) {
        size_t end = waiting[i]->buf.find(kHeadEnd);
        if (end != std::string::npos && end <= options.max_head_bytes) head_arrived(i, end);
      }
    }
  }

  void watch() {
    std::vector<pollfd> fds;
    bool accepting = true;
    Clock::time_point resume_accepting;
    while (!stopping) {
      Clock::time_point now = Clock::now();
      if (!accepting && now >= resume_accepting) accepting = true;
      // Connections past their deadline are closed: a head that took too long gets a 408.
      for (size_t i = 0; i < waiting.size();) {
        Conn& conn = *waiting[i];
        if (now < conn.deadline) {
          ++i;
          continue;
        }
        if (!conn.idle && !conn.lingering && !conn.buf.empty()) {
          Request req;
          req.peer = conn.peer;
          refuse(conn, req, plain(408, "the request's head did not arrive in time"), now);
          ++i;
          continue;
        }
        drop(i);
      }
      Clock::time_point next = now + std::chrono::seconds(1);
      for (const auto& conn : waiting) next = std::min(next, conn->deadline);
      if (!accepting) next = std::min(next, resume_accepting);

      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      fds.push_back({accepting ? listen_fd : -1, POLLIN, 0});
      for (const auto& conn : waiting) fds.push_back({conn->fd, POLLIN, 0});
      int timeout_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1, 0, 1000));
      int n = ::poll(fds.data(), fds.size(), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0].revents & POLLIN) {
        uint64_t count;
        (void)!::read(wake_fd, &count, sizeof(count));
      }
      if (stopping) break;
      // Connections are taken from the back, so walk the poll results from the back too: a
      // removal only moves a connection whose result was seen already.
      size_t polled = fds.size() - 2;
      for (size_t k = polled; k-- > 0;) {
        if (k >= waiting.size() || fds[k + 2].fd != waiting[k]->fd) continue;
        if (fds[k + 2].revents & (POLLIN | POLLHUP | POLLERR)) readable(k);
      }
      if (fds[1].revents & (POLLERR | POLLNVAL)) break;
      if ((fds[1].revents & POLLIN) && !accept_all()) {
        // Out of descriptors: accepting again at once would spin; the waiting ones time out.
        {
          accepting = false;
          resume_accepting = Clock::now() + std::chrono::milliseconds(100);
        }
      }
      take_returned();
    }
    stopping = true;
    // Connections not accepted yet are reset with the listening socket.
    ::close(listen_fd);
    listen_fd = -1;
    waiting.clear();
    waiting_per_peer.clear();
    cv.notify_all();
  }

  // ---- handler threads ----------------------------------------------------------------------

  void work() {
    for (;;) {
      Ready r;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !ready.empty() || stopping; });
        if (stopping) return;
        r = std::move(ready.front());
        ready.pop_front();
      }
      serve(std::move(r));
    }
  }

  /// Sends a streamed body (Response::body_stream); false if it could not be sent whole.
  static bool send_stream(int fd, const Request& req, const Response& res) {
    constexpr size_t kChunk = 256 * 1024;
    std::unique_ptr<char[]> buf(new char[kChunk]);
    const bool chunked = !res.stream_length && !req.http_1_0;
    uint64_t sent = 0;
    for (;;) {
      Result<size_t> n = Error(ErrorCode::kInternal, "unset");
      try {
        n = res.body_stream(buf.get(), kChunk);
      } catch (...) {
        return false;
      }
      if (!n) return false;
      if (*n == 0) break;
      sent += *n;
      if (res.stream_length && sent > *res.stream_length) return false;
      if (chunked && !send_all(fd, fmt::format("{:x}\r\n", *n))) return false;
      if (!send_all(fd, std::string_view(buf.get(), *n))) return false;
      if (chunked && !send_all(fd, "\r\n")) return false;
    }
    if (res.stream_length && sent != *res.stream_length) return false;
    return !chunked || send_all(fd, "0\r\n\r\n");
  }

  void serve(Ready r) {
    Conn& conn = *r.conn;
    set_nonblocking(conn.fd, false);
    set_io_timeout(conn.fd, options.io_timeout);
    SocketBody body(conn, r.req.content_length);
    Response res;
    try {
      handler(r.req, body, res);
    } catch (const std::exception& e) {
      res = plain(500, std::string("internal error: ") + e.what());
    } catch (...) {
      res = plain(500, "internal error");
    }
    const uint64_t body_read = r.req.content_length - body.remaining();
    bool keep = r.keep_alive && !res.close && !stopping &&
                conn.served + 1 < options.max_requests_per_connection;
    // What the handler left of the body is read and dropped if small; otherwise the connection
    // cannot carry another request.
    if (keep && body.remaining() > kMaxDrainBytes) keep = false;
    while (keep && body.remaining() > 0) {
      char sink[4096];
      auto n = body.read(sink, sizeof(sink));
      if (!n || *n == 0) keep = false;
    }
    // A streamed body of unknown length ends with the connection for an HTTP/1.0 client.
    if (res.body_stream && !res.stream_length && r.req.http_1_0) keep = false;
    std::string out = response_head(r.req, res, keep);
    bool sent = send_all(conn.fd, out);
    if (sent && r.req.method != "HEAD") {
      sent = res.body_stream ? send_stream(conn.fd, r.req, res) : send_all(conn.fd, res.body);
    }
    log(r.req, res, body_read, r.start);
    if (!sent) return;  // the connection closes with r.conn
    ++conn.served;
    set_nonblocking(conn.fd, true);
    if (!keep) {
      if (body.remaining() == 0) return;
      // Unread body: drain on the watching thread so the client reads the answer.
      ::shutdown(conn.fd, SHUT_WR);
      conn.lingering = true;
      conn.buf.clear();
      conn.deadline = Clock::now() + kLinger;
    }
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      returned.push_back(std::move(r.conn));
    }
    wake();
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
  wait();
}

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Gate gate, Handler handler,
                                              Logger logger) {
  if (options.threads == 0) {
    return make_error(ErrorCode::kInvalidArgument, "the server needs at least one thread");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->gate = std::move(gate);
  impl->handler = std::move(handler);
  impl->logger = std::move(logger);
  const ServerOptions& o = impl->options;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(o.port);
  if (int rc = ::getaddrinfo(o.host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    return make_error(ErrorCode::kInvalidArgument, "cannot listen on {}: {}", o.host,
                      ::gai_strerror(rc));
  }
  for (addrinfo* a = found; a != nullptr && impl->listen_fd < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      impl->listen_fd = fd;
    } else {
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (impl->listen_fd < 0) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot listen on {}:{} (is the address this machine's, and the port free?)",
                      o.host, o.port);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  impl->port = bound.ss_family == AF_INET6
                   ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                   : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) {
    return make_error(ErrorCode::kUnavailable, "cannot create an eventfd: {}",
                      std::strerror(errno));
  }

  Impl* raw = impl.get();
  for (unsigned i = 0; i < o.threads; ++i) raw->workers.emplace_back([raw] { raw->work(); });
  raw->watcher = std::thread([raw] {
    raw->watch();
    raw->stopped = true;
  });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

int Server::port() const { return impl_->port; }

void Server::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->wake();
}

bool Server::running() const { return !impl_->stopped; }

void Server::wait() {
  std::lock_guard lock(impl_->join_mu);
  if (impl_->watcher.joinable()) impl_->watcher.join();
  for (auto& t : impl_->workers) {
    if (t.joinable()) t.join();
  }
  std::lock_guard queue(impl_->mu);
  impl_->ready.clear();
  impl_->returned.clear();
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

}  // namespace rtenv::store::http
