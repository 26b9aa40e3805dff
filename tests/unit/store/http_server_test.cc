// The blob server's HTTP layer against raw sockets: what it answers, and that clients which are
// slow on purpose (or send too much) cannot keep it from answering the others.

#include "store/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

namespace rtenv::store::http {
namespace {

using namespace std::chrono_literals;

/// A client connection from a chosen loopback address, with a receive timeout so a test that
/// fails does not hang.
class RawClient {
 public:
  RawClient(int port, const char* from = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { ::close(fd_); }

  bool connected() const { return connected_; }
  bool send(std::string_view data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  /// One response: its status line and body (read by its Content-Length); "" if the server
  /// closed the connection first.
  std::pair<std::string, std::string> response() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return {};
    }
    std::string head = buf_.substr(0, end);
    size_t length = 0;
    if (size_t p = head.find("Content-Length: "); p != std::string::npos) {
      length = std::stoul(head.substr(p + 16));
    }
    while (buf_.size() < end + 4 + length) {
      if (!fill()) return {};
    }
    std::string body = buf_.substr(end + 4, length);
    buf_.erase(0, end + 4 + length);
    return {head.substr(0, head.find("\r\n")), body};
  }

  /// True once the server has closed the connection (reads EOF or a reset).
  bool closed_by_server() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  bool fill() {
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  std::string buf_;
};

struct Running {
  std::unique_ptr<Server> server;
  std::atomic<int> handled{0};
};

/// A server whose handler answers "<method> <path> <body size>", and whose gate refuses a
/// request without "Authorization: yes".
std::unique_ptr<Running> start(ServerOptions options) {
  auto r = std::make_unique<Running>();
  Running* raw = r.get();
  auto server = Server::start(
      options,
      [](const Request& req) -> std::optional<Response> {
        if (req.header("authorization") == "yes") return std::nullopt;
        Response res;
        res.status = 401;
        res.body = "no";
        return res;
      },
      [raw](const Request& req, Body& body, Response& res) {
        ++raw->handled;
        auto data = body.read_all(1 << 20);
        if (!data) {
          res.status = 413;
          return;
        }
        res.body = req.method + " " + req.path + " " + std::to_string(data->size());
      },
      nullptr);
  EXPECT_TRUE(server.ok()) << server.error().message();
  r->server = std::move(server).value();
  return r;
}

std::string request(std::string_view method, std::string_view path, std::string_view body = "") {
  return std::string(method) + " " + std::string(path) +
         " HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

TEST(ParseRequestHeadTest, ParsesARequestAndRefusesWhatIsNotOne) {
  auto parsed = parse_request_head(
      "PUT /v1/records/a%2Fb.json?x=1 HTTP/1.1\r\nContent-Length:  12 \r\nX-Y: z");
  auto* head = std::get_if<ParsedHead>(&parsed);
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->request.method, "PUT");
  EXPECT_EQ(head->request.path, "/v1/records/a/b.json");
  EXPECT_EQ(head->request.query, "x=1");
  EXPECT_EQ(head->request.content_length, 12u);
  EXPECT_EQ(head->request.header("x-y"), "z");
  EXPECT_TRUE(head->keep_alive);
  auto http10 = parse_request_head("GET / HTTP/1.0");
  ASSERT_TRUE(std::holds_alternative<ParsedHead>(http10));
  EXPECT_FALSE(std::get<ParsedHead>(http10).keep_alive);

  for (auto [bad, status] : std::vector<std::pair<std::string, int>>{
           {"", 400},
           {"GET /a%2 HTTP/1.1", 400},
           {"GET a HTTP/1.1", 400},
           {"GET / HTTP/2", 505},
           {"GET /  HTTP/1.1", 400},
           {"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400},
           {"PUT / HTTP/1.1\r\nContent-Length: -1", 400},
           {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked", 501},
           {"GET / HTTP/1.1\r\nno colon", 400},
       }) {
    auto refused = parse_request_head(bad);
    auto* res = std::get_if<Response>(&refused);
    ASSERT_NE(res, nullptr) << bad;
    EXPECT_EQ(res->status, status) << bad;
    EXPECT_TRUE(res->close) << bad;
  }
}

TEST(ListenAddressTest, HostAndPortOrWhyNot) {
  auto a = parse_listen_address("127.0.0.1:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, std::make_pair(std::string("127.0.0.1"), 0));
  EXPECT_EQ(*parse_listen_address("[::1]:7878"), std::make_pair(std::string("::1"), 7878));
  for (const char* bad : {"127.0.0.1", ":80", "h:", "h:65536", "h:x", "::1:80"}) {
    EXPECT_EQ(parse_listen_address(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
}

TEST(HttpServerTest, AnswersRequestsOneAfterAnotherOnOneConnection) {
  auto s = start({});
  RawClient c(s->server->port());
  ASSERT_TRUE(c.connected());
  // Two requests in one write (pipelined), then a third after the answers.
  ASSERT_TRUE(c.send(request("PUT", "/a%20b", "12345") + request("GET", "/c")));
  EXPECT_EQ(c.response(),
            std::make_pair(std::string("HTTP/1.1 200 OK"), std::string("PUT /a b 5")));
  EXPECT_EQ(c.response().second, "GET /c 0");
  ASSERT_TRUE(c.send(request("POST", "/d", "xy")));
  EXPECT_EQ(c.response().second, "POST /d 2");
  EXPECT_EQ(s->handled, 3);
}

TEST(HttpServerTest, TheGateRefusesBeforeTheBodyTravels) {
  auto s = start({});
  RawClient c(s->server->port());
  // A gigabyte announced, nothing of it sent: the answer comes at once.
  ASSERT_TRUE(c.send("PUT /x HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n"));
  auto [status, body] = c.response();
  EXPECT_EQ(status, "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(body, "no");
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(s->handled, 0);
}

TEST(HttpServerTest, MalformedHeadsAreRefusedAndTheServerGoesOn) {
  ServerOptions o;
  o.max_head_bytes = 1024;
  auto s = start(o);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GARBAGE\r\n\r\n", "400"},
      {"GET x HTTP/1.1\r\n\r\n", "400"},
      {"GET / HTTP/2.0\r\n\r\n", "505"},
      {"GET /%zz HTTP/1.1\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nno colon\r\n\r\n", "400"},
      {"PUT / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", "400"},
      {"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400"},
      {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "501"},
      {"GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", "431"},
      {"GET / HTTP/1.1\r\nX: " + std::string(2000, 'a'), "431"},  // no end in sight
  };
  for (const auto& [head, code] : cases) {
    RawClient c(s->server->port());
    ASSERT_TRUE(c.send(head));
    EXPECT_EQ(c.response().first.substr(9, 3), code) << head.substr(0, 60);
  }
  EXPECT_EQ(s->handled, 0);
  RawClient ok(s->server->port());
  ASSERT_TRUE(ok.send(request("GET", "/fine")));
  EXPECT_EQ(ok.response().second, "GET /fine 0");
}

TEST(HttpServerTest, AHeadThatTakesTooLongIsAnswered408AndClosed) {
  ServerOptions o;
  o.head_timeout = 300ms;
  auto s = start(o);
  RawClient slow(s->server->port());
  ASSERT_TRUE(slow.send("GET / HTTP/1.1\r\n"));
  EXPECT_EQ(slow.response().first, "HTTP/1.1 408 Request Timeout");
  EXPECT_TRUE(slow.closed_by_server());
  RawClient silent(s->server->port());  // connects and sends nothing: closed without a word
  EXPECT_TRUE(silent.closed_by_server());
}

// Slow-loris: many connections that send a head a line at a time and never finish. They hold
// no thread, so a server with two handler threads keeps answering a client that asks properly,
// from another address or from the same one.
TEST(HttpServerTest, ClientsSendingHeadsSlowlyDoNotStarveTheOthers) {
  ServerOptions o;
  o.threads = 2;
  o.max_waiting_per_peer = 16;
  auto s = start(o);
  const int port = s->server->port();
  for (const char* attacker : {"127.0.0.2", "127.0.0.1"}) {
    std::vector<std::unique_ptr<RawClient>> slow;
    for (int i = 0; i < 40; ++i) {
      slow.push_back(std::make_unique<RawClient>(port, attacker));
      ASSERT_TRUE(slow.back()->send("GET / HTTP/1.1\r\nX-A: 1\r\n"));
    }
    for (int round = 0; round < 3; ++round) {
      for (auto& c : slow) c->send("X-B: 2\r\n");  // keeps them sending, never finishing
      RawClient good(port, "127.0.0.1");
      ASSERT_TRUE(good.connected());
      ASSERT_TRUE(good.send(request("PUT", "/ok", "abc")));
      EXPECT_EQ(good.response().second, "PUT /ok 3") << attacker << " round " << round;
    }
    // The cap per address: the oldest of the 40 was closed to make room.
    EXPECT_TRUE(slow.front()->closed_by_server()) << attacker;
  }
  EXPECT_EQ(s->handled, 6);
}

TEST(HttpServerTest, StopEndsEveryThreadWhileClientsWait) {
  auto s = start({});
  RawClient idle(s->server->port());
  ASSERT_TRUE(idle.send("GET / HTTP/1.1\r\n"));
  s->server->stop();
  s->server->wait();
  EXPECT_FALSE(s->server->running());
  EXPECT_TRUE(idle.closed_by_server());
}

}  // namespace
}  // namespace rtenv::store::http
