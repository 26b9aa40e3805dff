// HttpStore against rtenv's own blob server (BlobServer), both in this process, on 127.0.0.1.

#include "store/http_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "record_contract.h"
#include "store/blob_codec.h"
#include "store/blob_server.h"
#include "store/curl_http.h"
#include "store/local_store.h"
#include "testing/noise.h"
#include "testing/temp_dir.h"
#include "util/fs.h"

namespace rtenv::store {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::noise;

RetryPolicy quick_retries() {
  RetryPolicy p;
  p.max_attempts = 3;
  p.initial_backoff = 20ms;
  p.max_backoff = 50ms;
  p.connect_timeout = 2000ms;
  return p;
}

class HttpStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { start_server(""); }

  void start_server(const std::string& token) {
    server_.reset();
    BlobServerOptions o;
    o.root = tmp_ / "served";
    o.port = 0;
    o.token = token;
    o.threads = 8;
    o.keep_alive_seconds = 1;  // stopping waits for idle connections
    auto s = BlobServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_ = std::move(s).value();
    ASSERT_GT(server_->port(), 0);
    auto local = LocalStore::open(o.root);
    ASSERT_TRUE(local.ok());
    local_ = std::move(local).value();
    store_ = open_client(token);
  }

  std::unique_ptr<HttpStore> open_client(const std::string& token) {
    HttpStoreSettings settings;
    settings.token = token;
    settings.retry = quick_retries();
    auto s = HttpStore::open(server_->url(), settings);
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // A request the client would never send, straight through the HTTP layer.
  HttpResponse raw(const std::string& method, const std::string& path, std::string_view body = {},
                   std::vector<std::string> headers = {}) {
    HttpRequest req;
    req.method = method;
    req.url = server_->url() + path;
    req.body = body;
    req.headers = std::move(headers);
    auto r = http_perform(req, quick_retries());
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(r).value() : HttpResponse{};
  }

  testing::TempDir tmp_;
  std::unique_ptr<BlobServer> server_;
  std::unique_ptr<LocalStore> local_;  ///< the server's directory, seen directly
  std::unique_ptr<HttpStore> store_;
};

TEST_F(HttpStoreTest, PutGetMissingRemoveListRoundTrip) {
  std::string small = "hello", text(100000, 'a');
  Digest a = Digest::of(small), b = Digest::of(text), absent = Digest::of("absent");
  EXPECT_EQ(*store_->missing({a, b, absent}), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(*store_->missing({}), std::vector<bool>{});

  ASSERT_TRUE(store_->put(a, small).ok());
  auto file = tmp_.write("src.txt", text);
  ASSERT_TRUE(store_->put_file(b, file).ok());
  ASSERT_TRUE(store_->put(a, small).ok()) << "put of a present blob is fine";
  EXPECT_EQ(*store_->missing({a, absent, b, a}), (std::vector<bool>{false, true, false, false}));

  EXPECT_EQ(*store_->get(a), small);
  EXPECT_EQ(*store_->get(b), text);
  // The server keeps blobs raw: its directory is a LocalStore anyone can read.
  EXPECT_EQ(*local_->get(b), text);
  EXPECT_EQ(store_->get(absent).error().code(), ErrorCode::kNotFound);

  auto dest = tmp_ / "out" / "b.txt";
  fs::create_directories(dest.parent_path());
  ASSERT_TRUE(store_->get_to_file(b, dest, 0750).ok());
  EXPECT_EQ(*read_file(dest), text);
  struct stat st;
  ASSERT_EQ(::stat(dest.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(store_->get_to_file(a, dest, 0644).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(*read_file(dest), text) << "an existing file is never replaced";
  EXPECT_EQ(store_->get_to_file(absent, tmp_ / "out" / "x", 0644).error().code(),
            ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(tmp_ / "out" / "x"));
  // Bigger than the caller expects (a manifest's size): refused as it arrives, no file left.
  EXPECT_EQ(store_->get_to_file(b, tmp_ / "out" / "capped", 0644, text.size() - 1).error().code(),
            ErrorCode::kTooLarge);
  EXPECT_FALSE(fs::exists(tmp_ / "out" / "capped"));

  std::map<std::string, uint64_t> listed;
  ASSERT_TRUE(store_->list([&](const Digest& d, uint64_t n) { listed[d.hex()] = n; }).ok());
  EXPECT_EQ(listed, (std::map<std::string, uint64_t>{{a.hex(), 5}, {b.hex(), 100000}}));

  EXPECT_TRUE(*store_->remove(a));
  EXPECT_FALSE(*store_->remove(a));
  EXPECT_EQ(*store_->missing({a, b}), (std::vector<bool>{true, false}));
  EXPECT_EQ(store_->url(), server_->url());
}

TEST_F(HttpStoreTest, LargeBlobsTravelCompressedWhereThatPays) {
  std::string random = noise(24 << 20, 1);
  std::string repetitive;
  while (repetitive.size() < (24u << 20)) repetitive += "some text that repeats a lot\n";
  for (const std::string* data : {&random, &repetitive}) {
    Digest d = Digest::of(*data);
    ASSERT_TRUE(store_->put(d, *data).ok());
    auto got = store_->get(d);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*got == *data);
    EXPECT_EQ(fs::file_size(local_->blob_path(d)), data->size()) << "stored raw";
  }
  auto wire = raw("GET", "/v1/blobs/" + Digest::of(repetitive).hex());
  EXPECT_EQ(wire.status, 200);
  EXPECT_LT(wire.body.size(), repetitive.size() / 10) << "the compressible blob went compressed";
  EXPECT_TRUE(*decode_blob(wire.body) == repetitive);
}

TEST_F(HttpStoreTest, UploadWhoseContentDoesNotMatchItsNameIsRefused) {
  Digest claimed = Digest::of("what the name promises");
  std::string lie = "something else entirely";
  auto resp = raw("PUT", "/v1/blobs/" + claimed.hex(), encode_blob(lie));
  EXPECT_EQ(resp.status, 400);
  EXPECT_NE(resp.body.find(claimed.hex()), std::string::npos) << resp.body;
  EXPECT_NE(resp.body.find(Digest::of(lie).hex()), std::string::npos) << resp.body;
  EXPECT_TRUE(*local_->missing({claimed}) == std::vector<bool>{true});
  // Nothing partial was left anywhere in the store.
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(tmp_ / "served")) {
    if (e.is_regular_file()) ++files;
  }
  EXPECT_EQ(files, 0u);

  // The client's own put of a lie (a caller's bug, a file changed while read) is refused before
  // it travels.
  auto put = store_->put(claimed, lie);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(put.error().message().find(Digest::of(lie).hex()), std::string::npos)
      << put.error().message();

  // A body that is not an encoded blob, and names that are not digests.
  EXPECT_EQ(raw("PUT", "/v1/blobs/" + claimed.hex(), std::string("\x07junk", 5)).status, 400);
  EXPECT_EQ(raw("GET", "/v1/blobs/not-a-digest").status, 400);
  EXPECT_EQ(raw("GET", "/v1/blobs/" + std::string(64, 'A')).status, 400);
  EXPECT_EQ(raw("POST", "/v1/missing", "abc\n").status, 400);
  EXPECT_EQ(raw("GET", "/v2/anything").status, 404);
}

TEST_F(HttpStoreTest, FilesAreStreamedBothWays) {
  // Over kInMemoryBytes: read as they are sent, written as they arrive; one compresses (a
  // Content-Length measured first, a chunked answer), one does not.
  std::string repetitive;
  while (repetitive.size() < (6u << 20)) repetitive += "some text that repeats a lot\n";
  std::string random = noise(5 << 20, 4);
  for (const std::string* data : {&repetitive, &random}) {
    Digest d = Digest::of(*data);
    fs::path file = tmp_.write("upload", *data);
    auto put = store_->put_file(d, file);
    ASSERT_TRUE(put.ok()) << put.error().message();
    EXPECT_TRUE(*read_file(local_->blob_path(d)) == *data) << "stored raw";
    // Again: the server has it, drops the body and says so.
    ASSERT_TRUE(store_->put_file(d, file).ok());
    fs::path dest = tmp_ / "download";
    auto got = store_->get_to_file(d, dest, 0600);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*read_file(dest) == *data);
    EXPECT_EQ(store_->get_to_file(d, dest, 0600).error().code(), ErrorCode::kAlreadyExists);
    EXPECT_TRUE(*read_file(dest) == *data) << "never replaced";
    fs::remove(dest);
    fs::remove(file);
  }
  auto wire = raw("GET", "/v1/blobs/" + Digest::of(repetitive).hex());
  EXPECT_EQ(wire.status, 200);
  EXPECT_EQ(wire.header("transfer-encoding"), "chunked");
  EXPECT_LT(wire.body.size(), repetitive.size() / 10);
  EXPECT_TRUE(*decode_blob(wire.body) == repetitive);
  wire = raw("GET", "/v1/blobs/" + Digest::of(random).hex());
  EXPECT_EQ(wire.header("content-length"), std::to_string(random.size() + 1));
}

TEST_F(HttpStoreTest, AStreamedFileThatIsNotItsDigestIsNotStored) {
  std::string data = noise(3 << 20, 5);
  fs::path file = tmp_.write("upload", data);
  Digest claimed = Digest::of("what was hashed before the file changed");
  auto put = store_->put_file(claimed, file);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code(), ErrorCode::kCorrupt) << put.error().message();
  EXPECT_TRUE(*local_->missing({claimed}) == std::vector<bool>{true});
  // The server saw a body cut short and kept nothing of it, not even a temp file.
  for (int i = 0; i < 100; ++i) {
    size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(tmp_ / "served")) {
      if (e.is_regular_file()) ++files;
    }
    if (files == 0) break;
    ASSERT_LT(i, 99) << "a temp file stayed on the server";
    std::this_thread::sleep_for(50ms);
  }

  // A body sent by hand that decodes to something else is refused too, as it is stored.
  std::string other = noise(2 << 20, 6);
  auto resp = raw("PUT", "/v1/blobs/" + Digest::of(data).hex(), encode_blob(other));
  EXPECT_EQ(resp.status, 400);
  EXPECT_NE(resp.body.find(Digest::of(other).hex()), std::string::npos) << resp.body;
  EXPECT_TRUE(*local_->missing({Digest::of(data)}) == std::vector<bool>{true});
}

TEST_F(HttpStoreTest, ABodyThatDecodesPastTheLimitIsRefused) {
  BlobServerOptions o;
  o.root = tmp_ / "small";
  o.port = 0;
  o.max_body_bytes = 1 << 20;
  auto server = BlobServer::start(o);
  ASSERT_TRUE(server.ok());
  // 1 KiB of body, 16 MiB of zeros once decoded.
  std::string zeros(16 << 20, '\0');
  std::string wire = encode_blob(zeros);
  ASSERT_LT(wire.size(), 4096u);
  HttpRequest req;
  req.method = "PUT";
  req.url = (*server)->url() + "/v1/blobs/" + Digest::of(zeros).hex();
  req.body = wire;
  auto r = http_perform(req, quick_retries());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 413) << r->body;
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(tmp_ / "small")) {
    if (e.is_regular_file()) ++files;
  }
  EXPECT_EQ(files, 0u);
}

TEST_F(HttpStoreTest, CorruptBlobOnTheServersDiskIsCaughtByTheReader) {
  std::string data = noise(5000, 2);
  Digest d = Digest::of(data);
  ASSERT_TRUE(store_->put(d, data).ok());
  fs::path on_disk = local_->blob_path(d);
  fs::permissions(on_disk, fs::perms::owner_write, fs::perm_options::add);
  std::string damaged = data;
  damaged[100] ^= 1;
  ASSERT_TRUE(write_file_atomic(on_disk, damaged).ok());

  auto got = store_->get(d);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(got.error().message().find(d.hex()), std::string::npos) << got.error().message();
  EXPECT_NE(got.error().message().find(Digest::of(damaged).hex()), std::string::npos);

  auto dest = tmp_ / "dest";
  auto to_file = store_->get_to_file(d, dest, 0644);
  ASSERT_FALSE(to_file.ok());
  EXPECT_EQ(to_file.error().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp_.path()), fs::directory_iterator()), 1)
      << "no temp file left beside dest (only served/)";
}

TEST_F(HttpStoreTest, TokenIsRequiredAndNeverShown) {
  const std::string token = "s3cret-token-value";
  start_server(token);
  testing::expect_record_contract(*store_);
  Digest d = Digest::of("x");
  ASSERT_TRUE(store_->put(d, "x").ok());
  EXPECT_EQ(*store_->get(d), "x");

  auto anonymous = open_client("");
  auto m = anonymous->missing({d});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(m.error().message().find("RTENV_STORE_TOKEN"), std::string::npos)
      << m.error().message();
  EXPECT_NE(m.error().message().find("401"), std::string::npos) << m.error().message();

  const std::string wrong = "wrong-token-value";
  auto guesser = open_client(wrong);
  // A large refused upload first: the connection it leaves must not confuse the next request.
  std::string big = noise(3 << 20, 3);
  auto p = guesser->put(Digest::of(big), big);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(p.error().message().find(wrong), std::string::npos) << p.error().message();
  EXPECT_EQ(p.error().message().find(token), std::string::npos) << p.error().message();
  EXPECT_EQ(guesser->get(d).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(guesser->create_record("r", "v").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(*local_->missing({Digest::of(big)}) == std::vector<bool>{true});

  // Same thread, same connection pool: the right token still works after the refusals.
  ASSERT_TRUE(store_->put(Digest::of(big), big).ok());
  EXPECT_TRUE(*store_->get(Digest::of(big)) == big);
  EXPECT_EQ(raw("GET", "/v1/blobs/" + d.hex(), {}, {"Authorization: Bearer " + token}).status, 200);
  EXPECT_EQ(raw("GET", "/v1/blobs/" + d.hex(), {}, {"Authorization: Basic " + token}).status, 401);
}

TEST_F(HttpStoreTest, ServerDownIsUnavailableAfterRetries) {
  Digest d = Digest::of("here");
  ASSERT_TRUE(store_->put(d, "here").ok());
  int port = server_->port();
  server_.reset();

  auto start = Clock::now();
  auto got = store_->get(d);
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kUnavailable) << got.error().message();
  EXPECT_TRUE(got.error().retryable());
  const std::string& m = got.error().message();
  EXPECT_NE(m.find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << m;
  EXPECT_NE(m.find("gave up after 3 attempts"), std::string::npos) << m;
  EXPECT_GE(elapsed, 20ms) << "it waited between attempts";
  EXPECT_LT(elapsed, 5s);

  EXPECT_EQ(store_->missing({d}).error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store_->put(Digest::of("y"), "y").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store_->get_record("r").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store_->list([](const Digest&, uint64_t) {}).error().code(), ErrorCode::kUnavailable);
}

TEST_F(HttpStoreTest, Records) {
  testing::expect_record_contract(*store_);
  // The server keeps them where LocalStore does: the same directory works as file:// too.
  EXPECT_EQ(*local_->get_record("builds/race.lease"), *store_->get_record("builds/race.lease"));
  auto conditional = raw("PUT", "/v1/records/x", "v", {"If-None-Match: \"etag\""});
  EXPECT_EQ(conditional.status, 400) << conditional.body;
  auto bad = raw("PUT", "/v1/records/.hidden", "v");
  EXPECT_EQ(bad.status, 400) << bad.body;
}

TEST_F(HttpStoreTest, ConcurrentPutsOfTheSameAndOfDifferentBlobs) {
  std::vector<std::string> blobs;
  for (int i = 0; i < 40; ++i) blobs.push_back(noise(1000 + i * 3000, 100 + i));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto client = open_client("");
      for (size_t i = 0; i < blobs.size(); ++i) {
        // Every thread puts every blob, each in its own order.
        const std::string& b = blobs[(i * 7 + t * 5) % blobs.size()];
        if (!client->put(Digest::of(b), b).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::vector<Digest> digests;
  for (const auto& b : blobs) digests.push_back(Digest::of(b));
  EXPECT_EQ(*store_->missing(digests), std::vector<bool>(blobs.size(), false));
  size_t listed = 0;
  ASSERT_TRUE(store_->list([&](const Digest&, uint64_t) { ++listed; }).ok());
  EXPECT_EQ(listed, blobs.size());
  for (const auto& b : blobs) EXPECT_TRUE(*local_->get(Digest::of(b)) == b);
}

TEST(HttpStoreOpenTest, Urls) {
  EXPECT_TRUE(is_http_store_url("http://h:1"));
  EXPECT_TRUE(is_http_store_url("https://h"));
  EXPECT_FALSE(is_http_store_url("s3://b"));
  auto s = HttpStore::open("http://127.0.0.1:7878/");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->url(), "http://127.0.0.1:7878");
  EXPECT_EQ((*s)->blob_url(Digest::of("")),
            "http://127.0.0.1:7878/v1/blobs/" + Digest::of("").hex());
  EXPECT_EQ(HttpStore::open("http://").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HttpStore::open("http://h:1/?x=1").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HttpStore::open("ftp://h").error().code(), ErrorCode::kInvalidArgument);
}

TEST(BlobServerTest, AnAddressInUseIsRefusedAndStopIsPrompt) {
  testing::TempDir tmp;
  BlobServerOptions o;
  o.root = tmp / "s";
  o.port = 0;
  auto first = BlobServer::start(o);
  ASSERT_TRUE(first.ok()) << first.error().message();
  o.port = (*first)->port();
  auto second = BlobServer::start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message().find(std::to_string(o.port)), std::string::npos);
  EXPECT_TRUE((*first)->running());
  auto start = Clock::now();
  (*first)->stop();
  (*first)->wait();
  EXPECT_FALSE((*first)->running());
  EXPECT_LT(Clock::now() - start, 5s);
}

}  // namespace
}  // namespace rtenv::store
