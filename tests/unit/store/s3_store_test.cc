#include "store/s3_store.h"
#include "record_contract.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <curl/curl.h>
#include <gtest/gtest.h>

#include "store/blob_codec.h"
#include "testing/noise.h"
#include "testing/temp_dir.h"
#include "util/fs.h"
#include "util/parallel.h"
#include "util/process.h"

extern char** environ;

namespace rtenv::store {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Helpers: raw signed requests (independent of S3Store), a moto_server, a scripted fake server.

struct RawAnswer {
  long status = 0;  ///< 0: no answer (connection failed)
  std::string body;
  std::string headers;
};

struct RawKey {
  std::string id = "test", secret = "test";
};

size_t append_to(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// One request signed with libcurl's SigV4 for `service`, or unsigned when `key` is null.
RawAnswer raw_request(const std::string& method, const std::string& url, std::string_view body,
                      const RawKey* key, const char* service = "s3",
                      const std::string& content_type = "");

// A request signed with the test's default key.
RawAnswer signed_request(const std::string& method, const std::string& url,
                         std::string_view body = {}) {
  static const RawKey key;
  return raw_request(method, url, body, &key);
}

RawAnswer raw_request(const std::string& method, const std::string& url, std::string_view body,
                      const RawKey* key, const char* service, const std::string& content_type) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)initialized;
  RawAnswer out;
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  std::string sha = "x-amz-content-sha256: " + Digest::of(body).hex();
  headers = curl_slist_append(headers, sha.c_str());
  // Without a type, libcurl would call the body a form, and the server would parse it as one.
  std::string type =
      "Content-Type: " + (content_type.empty() ? "application/octet-stream" : content_type);
  if (!body.empty()) headers = curl_slist_append(headers, type.c_str());
  std::string sigv4 = fmt::format("aws:amz:us-east-1:{}", service);
  if (key) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, key->id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, key->secret.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append_to);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.headers);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  }
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return out;
}

std::string between(const std::string& text, const std::string& open, const std::string& close) {
  size_t a = text.find(open);
  if (a == std::string::npos) return "";
  a += open.size();
  size_t b = text.find(close, a);
  return b == std::string::npos ? "" : text.substr(a, b - a);
}

// A port nothing listens on right now (the kernel's pick for an ephemeral bind).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string python() {
  const char* p = std::getenv("PYTHON");
  return p && *p ? p : "python3";
}

// A moto_server (moto's S3, IAM and friends in one process) on 127.0.0.1, for one test suite.
class MotoServer {
 public:
  /// Starts one and waits until it answers; nullptr and `why` if it cannot.
  static std::unique_ptr<MotoServer> start(std::string* why) {
    ProcessSpec check;
    check.argv = {python(), "-c", "import moto.server"};
    check.timeout_ms = 60000;
    auto probe = run_process(check);
    if (!probe || !probe->success()) {
      *why = fmt::format(
          "moto's S3 server is not installed: `{} -c 'import moto.server'` failed ({}). Install "
          "it with scripts/setup.sh (pip install 'moto[server]').",
          python(),
          probe ? probe->describe() + ": " + probe->err.substr(0, 400) : probe.error().message());
      return nullptr;
    }
    for (int tries = 0; tries < 3; ++tries) {  // the free port may be taken before moto binds it
      std::unique_ptr<MotoServer> server(new MotoServer());
      if (server->launch(why)) return server;
    }
    return nullptr;
  }

  ~MotoServer() { stop(); }

  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int port() const { return port_; }

  /// Ends the server (TERM, then KILL) and waits for it. Idempotent.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + 10s;
    int status;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid_ = -1;
  }

 private:
  MotoServer() = default;

  bool launch(std::string* why) {
    port_ = free_port();
    std::string port = std::to_string(port_);
    fs::path log = log_dir_ / "moto.log";
    std::vector<std::string> args = {python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", port};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      *why = fmt::format("cannot start {} -m moto.server: {}", python(), std::strerror(rc));
      return false;
    }
    // Wait until it answers, with a deadline (importing moto takes a second or two).
    auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *why = fmt::format("moto_server exited before answering on port {}; its output:\n{}", port_,
                           testing::slurp(log));
        return false;
      }
      if (raw_request("GET", endpoint() + "/moto-api/", {}, nullptr).status > 0) return true;
      std::this_thread::sleep_for(50ms);
    }
    *why = fmt::format("moto_server did not answer on port {} within 60 s; its output:\n{}", port_,
                       testing::slurp(log));
    stop();
    return false;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  testing::TempDir log_dir_;
};

// A server on 127.0.0.1 that answers every request with the same status and body, counting them:
// for the answers moto cannot be made to give (5xx).
class ScriptedServer {
 public:
  ScriptedServer(int status, std::string body) : status_(status), body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int requests() const { return requests_.load(); }
  /// The head (request line and headers) of the last request.
  std::string last_request() const {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  void serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        last_ = request.substr(0, request.find("\r\n\r\n"));
      }
      ++requests_;
      std::string answer = fmt::format(
          "HTTP/1.1 {} Scripted\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n"
          "Connection: close\r\n\r\n",
          status_, body_.size());
      if (!request.starts_with("HEAD ")) answer += body_;
      (void)!::write(c, answer.data(), answer.size());
      ::close(c);
    }
  }

  int status_;
  std::string body_;
  int fd_ = -1, port_ = 0;
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::string last_;
  std::thread thread_;
};

using testing::noise;

std::string python_source(size_t lines) {
  std::string out;
  for (size_t i = 0; i < lines; ++i) out += fmt::format("def f{}(x):\n    return x + {}\n", i, i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Settings and names: no server needed.

S3Settings::Lookup lookup(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(S3SettingsTest, EnvironmentVariablesComeFirst) {
  auto s = S3Settings::from_environment(lookup({
      {"AWS_ACCESS_KEY_ID", "AKIDENV"},
      {"AWS_SECRET_ACCESS_KEY", "secret-env"},
      {"AWS_SESSION_TOKEN", "token-env"},
      {"AWS_REGION", "eu-north-1"},
      {"AWS_DEFAULT_REGION", "us-west-2"},
      {"AWS_ENDPOINT_URL", "http://generic:1"},
      {"AWS_ENDPOINT_URL_S3", "http://s3-specific:2"},
      {"HOME", "/nonexistent"},
  }));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->credentials.access_key_id, "AKIDENV");
  EXPECT_EQ(s->credentials.secret_access_key, "secret-env");
  EXPECT_EQ(s->credentials.session_token, "token-env");
  EXPECT_EQ(s->region, "eu-north-1");
  EXPECT_EQ(s->endpoint, "http://s3-specific:2");

  s = S3Settings::from_environment(lookup({{"AWS_ACCESS_KEY_ID", "a"},
                                           {"AWS_SECRET_ACCESS_KEY", "b"},
                                           {"AWS_DEFAULT_REGION", "us-west-2"},
                                           {"AWS_ENDPOINT_URL", "http://generic:1"},
                                           {"RTENV_S3_ENDPOINT", "http://ours:3"}}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->region, "us-west-2");
  // rtenv's own variable is the config's (config::Config::s3_endpoint), not read here.
  EXPECT_EQ(s->endpoint, "http://generic:1");

  s = S3Settings::from_environment(lookup(
      {{"AWS_ACCESS_KEY_ID", "a"}, {"AWS_SECRET_ACCESS_KEY", "b"}, {"HOME", "/nonexistent"}}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->region, "us-east-1");
  EXPECT_EQ(s->endpoint, "");
}

TEST(S3SettingsTest, ProfilesFromTheAwsFiles) {
  testing::TempDir home;
  home.write(".aws/credentials",
             "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n"
             "aws_secret_access_key = secret-default\n\n"
             "[ci]\naws_access_key_id=AKIDCI\naws_secret_access_key= secret/ci+x \n"
             "aws_session_token = tok\n");
  home.write(".aws/config",
             "[default]\nregion = ap-south-1\n"
             "[profile ci]\ns3 =\n  region = nested-not-this\nregion = eu-west-3\n"
             "[profile cfgonly]\nregion = ca-central-1\naws_access_key_id = AKIDCFG\n"
             "aws_secret_access_key = secret-cfg\n");
  auto s = S3Settings::from_environment(lookup({{"HOME", home.path().string()}}));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->credentials.access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(s->credentials.secret_access_key, "secret-default");
  EXPECT_EQ(s->credentials.session_token, "");
  EXPECT_EQ(s->region, "ap-south-1");

  s = S3Settings::from_environment(lookup({{"HOME", home.path().string()}, {"AWS_PROFILE", "ci"}}));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->credentials.access_key_id, "AKIDCI");
  EXPECT_EQ(s->credentials.secret_access_key, "secret/ci+x");
  EXPECT_EQ(s->credentials.session_token, "tok");
  EXPECT_EQ(s->region, "eu-west-3");

  // Credentials in the config file; files named by variables rather than found in HOME.
  home.write("elsewhere/config",
             "[profile cfgonly]\nregion = ca-central-1\n"
             "aws_access_key_id = AKIDCFG\naws_secret_access_key = s\n");
  s = S3Settings::from_environment(
      lookup({{"AWS_PROFILE", "cfgonly"},
              {"AWS_CONFIG_FILE", (home / "elsewhere/config").string()},
              {"AWS_SHARED_CREDENTIALS_FILE", (home / "elsewhere/none").string()}}));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->credentials.access_key_id, "AKIDCFG");
  EXPECT_EQ(s->region, "ca-central-1");
}

TEST(S3SettingsTest, MissingCredentialsSayWhereTheyWereLookedFor) {
  testing::TempDir home;
  home.write(".aws/credentials", "[other]\naws_access_key_id = x\naws_secret_access_key = y\n");
  auto s = S3Settings::from_environment(lookup({{"HOME", home.path().string()}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  const std::string& m = s.error().message();
  for (std::string part : {std::string("AWS_ACCESS_KEY_ID"), std::string("AWS_SECRET_ACCESS_KEY"),
                           std::string("AWS_PROFILE"), std::string("\"default\""),
                           (home / ".aws/credentials").string(), (home / ".aws/config").string()}) {
    EXPECT_NE(m.find(part), std::string::npos) << "missing " << part << " in: " << m;
  }

  s = S3Settings::from_environment(lookup({{"AWS_ACCESS_KEY_ID", "only-the-id"}}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message().find("AWS_SECRET_ACCESS_KEY is not"), std::string::npos)
      << s.error().message();
}

S3Settings test_settings(std::string endpoint = "") {
  S3Settings s;
  s.endpoint = std::move(endpoint);
  s.credentials = {"test", "test", ""};
  return s;
}

TEST(S3StoreNamesTest, UrlsKeysAndAddressing) {
  Digest d = Digest::of("x");
  std::string hex = d.hex();
  auto s = S3Store::open("s3://my-bucket//team/a/", test_settings("http://127.0.0.1:9/"));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ((*s)->url(), "s3://my-bucket/team/a");
  EXPECT_EQ((*s)->object_key(d), "team/a/" + hex.substr(0, 2) + "/" + hex);
  EXPECT_EQ((*s)->object_url(d),
            "http://127.0.0.1:9/my-bucket/team/a/" + hex.substr(0, 2) + "/" + hex);

  auto aws = test_settings();
  aws.region = "eu-west-1";
  s = S3Store::open("s3://my-bucket", aws);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->url(), "s3://my-bucket");
  EXPECT_EQ((*s)->object_url(d),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/" + hex.substr(0, 2) + "/" + hex);
  s = S3Store::open("s3://my.dotted.bucket/p q", aws);  // path-style; the space is encoded
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->object_url(d), "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/p%20q/" +
                                     hex.substr(0, 2) + "/" + hex);

  for (const char* bad : {"s3://", "s3://ab", "s3://bad bucket/x", "s3:/x", "file:///tmp",
                          "s3://bucket/a/../b", "s3://bucket/./b"}) {
    auto r = S3Store::open(bad, test_settings());
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  auto no_scheme = S3Store::open("s3://bucket", test_settings("127.0.0.1:9000"));
  ASSERT_FALSE(no_scheme.ok());
  EXPECT_NE(no_scheme.error().message().find("http://"), std::string::npos);
}

TEST(S3StoreNamesTest, OpenStoreAnyDispatchesOnTheScheme) {
  testing::TempDir tmp;
  auto local = open_store_any("file://" + (tmp / "s").string());
  ASSERT_TRUE(local.ok()) << local.error().message();
  EXPECT_EQ((*local)->url(), "file://" + (tmp / "s").string());

  ::setenv("AWS_ACCESS_KEY_ID", "id", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  auto s3 = open_store_any("s3://bucket/prefix/");
  ASSERT_TRUE(s3.ok()) << s3.error().message();
  EXPECT_EQ((*s3)->url(), "s3://bucket/prefix");
  EXPECT_EQ(open_store_any("gs://bucket").error().code(), ErrorCode::kInvalidArgument);
}

TEST(S3StoreNamesTest, ObjectUrls) {
  auto o = S3ObjectUrl::parse("s3://bucket/wheels/x-1.0-py3-none-any.whl");
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->bucket, "bucket");
  EXPECT_EQ(o->key, "wheels/x-1.0-py3-none-any.whl");
  for (const char* bad : {"s3://bucket", "s3://bucket/", "s3:///key", "https://h/x.whl", "s3:/"}) {
    auto r = S3ObjectUrl::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(S3StoreNamesTest, SettingsForOptionsOverTheEnvironment) {
  ::setenv("AWS_ACCESS_KEY_ID", "id", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  ::setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1", 1);
  auto plain = s3_settings_for({});
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ(plain->endpoint, "http://127.0.0.1:1");
  StoreOptions options;
  options.s3_endpoint = "http://127.0.0.1:2";
  options.ca_bundle = "/etc/ca.pem";
  auto given = s3_settings_for(options);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->endpoint, "http://127.0.0.1:2");
  EXPECT_EQ(given->ca_bundle, "/etc/ca.pem");
  EXPECT_EQ(given->credentials.access_key_id, "id");
  ::unsetenv("AWS_ENDPOINT_URL_S3");
}

// ---------------------------------------------------------------------------------------------
// Against moto_server.

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = MotoServer::start(&start_error_).release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "cannot run the S3 store tests: " << start_error_;
    for (const char* v :
         {"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}) {
      ::unsetenv(v);
    }
    ::setenv("AWS_ACCESS_KEY_ID", "test", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
    ::setenv("AWS_REGION", "us-east-1", 1);
    ::setenv("AWS_ENDPOINT_URL_S3", server_->endpoint().c_str(), 1);
    static int buckets = 0;
    // Unique per process too: tests run in parallel processes, each with its own server, but a
    // port picked by two of them at once could make two share one.
    bucket_ = fmt::format("rtenv-test-{}-{}", ::getpid(), ++buckets);
    create_bucket(bucket_);
    auto store = S3Store::open("s3://" + bucket_ + "/blobs");
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(store).value();
  }

  static void create_bucket(const std::string& bucket, const RawKey& key = RawKey()) {
    auto r = raw_request("PUT", server_->endpoint() + "/" + bucket, {}, &key);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  // Replaces a blob's object with `bytes`, behind the store's back.
  void overwrite(const Digest& d, std::string_view bytes) {
    RawKey key;
    auto r = raw_request("PUT", store_->object_url(d), bytes, &key);
    ASSERT_EQ(r.status, 200) << r.body;
  }

  std::unique_ptr<S3Store> open_with(const std::function<void(S3Settings&)>& change,
                                     const std::string& url = "") {
    auto settings = S3Settings::from_environment();
    EXPECT_TRUE(settings.ok());
    change(*settings);
    auto s = S3Store::open(url.empty() ? store_->url() : url, *settings);
    EXPECT_TRUE(s.ok()) << s.error().message();
    return std::move(s).value();
  }

  static MotoServer* server_;
  static std::string start_error_;
  std::string bucket_;
  std::unique_ptr<S3Store> store_;
};

MotoServer* S3StoreTest::server_ = nullptr;
std::string S3StoreTest::start_error_;

TEST_F(S3StoreTest, WritesWhoseContentDoesNotMatchTheirDigestAreRefused) {
  Digest claimed = Digest::of("what was hashed");
  auto put = store_->put(claimed, "something else");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code(), ErrorCode::kCorrupt);
  testing::TempDir dir;
  auto file = dir.write("changed.bin", "changed since it was hashed");
  auto put_file = store_->put_file(claimed, file);
  ASSERT_FALSE(put_file.ok());
  EXPECT_EQ(put_file.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(put_file.error().message().find(file.string()), std::string::npos);
  EXPECT_TRUE(store_->missing({claimed})->at(0)) << "nothing may be stored under a wrong name";
}

TEST_F(S3StoreTest, RoundTripOfSmallAndCompressibleBlobs) {
  std::string small = "hello";
  std::string text = python_source(5000);
  std::string random = noise(100000, 1);
  std::vector<Digest> ds = {Digest::of(small), Digest::of(text), Digest::of(random),
                            Digest::of("")};
  ASSERT_TRUE(store_->put(ds[0], small).ok());
  auto put = store_->put(ds[1], text);
  ASSERT_TRUE(put.ok()) << put.error().message();
  ASSERT_TRUE(store_->put(ds[2], random).ok());
  ASSERT_TRUE(store_->put(ds[3], "").ok());
  auto got = store_->get(ds[1]);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, text);
  EXPECT_EQ(*store_->get(ds[0]), small);
  EXPECT_EQ(*store_->get(ds[2]), random);
  EXPECT_EQ(*store_->get(ds[3]), "");

  // Stored as blob_codec encodes: the text compressed, the noise raw with its tag byte.
  auto raw = signed_request("GET", store_->object_url(ds[1]));
  EXPECT_EQ(raw.status, 200);
  EXPECT_TRUE(raw.body == encode_blob(text));
  EXPECT_LT(raw.body.size(), text.size() / 4);
  std::map<std::string, uint64_t> sizes;
  ASSERT_TRUE(store_->list([&](const Digest& d, uint64_t n) { sizes[d.hex()] = n; }).ok());
  EXPECT_EQ(sizes.size(), 4u);
  EXPECT_EQ(sizes[ds[2].hex()], random.size() + 1);
  EXPECT_EQ(sizes[ds[1].hex()], raw.body.size());

  testing::TempDir tmp;
  auto src = tmp.write("src.py", text);
  Digest other = Digest::of(text + "#");
  auto written = tmp.write("src2.py", text + "#");
  ASSERT_TRUE(store_->put_file(other, written).ok());
  ASSERT_TRUE(store_->put_file(ds[1], src).ok());
  EXPECT_EQ(*store_->get(other), text + "#");
}

TEST_F(S3StoreTest, MissingOnAMix) {
  EXPECT_TRUE(store_->missing({})->empty());
  std::vector<Digest> ds;
  std::vector<bool> expected;
  for (int i = 0; i < 40; ++i) {
    std::string data = fmt::format("blob {}", i);
    ds.push_back(Digest::of(data));
    expected.push_back(i % 3 != 0);
    if (i % 3 == 0) {
      ASSERT_TRUE(store_->put(ds.back(), data).ok());
    }
  }
  auto m = store_->missing(ds);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(*m, expected);

  // A store under another prefix of the same bucket sees none of them.
  auto other = S3Store::open("s3://" + bucket_ + "/elsewhere");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*(*other)->missing({ds[0], ds[3]}), (std::vector<bool>{true, true}));
}

TEST_F(S3StoreTest, PutOfAPresentBlobUploadsNothing) {
  std::string data = python_source(100);
  Digest d = Digest::of(data);
  ASSERT_TRUE(store_->put(d, data).ok());
  // Put-if-absent: with the object replaced behind its back, a second put must not upload (the
  // marker stays), which a get then reports as corrupt.
  overwrite(d, "marker");
  ASSERT_TRUE(store_->put(d, data).ok());
  testing::TempDir tmp;
  ASSERT_TRUE(store_->put_file(d, tmp.write("f", data)).ok());
  EXPECT_EQ(signed_request("GET", store_->object_url(d)).body, "marker");
  EXPECT_EQ(store_->get(d).error().code(), ErrorCode::kCorrupt);
}

TEST_F(S3StoreTest, ABlobBiggerThanExpectedIsRefusedAsItArrives) {
  std::string data(100000, 'q');
  Digest d = Digest::of(data);
  ASSERT_TRUE(store_->put(d, data).ok());
  testing::TempDir tmp;
  auto capped = store_->get_to_file(d, tmp / "capped", 0644, data.size() - 1);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code(), ErrorCode::kTooLarge) << capped.error().message();
  EXPECT_FALSE(fs::exists(tmp / "capped"));
  ASSERT_TRUE(store_->get_to_file(d, tmp / "exact", 0644, data.size()).ok());
}

TEST_F(S3StoreTest, AbsentBlobIsNotFound) {
  Digest d = Digest::of("never stored");
  auto got = store_->get(d);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(got.error().message().find(d.hex()), std::string::npos) << got.error().message();
  EXPECT_NE(got.error().message().find(store_->url()), std::string::npos);
  testing::TempDir tmp;
  auto to_file = store_->get_to_file(d, tmp / "out", 0644);
  ASSERT_FALSE(to_file.ok());
  EXPECT_EQ(to_file.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(tmp / "out"));
  EXPECT_FALSE(*store_->remove(d));

  auto no_bucket = S3Store::open("s3://no-such-bucket-here/p");
  ASSERT_TRUE(no_bucket.ok());
  auto r = (*no_bucket)->get(d);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("does not exist"), std::string::npos) << r.error().message();
  auto p = (*no_bucket)->put(d, "never stored");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("NoSuchBucket"), std::string::npos) << p.error().message();
}

TEST_F(S3StoreTest, CorruptObjectsAreDetected) {
  std::string data = python_source(200);
  Digest d = Digest::of(data);
  ASSERT_TRUE(store_->put(d, data).ok());
  testing::TempDir tmp;

  // Bytes that decode (a raw tag) to other content; bytes that do not decode at all.
  for (std::string bad :
       {encode_blob("other content"), std::string("\x01not zstd", 9), std::string()}) {
    overwrite(d, bad);
    auto got = store_->get(d);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(got.error().message().find(d.hex()), std::string::npos) << got.error().message();
    if (!bad.empty() && bad[0] == 0) {
      EXPECT_NE(got.error().message().find("hashes to " + Digest::of("other content").hex()),
                std::string::npos)
          << got.error().message();
    }
    auto to_file = store_->get_to_file(d, tmp / "dest", 0644);
    ASSERT_FALSE(to_file.ok());
    EXPECT_EQ(to_file.error().code(), ErrorCode::kCorrupt);
    EXPECT_FALSE(fs::exists(tmp / "dest")) << "a corrupt blob must leave no file behind";
  }
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "no temp files either";
}

TEST_F(S3StoreTest, GetToFileWritesTheModeAndNeverReplaces) {
  std::string script = "#!/bin/sh\necho hi\n" + python_source(50);
  Digest d = Digest::of(script);
  ASSERT_TRUE(store_->put(d, script).ok());
  testing::TempDir tmp;
  ::umask(022);
  auto r = store_->get_to_file(d, tmp / "run.sh", 0755);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(testing::slurp(tmp / "run.sh"), script);
  EXPECT_EQ(fs::status(tmp / "run.sh").permissions(), static_cast<fs::perms>(0755));
  ASSERT_TRUE(store_->get_to_file(d, tmp / "ro", 0400).ok());
  EXPECT_EQ(fs::status(tmp / "ro").permissions(), static_cast<fs::perms>(0400));

  tmp.write("taken", "mine");
  auto clash = store_->get_to_file(d, tmp / "taken", 0644);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(testing::slurp(tmp / "taken"), "mine");
  size_t entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 3u) << "no temp file left behind";
}

TEST_F(S3StoreTest, GetObjectToFileStreamsAnyObjectOfTheBucket) {
  // An object that is not a blob (a wheel someone uploaded), larger than one chunk of libcurl's.
  std::string data = noise(3 << 20, 7);
  std::string key = "wheels/demo-1.0-py3-none-any.whl";
  RawKey raw;
  ASSERT_EQ(raw_request("PUT", server_->endpoint() + "/" + bucket_ + "/" + key, data, &raw).status,
            200);
  auto bucket = S3Store::open("s3://" + bucket_);
  ASSERT_TRUE(bucket.ok()) << bucket.error().message();
  testing::TempDir tmp;
  auto size = (*bucket)->get_object_to_file(key, tmp / "w.whl", data.size());
  ASSERT_TRUE(size.ok()) << size.error().message();
  EXPECT_EQ(*size, data.size());
  EXPECT_EQ(*read_file(tmp / "w.whl"), data);

  // Over the limit: refused while streaming, nothing left.
  auto big = (*bucket)->get_object_to_file(key, tmp / "big.whl", data.size() - 1);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kTooLarge);
  EXPECT_NE(big.error().message().find("s3://" + bucket_ + "/" + key), std::string::npos)
      << big.error().message();
  EXPECT_FALSE(fs::exists(tmp / "big.whl"));

  auto absent = (*bucket)->get_object_to_file("wheels/none.whl", tmp / "none.whl", 100);
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(absent.error().message(), "s3://" + bucket_ + "/wheels/none.whl: not found (HTTP 404)");
  EXPECT_FALSE(fs::exists(tmp / "none.whl"));

  auto no_bucket = std::move(S3Store::open("s3://no-such-bucket-here")).value();
  auto gone = no_bucket->get_object_to_file(key, tmp / "g.whl", 100);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(gone.error().message().find("does not exist"), std::string::npos)
      << gone.error().message();
}

TEST_F(S3StoreTest, RemoveAndList) {
  std::vector<Digest> ds;
  for (int i = 0; i < 3; ++i) {
    std::string data = fmt::format("listed {}", i);
    ds.push_back(Digest::of(data));
    ASSERT_TRUE(store_->put(ds.back(), data).ok());
  }
  // Strangers under the prefix and a blob under another prefix are not listed.
  RawKey key;
  std::string base = server_->endpoint() + "/" + bucket_;
  Digest stranger = Digest::of("stranger");
  raw_request("PUT", base + "/blobs/zz/not-a-blob", "x", &key);
  raw_request("PUT", base + "/blobs/" + stranger.hex().substr(0, 2) + "/" + stranger.hex() + ".tmp",
              "x", &key);
  raw_request("PUT", base + "/blobs/00/" + stranger.hex(), "x", &key);  // wrong directory
  raw_request("PUT", base + "/blobsies/" + stranger.hex().substr(0, 2) + "/" + stranger.hex(), "x",
              &key);
  raw_request("PUT", base + "/elsewhere/" + stranger.hex().substr(0, 2) + "/" + stranger.hex(), "x",
              &key);

  auto listed = [&] {
    std::set<std::string> out;
    auto r = store_->list([&](const Digest& d, uint64_t size) {
      out.insert(d.hex());
      EXPECT_EQ(size, 9u);  // tag byte + "listed N"
    });
    EXPECT_TRUE(r.ok()) << r.error().message();
    return out;
  };
  EXPECT_EQ(listed(), (std::set<std::string>{ds[0].hex(), ds[1].hex(), ds[2].hex()}));
  EXPECT_TRUE(*store_->remove(ds[1]));
  EXPECT_FALSE(*store_->remove(ds[1]));
  EXPECT_EQ(listed(), (std::set<std::string>{ds[0].hex(), ds[2].hex()}));
  EXPECT_EQ(*store_->missing(ds), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(store_->get(ds[1]).error().code(), ErrorCode::kNotFound);
}

TEST_F(S3StoreTest, Records) { testing::expect_record_contract(*store_); }

TEST_F(S3StoreTest, ConcurrentCallsAndAListingOfSeveralPages) {
  // 8 threads through one store; then a listing 7 keys a page, so that it takes 15 pages.
  constexpr size_t kBlobs = 100;
  auto data = [](size_t i) { return fmt::format("concurrent blob {}", i); };
  std::vector<Digest> ds;
  std::set<std::string> expected, listed;
  for (size_t i = 0; i < kBlobs; ++i) {
    ds.push_back(Digest::of(data(i)));
    expected.insert(ds.back().hex());
  }
  auto put = parallel_for(kBlobs, 8, [&](size_t i) { return store_->put(ds[i], data(i)); });
  ASSERT_TRUE(put.ok()) << put.error().message();
  std::atomic<int> bad{0};
  ASSERT_TRUE(parallel_for(kBlobs, 8, [&](size_t i) -> Result<void> {
                auto got = store_->get(ds[i]);
                if (!got.ok() || *got != data(i)) ++bad;
                return ok_result();
              }).ok());
  EXPECT_EQ(bad.load(), 0);
  auto m = store_->missing(ds);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(std::count(m->begin(), m->end(), true), 0);

  auto paged = open_with([](S3Settings& s) { s.list_page_size = 7; });
  size_t calls = 0;
  auto r = paged->list([&](const Digest& d, uint64_t) {
    listed.insert(d.hex());
    ++calls;
  });
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(listed, expected);
  EXPECT_EQ(calls, kBlobs) << "each blob once";
}

TEST_F(S3StoreTest, LargeBlobsGoUpInParts) {
  auto store = open_with([](S3Settings& s) {
    s.multipart_threshold = 6 << 20;
    s.part_size = 5 << 20;
  });
  std::string big = noise((12 << 20) + 12345, 7);  // incompressible: 3 parts of 5, 5 and 2 MiB
  Digest d = Digest::of(big);
  auto put = store->put(d, big);
  ASSERT_TRUE(put.ok()) << put.error().message();
  auto head = signed_request("HEAD", store->object_url(d));
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.headers.find("-3\""), std::string::npos)
      << "a multipart object's ETag ends in -<parts>:\n"
      << head.headers;
  auto got = store->get(d);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_TRUE(*got == big);
  testing::TempDir tmp;
  ASSERT_TRUE(store->get_to_file(d, tmp / "big", 0644).ok());
  EXPECT_EQ(fs::file_size(tmp / "big"), big.size());

  // Below the threshold: one PUT (a plain ETag).
  std::string small = noise(1 << 20, 8);
  ASSERT_TRUE(store->put(Digest::of(small), small).ok());
  head = signed_request("HEAD", store->object_url(Digest::of(small)));
  EXPECT_EQ(head.headers.find("-1\""), std::string::npos) << head.headers;
  EXPECT_EQ(*store->get(Digest::of(small)), small);
}

TEST_F(S3StoreTest, FilesAreStreamedBothWays) {
  auto store = open_with([](S3Settings& s) {
    s.multipart_threshold = 6 << 20;
    s.part_size = 5 << 20;
    s.parallel_parts = 2;
  });
  testing::TempDir tmp;
  std::string text;
  while (text.size() < (20u << 20))
    text += "text that compresses well " + std::to_string(text.size()) + "\n";
  struct Case {
    std::string data;
    const char* etag_end;  // "" for one PUT
  };
  std::vector<Case> cases = {
      {noise(3 << 20, 11), ""},             // one PUT read from the file
      {noise((16 << 20) + 3, 12), "-4\""},  // parts of 5, 5, 5 and 1 MiB
      {noise((10 << 20) - 1, 13), "-2\""},  // exactly two full parts with the tag byte
      {text, ""},                           // compresses to less than a part: one PUT
  };
  for (const Case& c : cases) {
    Digest d = Digest::of(c.data);
    fs::path file = tmp.write("upload", c.data);
    auto put = store->put_file(d, file);
    ASSERT_TRUE(put.ok()) << put.error().message();
    auto head = signed_request("HEAD", store->object_url(d));
    ASSERT_EQ(head.status, 200);
    if (*c.etag_end) {
      EXPECT_NE(head.headers.find(c.etag_end), std::string::npos) << head.headers;
    } else {
      EXPECT_EQ(head.headers.find("-1\""), std::string::npos) << head.headers;
    }
    fs::path dest = tmp / "download";
    auto got = store->get_to_file(d, dest, 0640);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*read_file(dest) == c.data);
    EXPECT_TRUE(*store->get(d) == c.data);
    fs::remove(dest);
    fs::remove(file);
  }
}

TEST_F(S3StoreTest, UploadsTogetherHoldNoMorePartsThanTheBudget) {
  constexpr uint64_t kPart = 5 << 20;
  auto store = open_with([](S3Settings& s) {
    s.multipart_threshold = 6 << 20;
    s.part_size = kPart;
    s.parallel_parts = 4;
    s.max_part_bytes_held = 2 * kPart + (1 << 20);  // two parts at a time, whatever the uploads
  });
  testing::TempDir tmp;
  std::vector<std::pair<Digest, fs::path>> files;
  for (int i = 0; i < 4; ++i) {
    std::string data = noise((16 << 20) + i, 20 + i);  // four parts each
    files.emplace_back(Digest::of(data), tmp.write("f" + std::to_string(i), data));
  }
  auto sent = parallel_for(files.size(), 4, [&](size_t i) -> Result<void> {
    return store->put_file(files[i].first, files[i].second);
  });
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  EXPECT_GE(store->peak_part_bytes_held(), kPart);
  EXPECT_LE(store->peak_part_bytes_held(), 2 * kPart);
  for (const auto& [d, file] : files) {
    fs::path back = tmp / ("back-" + d.hex());
    ASSERT_TRUE(store->get_to_file(d, back, 0644).ok());
    EXPECT_TRUE(*read_file(back) == *read_file(file));
  }
}

TEST_F(S3StoreTest, ACollectorReadsOnlyTheBlobsItWants) {
  auto starts_with_header = [](std::string_view head) { return head.starts_with("HEADER\n"); };
  // Bigger than the first ranged read, compressible and not: the rest is fetched only if wanted.
  std::string wanted_text = "HEADER\n";
  while (wanted_text.size() < (600u << 10))
    wanted_text += std::to_string(wanted_text.size()) + "\n";
  std::string wanted_noise = "HEADER\n" + noise(400 << 10, 41);
  std::string other = noise(400 << 10, 42);
  for (const auto* blob : {&wanted_text, &wanted_noise, &other}) {
    ASSERT_TRUE(store_->put(Digest::of(*blob), *blob).ok());
  }
  for (const auto* blob : {&wanted_text, &wanted_noise}) {
    auto got = store_->read_if(Digest::of(*blob), 16, starts_with_header, 1 << 20);
    ASSERT_TRUE(got.ok()) << got.error().message();
    ASSERT_TRUE(got->has_value());
    EXPECT_TRUE(**got == *blob);
  }
  auto not_wanted = store_->read_if(Digest::of(other), 16, starts_with_header, 1 << 20);
  ASSERT_TRUE(not_wanted.ok());
  EXPECT_FALSE(not_wanted->has_value());
  // Bigger than the caller takes, or absent: nothing.
  auto too_big = store_->read_if(Digest::of(wanted_text), 16, starts_with_header, 64 << 10);
  ASSERT_TRUE(too_big.ok()) << too_big.error().message();
  EXPECT_FALSE(too_big->has_value());
  auto absent = store_->read_if(Digest::of("absent"), 16, starts_with_header, 1 << 20);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  // A planted object that is not its digest's content is not read as one.
  overwrite(Digest::of(wanted_noise), std::string(1, '\0') + "HEADER\nforged");
  auto forged = store_->read_if(Digest::of(wanted_noise), 16, starts_with_header, 1 << 20);
  ASSERT_TRUE(forged.ok());
  EXPECT_FALSE(forged->has_value());
}

TEST_F(S3StoreTest, AStreamedFileThatIsNotItsDigestIsNotStored) {
  auto store = open_with([](S3Settings& s) {
    s.multipart_threshold = 6 << 20;
    s.part_size = 5 << 20;
  });
  testing::TempDir tmp;
  for (size_t size : {size_t{3} << 20, size_t{12} << 20}) {
    std::string data = noise(size, 14);
    fs::path file = tmp.write("upload", data);
    Digest claimed = Digest::of("hashed before the file changed " + std::to_string(size));
    auto put = store->put_file(claimed, file);
    ASSERT_FALSE(put.ok());
    EXPECT_EQ(put.error().code(), ErrorCode::kCorrupt) << put.error().message();
    EXPECT_TRUE(*store->missing({claimed}) == std::vector<bool>{true});
    fs::remove(file);
  }
}

// Turns moto's signature and permission checks on for its lifetime (moto skips them by default).
class MotoAuth {
 public:
  explicit MotoAuth(const std::string& endpoint) : endpoint_(endpoint) {
    on_ = raw_request("POST", endpoint_ + "/moto-api/reset-auth", "0", nullptr, "", "text/plain")
              .status == 200;
  }
  ~MotoAuth() {
    raw_request("POST", endpoint_ + "/moto-api/reset-auth", "inf", nullptr, "", "text/plain");
  }
  bool on() const { return on_; }

 private:
  std::string endpoint_;
  bool on_ = false;
};

TEST_F(S3StoreTest, SignaturesAreCheckedAndWrongCredentialsExplained) {
  // An IAM user allowed everything on S3, made while moto still checks nothing.
  RawKey any;
  std::string iam = server_->endpoint() + "/";
  auto call = [&](const std::string& form) {
    return raw_request("POST", iam, form + "&Version=2010-05-08", &any, "iam",
                       "application/x-www-form-urlencoded");
  };
  ASSERT_EQ(call("Action=CreateUser&UserName=rtenv").status, 200);
  char* policy = curl_easy_escape(
      nullptr,
      R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]})",
      0);
  ASSERT_EQ(call(fmt::format("Action=PutUserPolicy&UserName=rtenv&PolicyName=s3&PolicyDocument={}",
                             policy))
                .status,
            200);
  curl_free(policy);
  auto created = call("Action=CreateAccessKey&UserName=rtenv");
  ASSERT_EQ(created.status, 200) << created.body;
  RawKey key{between(created.body, "<AccessKeyId>", "</AccessKeyId>"),
             between(created.body, "<SecretAccessKey>", "</SecretAccessKey>")};
  ASSERT_FALSE(key.id.empty());
  create_bucket("rtenv-signed", key);

  MotoAuth auth(server_->endpoint());
  ASSERT_TRUE(auth.on());
  // The bucket's root: moto verifies a listing's signature against the query as it decoded it,
  // so a prefix (which has an encoded '/', as SigV4 wants) would fail with moto only.
  auto good = open_with(
      [&](S3Settings& s) {
        s.credentials = {key.id, key.secret, ""};
      },
      "s3://rtenv-signed");
  std::string data = python_source(300), small = "signed";
  Digest d = Digest::of(data), s = Digest::of(small);
  auto put = good->put(d, data);
  ASSERT_TRUE(put.ok()) << put.error().message();
  ASSERT_TRUE(good->put(s, small).ok());
  EXPECT_EQ(*good->missing({d, Digest::of("nope")}), (std::vector<bool>{false, true}));
  auto got = good->get(d);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, data);
  size_t listed = 0;
  auto list = good->list([&](const Digest&, uint64_t) { ++listed; });
  ASSERT_TRUE(list.ok()) << list.error().message();
  EXPECT_EQ(listed, 2u);
  EXPECT_TRUE(*good->remove(s));
  auto big = open_with(
      [&](S3Settings& st) {
        st.credentials = {key.id, key.secret, ""};
        st.multipart_threshold = 6 << 20;
        st.part_size = 5 << 20;
      },
      "s3://rtenv-signed");
  std::string large = noise(11 << 20, 3);
  auto mp = big->put(Digest::of(large), large);
  ASSERT_TRUE(mp.ok()) << mp.error().message();
  EXPECT_EQ(big->get(Digest::of(large))->size(), large.size());

  // A wrong secret, an unknown key: permanent errors that say what S3 said.
  auto wrong_secret = open_with(
      [&](S3Settings& st) {
        st.credentials = {key.id, "wrong", ""};
      },
      "s3://rtenv-signed");
  auto r = wrong_secret->get(d);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("SignatureDoesNotMatch"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("credentials"), std::string::npos);
  EXPECT_EQ(r.error().message().find("wrong"), std::string::npos) << "no secrets in errors";
  auto m = wrong_secret->missing({d});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(m.error().message().find("SignatureDoesNotMatch"), std::string::npos)
      << m.error().message();

  auto unknown = open_with([&](S3Settings&) {}, "s3://rtenv-signed");  // AWS_ACCESS_KEY_ID=test
  auto p = unknown->put(Digest::of("x"), "x");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message().find("InvalidAccessKeyId"), std::string::npos)
      << p.error().message();
}

TEST_F(S3StoreTest, ServerGoneIsUnavailableAfterRetries) {
  std::string why;
  auto own = MotoServer::start(&why);
  ASSERT_NE(own, nullptr) << why;
  RawKey key;
  ASSERT_EQ(raw_request("PUT", own->endpoint() + "/rtenv-gone", {}, &key).status, 200);
  auto store = open_with(
      [&](S3Settings& s) {
        s.endpoint = own->endpoint();
        s.max_attempts = 3;
        s.initial_backoff = 20ms;
        s.max_backoff = 100ms;
      },
      "s3://rtenv-gone/p");
  Digest d = Digest::of("here");
  ASSERT_TRUE(store->put(d, "here").ok());
  own->stop();

  auto start = Clock::now();
  auto got = store->get(d);
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kUnavailable) << got.error().message();
  EXPECT_TRUE(got.error().retryable());
  const std::string& m = got.error().message();
  EXPECT_NE(m.find(fmt::format("127.0.0.1:{}", own->port())), std::string::npos) << m;
  EXPECT_NE(m.find("gave up after 3 attempts"), std::string::npos) << m;
  EXPECT_LT(elapsed, 5s);
  EXPECT_GE(elapsed, 20ms) << "it waited between attempts";

  EXPECT_EQ(store->missing({d, Digest::of("x")}).error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store->put(Digest::of("x"), "x").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store->list([](const Digest&, uint64_t) {}).error().code(), ErrorCode::kUnavailable);
}

TEST(S3StoreRetryTest, ServerErrorsAreRetriedAndRefusalsAreNot) {
  auto settings = test_settings();
  settings.max_attempts = 4;
  settings.initial_backoff = 5ms;
  settings.max_backoff = 20ms;
  Digest d = Digest::of("x");
  {
    ScriptedServer slow(503,
                        "<Error><Code>SlowDown</Code><Message>Reduce your request rate."
                        "</Message></Error>");
    settings.endpoint = slow.endpoint();
    auto store = std::move(S3Store::open("s3://bucket/p", settings)).value();
    auto got = store->get(d);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(got.error().message().find("SlowDown: Reduce your request rate."), std::string::npos)
        << got.error().message();
    EXPECT_NE(got.error().message().find("gave up after 4 attempts"), std::string::npos);
    EXPECT_EQ(slow.requests(), 4);
  }
  {
    ScriptedServer denied(403,
                          "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                          "<Message>Access Denied</Message></Error>");
    settings.endpoint = denied.endpoint();
    auto store = std::move(S3Store::open("s3://bucket/p", settings)).value();
    auto got = store->get(d);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(got.error().message().find("AccessDenied: Access Denied"), std::string::npos)
        << got.error().message();
    EXPECT_EQ(denied.requests(), 1);
    // A HEAD's 403 has no body: the store asks again with a GET to say why.
    auto m = store->missing({d});
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message().find("AccessDenied"), std::string::npos) << m.error().message();
  }
}

TEST(S3StoreRetryTest, AnObjectGetIsRetriedAndLeavesNoFile) {
  auto settings = test_settings();
  settings.max_attempts = 3;
  settings.initial_backoff = 5ms;
  settings.max_backoff = 20ms;
  ScriptedServer busy(503, "<Error><Code>SlowDown</Code><Message>Later.</Message></Error>");
  settings.endpoint = busy.endpoint();
  auto bucket = std::move(S3Store::open("s3://bucket", settings)).value();
  testing::TempDir tmp;
  auto got = bucket->get_object_to_file("a/x.whl", tmp / "x.whl", 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(got.error().message().find("gave up after 3 attempts"), std::string::npos)
      << got.error().message();
  EXPECT_EQ(busy.requests(), 3);
  EXPECT_TRUE(busy.last_request().starts_with("GET /bucket/a/x.whl ")) << busy.last_request();
  EXPECT_FALSE(fs::exists(tmp / "x.whl"));
}

TEST(S3StoreRetryTest, APutIsOneConditionalRequest) {
  // 412: the object exists. The put succeeds without a HEAD first and without replacing it.
  ScriptedServer server(412, "<Error><Code>PreconditionFailed</Code></Error>");
  auto store = std::move(S3Store::open("s3://bucket/p", test_settings(server.endpoint()))).value();
  std::string data = "some blob";
  ASSERT_TRUE(store->put(Digest::of(data), data).ok());
  EXPECT_EQ(server.requests(), 1);
  std::string req = server.last_request();
  EXPECT_TRUE(req.starts_with("PUT /bucket/p/")) << req;
  EXPECT_NE(req.find("If-None-Match: *"), std::string::npos) << req;
}

TEST(S3StoreRetryTest, RequestsCarryTheSignatureAndTheSessionToken) {
  ScriptedServer server(404, "<Error><Code>NoSuchKey</Code></Error>");
  auto settings = test_settings(server.endpoint());
  settings.region = "eu-central-1";
  settings.credentials = {"AKIDEXAMPLE", "secret", "session-token-value"};
  auto store = std::move(S3Store::open("s3://bucket/p", settings)).value();
  Digest d = Digest::of("x");
  EXPECT_EQ(store->get(d).error().code(), ErrorCode::kNotFound);
  std::string req = server.last_request();
  EXPECT_TRUE(req.starts_with("GET /bucket/p/" + d.hex().substr(0, 2) + "/" + d.hex() + " "))
      << req;
  std::string lower_req = req;
  for (auto& c : lower_req) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(lower_req.find("x-amz-security-token: session-token-value"), std::string::npos) << req;
  EXPECT_NE(lower_req.find("x-amz-content-sha256: " + Digest::of("").hex()), std::string::npos)
      << req;
  EXPECT_NE(req.find("Credential=AKIDEXAMPLE/"), std::string::npos) << req;
  EXPECT_NE(req.find("/eu-central-1/s3/aws4_request"), std::string::npos) << req;
  std::string signed_headers = between(req, "SignedHeaders=", ",");
  EXPECT_NE(signed_headers.find("x-amz-security-token"), std::string::npos) << req;
  EXPECT_NE(signed_headers.find("x-amz-content-sha256"), std::string::npos) << req;
  EXPECT_EQ(req.find("secret"), std::string::npos) << "the secret never travels";
}

}  // namespace
}  // namespace rtenv::store
