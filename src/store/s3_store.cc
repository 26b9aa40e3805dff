#include "store/s3_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "store/blob_codec.h"
#include "store/blob_transfer.h"
#include "store/http_store.h"  // kInMemoryBytes
#include "util/fs.h"
#include "util/lines.h"
#include "util/parallel.h"
#include "util/redact.h"

namespace rtenv::store {

// ---------------------------------------------------------------------------------------------
// Settings from the environment and the AWS CLI's profile files.

namespace {

constexpr std::string_view kScheme = "s3://";

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

using IniSection = std::map<std::string, std::string>;

// The keys of `[section]` in an INI file as the AWS CLI writes them. nullopt if the file or the
// section does not exist. Indented lines under a key with no value (nested settings such as
// `s3 =`) are skipped.
Result<std::optional<IniSection>> read_ini_section(const fs::path& path, std::string_view section) {
  auto text = read_file(path);
  if (!text) {
    if (text.error().code() == ErrorCode::kNotFound) return std::optional<IniSection>();
    return std::move(text).error();
  }
  std::optional<IniSection> found;
  bool inside = false, nested = false;
  std::string_view rest = *text;
  while (!rest.empty()) {
    std::string_view raw = next_line(&rest);
    std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    bool indented = raw[0] == ' ' || raw[0] == '\t';
    if (nested && indented) continue;
    nested = false;
    if (line.front() == '[' && line.back() == ']') {
      inside = trim(line.substr(1, line.size() - 2)) == section;
      if (inside && !found) found.emplace();
      continue;
    }
    size_t eq = line.find('=');
    if (!inside || eq == std::string_view::npos) continue;
    std::string_view value = trim(line.substr(eq + 1));
    if (value.empty()) {
      nested = true;
      continue;
    }
    (*found)[lower(trim(line.substr(0, eq)))] = std::string(value);
  }
  return found;
}

struct ProfileKeys {
  std::optional<S3Credentials> credentials;
  std::optional<std::string> region;
};

ProfileKeys keys_of(const std::optional<IniSection>& section) {
  ProfileKeys out;
  if (!section) return out;
  auto get = [&](const char* name) -> std::string {
    auto it = section->find(name);
    return it == section->end() ? std::string() : it->second;
  };
  S3Credentials c{get("aws_access_key_id"), get("aws_secret_access_key"), get("aws_session_token")};
  if (!c.access_key_id.empty() && !c.secret_access_key.empty()) out.credentials = std::move(c);
  if (std::string r = get("region"); !r.empty()) out.region = std::move(r);
  return out;
}

// ---------------------------------------------------------------------------------------------
// URLs and S3's XML.

bool unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// Percent-encoding as SigV4 canonicalizes it: everything but unreserved characters (and '/' in a
// path), upper-case hex. The URL we send is already canonical, so what libcurl signs (the path
// and query as given) is what S3 computes.
std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    std::string_view entity = s.substr(i + 1, semi - i - 1);
    unsigned long code = 0;
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string digits(entity.substr(hex ? 2 : 1));
      char* end = nullptr;
      code = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (digits.empty() || *end != '\0' || code > 0x10FFFF) {
        out.append(s.substr(i, semi - i + 1));
      } else if (code < 0x80) {
        out.push_back(static_cast<char>(code));
      } else if (code < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (code >> 6)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      } else if (code < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (code >> 12)));
        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (code >> 18)));
        out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// The raw content of the first <tag>...</tag> in `xml` at or after `*pos` (which moves past it),
// or nullopt. S3's answers are flat enough that no general XML parser is needed: element names
// are fixed, values are escaped text, and no element here nests one of the same name.
std::optional<std::string_view> xml_element(std::string_view xml, std::string_view tag,
                                            size_t* pos) {
  std::string open = fmt::format("<{}>", tag), close = fmt::format("</{}>", tag);
  size_t start = xml.find(open, pos ? *pos : 0);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  if (pos) *pos = end + close.size();
  return xml.substr(start, end - start);
}

// The unescaped text of the first <tag> element.
std::optional<std::string> xml_text(std::string_view xml, std::string_view tag) {
  auto raw = xml_element(xml, tag, nullptr);
  if (!raw) return std::nullopt;
  return xml_unescape(*raw);
}

int64_t wall_ms() {
  timespec t;
  ::clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

// A time as S3 writes it, in ms since the epoch: ISO 8601 in listings ("2026-12-08T04:40:00.000Z")
// or an HTTP date in headers ("Tue, 08 Dec 2026 04:40:00 GMT"). 0 if it is neither.
int64_t parse_s3_time(const std::string& text) {
  struct tm tm = {};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) {
    tm = {};
    end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  }
  if (end == nullptr) return 0;
  time_t t = ::timegm(&tm);
  return t < 0 ? 0 : static_cast<int64_t>(t) * 1000;
}

bool retryable_status(long status, std::string_view body) {
  if (status >= 500 || status == 429 || status == 408) return true;
  // S3 closes an upload that stalled with 400 RequestTimeout; sending it again is the fix.
  return status == 400 && xml_text(body, "Code") == "RequestTimeout";
}

}  // namespace

Result<S3Settings> S3Settings::from_environment(const Lookup& env) {
  auto get = [&](const std::string& name) -> std::optional<std::string> {
    std::optional<std::string> v;
    if (env) {
      v = env(name);
    } else if (const char* raw = std::getenv(name.c_str())) {
      v = raw;
    }
    if (v && v->empty()) v.reset();
    return v;
  };
  auto first_of = [&](std::initializer_list<const char*> names) -> std::optional<std::string> {
    for (const char* n : names) {
      if (auto v = get(n)) return v;
    }
    return std::nullopt;
  };

  S3Settings s;
  if (auto e = first_of({"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"})) {
    s.endpoint = *e;
  }
  std::string profile = get("AWS_PROFILE").value_or("default");
  std::optional<std::string> home = get("HOME");
  auto file_of = [&](const char* var, const char* name) -> std::optional<fs::path> {
    if (auto v = get(var)) return fs::path(*v);
    if (home) return fs::path(*home) / ".aws" / name;
    return std::nullopt;
  };
  std::optional<fs::path> config_file = file_of("AWS_CONFIG_FILE", "config");
  std::optional<fs::path> credentials_file = file_of("AWS_SHARED_CREDENTIALS_FILE", "credentials");

  ProfileKeys from_config;
  if (config_file) {
    RTENV_ASSIGN_OR_RETURN(
        auto section, read_ini_section(*config_file, profile == "default" ? std::string("default")
                                                                          : "profile " + profile));
    if (!section && profile == "default") {
      RTENV_ASSIGN_OR_RETURN(section, read_ini_section(*config_file, "profile default"));
    }
    from_config = keys_of(section);
  }
  if (auto r = first_of({"AWS_REGION", "AWS_DEFAULT_REGION"})) {
    s.region = *r;
  } else if (from_config.region) {
    s.region = *from_config.region;
  }

  auto key_id = get("AWS_ACCESS_KEY_ID"), secret = get("AWS_SECRET_ACCESS_KEY");
  if (key_id || secret) {
    if (!key_id || !secret) {
      return make_error(ErrorCode::kInvalidArgument,
                        "incomplete AWS credentials: {} is set but {} is not (set both, or unset "
                        "both to use profile \"{}\" of the AWS credentials file)",
                        key_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                        key_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID", profile);
    }
    s.credentials = {*key_id, *secret, get("AWS_SESSION_TOKEN").value_or("")};
    return s;
  }
  if (credentials_file) {
    RTENV_ASSIGN_OR_RETURN(auto section, read_ini_section(*credentials_file, profile));
    if (auto keys = keys_of(section); keys.credentials) {
      s.credentials = std::move(*keys.credentials);
      return s;
    }
  }
  if (from_config.credentials) {
    s.credentials = std::move(*from_config.credentials);
    return s;
  }
  auto shown = [](const std::optional<fs::path>& p) {
    return p ? p->string() : std::string("(none: HOME is not set)");
  };
  return make_error(
      ErrorCode::kInvalidArgument,
      "no AWS credentials found: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
      "set, and profile \"{}\" (AWS_PROFILE) has no aws_access_key_id and "
      "aws_secret_access_key in the credentials file {} (AWS_SHARED_CREDENTIALS_FILE) "
      "or the config file {} (AWS_CONFIG_FILE)",
      profile, shown(credentials_file), shown(config_file));
}

// ---------------------------------------------------------------------------------------------
// The store.

struct S3Store::Request {
  Request(const char* m, std::string k, std::string q = {})
      : method(m), key(std::move(k)), query(std::move(q)) {}
  const char* method;  ///< GET, HEAD, PUT, POST or DELETE
  std::string key;     ///< object key; empty for the bucket itself
  std::string query;   ///< canonical: names sorted, names and values uri_encoded
  std::string_view body;
  std::string content_type;
  std::string range;                 ///< a Range header's value, or empty
  bool if_none_match = false;        ///< create only: `If-None-Match: *`
  std::vector<std::string> headers;  ///< more headers, "Name: value"
  /// The body read as it is sent instead of `body`, and its SHA-256 (what the request is signed
  /// with).
  BodySource* source = nullptr;
  Digest source_sha256;
};

Result<std::unique_ptr<S3Store>> S3Store::open(std::string_view url) {
  RTENV_ASSIGN_OR_RETURN(S3Settings settings, S3Settings::from_environment());
  return open(url, std::move(settings));
}

Result<std::unique_ptr<S3Store>> S3Store::open(std::string_view url, S3Settings settings) {
  if (!url.starts_with(kScheme)) {
    return make_error(ErrorCode::kInvalidArgument, "store URL {}: expected s3://bucket/prefix",
                      url);
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view bucket = rest.substr(0, slash);
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  bool bucket_ok =
      bucket.size() >= 3 && bucket.size() <= 63 &&
      std::all_of(bucket.begin(), bucket.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
      });
  if (!bucket_ok) {
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: \"{}\" is not a valid bucket name (3 to 63 letters, digits, "
                      "dots and hyphens)",
                      url, bucket);
  }
  // "." and ".." segments would be resolved away by the HTTP client (RFC 3986), naming other keys.
  std::string segments = "/" + std::string(prefix) + "/";
  if (segments.find("/./") != std::string::npos || segments.find("/../") != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "store URL {}: the prefix must not contain \".\" or \"..\" segments", url);
  }
  while (!settings.endpoint.empty() && settings.endpoint.back() == '/') {
    settings.endpoint.pop_back();
  }
  if (!settings.endpoint.empty() && !settings.endpoint.starts_with("http://") &&
      !settings.endpoint.starts_with("https://")) {
    return make_error(ErrorCode::kInvalidArgument,
                      "S3 endpoint \"{}\" (RTENV_S3_ENDPOINT, AWS_ENDPOINT_URL_S3 or "
                      "AWS_ENDPOINT_URL) must start with http:// or https://",
                      redact_url_credentials(settings.endpoint));
  }
  if (settings.region.empty() ||
      !std::all_of(settings.region.begin(), settings.region.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return make_error(ErrorCode::kInvalidArgument, "S3 region \"{}\" is not a region name",
                      settings.region);
  }
  if (settings.credentials.access_key_id.empty() ||
      settings.credentials.secret_access_key.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "store URL {}: no AWS credentials given", url);
  }
  if (settings.max_attempts < 1 || settings.part_size == 0 || settings.parallel_requests == 0 ||
      settings.parallel_parts == 0 || settings.list_page_size == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "S3 settings: max_attempts, part_size, parallel_requests, parallel_parts and "
                      "list_page_size must be positive");
  }
  http_global_init();
  return std::unique_ptr<S3Store>(
      new S3Store(std::string(bucket), std::string(prefix), std::move(settings)));
}

S3Store::S3Store(std::string bucket, std::string prefix, S3Settings settings)
    : bucket_(std::move(bucket)),
      prefix_(std::move(prefix)),
      settings_(std::move(settings)),
      part_budget_(std::make_unique<PartBudget>(settings_.max_part_bytes_held)) {
  retry_.max_attempts = settings_.max_attempts;
  retry_.initial_backoff = settings_.initial_backoff;
  retry_.max_backoff = settings_.max_backoff;
  retry_.connect_timeout = settings_.connect_timeout;
  retry_.low_speed_bytes = settings_.low_speed_bytes;
  retry_.low_speed_time = settings_.low_speed_time;
  retry_.tcp_keepalive = true;
}

std::string S3Store::url() const {
  return prefix_.empty() ? fmt::format("s3://{}", bucket_)
                         : fmt::format("s3://{}/{}", bucket_, prefix_);
}

std::string S3Store::object_key(const Digest& digest) const {
  std::string hex = digest.hex();
  std::string rel = fmt::format("{}/{}", hex.substr(0, 2), hex);
  return prefix_.empty() ? rel : prefix_ + "/" + rel;
}

std::string S3Store::object_url(const Digest& digest) const {
  return http_url(object_key(digest), "");
}

std::string S3Store::http_url(std::string_view key, std::string_view query) const {
  std::string base;
  if (!settings_.endpoint.empty()) {
    base = fmt::format("{}/{}", settings_.endpoint, bucket_);
  } else if (bucket_.find('.') == std::string::npos) {
    base = fmt::format("https://{}.s3.{}.amazonaws.com", bucket_, settings_.region);
  } else {
    // A dotted name would not match the wildcard certificate as a host name.
    base = fmt::format("https://s3.{}.amazonaws.com/{}", settings_.region, bucket_);
  }
  std::string out = base;
  if (!key.empty()) {
    out += '/';
    out += uri_encode(key, /*keep_slash=*/true);
  } else if (settings_.endpoint.empty() && bucket_.find('.') == std::string::npos) {
    out += '/';
  }
  if (!query.empty()) {
    out += '?';
    out += query;
  }
  return out;
}

Result<HttpResponse> S3Store::send(const Request& req, BodySink* sink) const {
  static const std::string kEmptySha = Digest::of("").hex();
  HttpRequest http;
  http.method = req.method;
  http.url = http_url(req.key, req.query);
  http.body = req.body;
  http.body_source = req.source;
  http.ca_bundle = settings_.ca_bundle;
  http.body_sink = sink;
  // S3 requires the payload's hash; giving it also lets libcurl sign it without reading the body.
  std::string payload_sha = req.source         ? req.source_sha256.hex()
                            : req.body.empty() ? kEmptySha
                                               : Digest::of(req.body).hex();
  http.headers.push_back("x-amz-content-sha256: " + payload_sha);
  if (!settings_.credentials.session_token.empty()) {
    http.headers.push_back("x-amz-security-token: " + settings_.credentials.session_token);
  }
  if (!req.content_type.empty()) http.headers.push_back("Content-Type: " + req.content_type);
  if (!req.range.empty()) http.headers.push_back("Range: " + req.range);
  if (req.if_none_match) http.headers.push_back("If-None-Match: *");
  for (const auto& h : req.headers) http.headers.push_back(h);
  http.sigv4 =
      AwsSigV4{fmt::format("aws:amz:{}:s3", settings_.region), settings_.credentials.access_key_id,
               settings_.credentials.secret_access_key};
  // libcurl's default: S3 can refuse a large upload (a bad signature, no such bucket) before its
  // body is sent.
  http.expect_continue = true;
  return http_send(http, retry_, [&](const HttpResponse& resp) -> std::optional<Error> {
    if (!retryable_status(resp.status, resp.body)) return std::nullopt;
    return failure(req, resp);
  });
}

Error S3Store::failure(const Request& req, const HttpResponse& resp) const {
  std::string where =
      fmt::format("{} {}", req.method, redact_url_credentials(http_url(req.key, req.query)));
  std::string detail;
  auto code = xml_text(resp.body, "Code");
  if (code) {
    detail = *code;
    if (auto message = xml_text(resp.body, "Message")) detail += ": " + *message;
    detail += fmt::format(" (HTTP {})", resp.status);
  } else {
    detail = fmt::format("HTTP {}", resp.status);
  }
  long s = resp.status;
  if (s == 404) return make_error(ErrorCode::kNotFound, "{}: {}", where, detail);
  if (s >= 500 || s == 429 || s == 408 || (s == 400 && code == "RequestTimeout")) {
    return make_error(ErrorCode::kUnavailable, "{}: the server failed: {}", where, detail);
  }
  if (s == 401 || s == 403) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: access denied: {}; check the credentials (AWS_ACCESS_KEY_ID, "
                      "AWS_PROFILE), the region ({}) and the bucket's policy",
                      where, detail, settings_.region);
  }
  if (s >= 300 && s < 400) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: S3 sent the request elsewhere: {}; is the bucket in region {} "
                      "(AWS_REGION)?",
                      where, detail, settings_.region);
  }
  if (s >= 400) return make_error(ErrorCode::kInvalidArgument, "{}: {}", where, detail);
  return make_error(ErrorCode::kIo, "{}: unexpected answer: {}", where, detail);
}

Result<bool> S3Store::exists(const Digest& digest) const {
  RTENV_ASSIGN_OR_RETURN(auto used, last_used(digest));
  return used.has_value();
}

Result<std::optional<int64_t>> S3Store::last_used(const Digest& digest) const {
  Request head("HEAD", object_key(digest));
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(head));
  if (resp.status == 200)
    return std::optional<int64_t>(parse_s3_time(resp.header("last-modified")));
  if (resp.status == 404) return std::optional<int64_t>();
  // A HEAD answer has no body, so no reason; the same request as a one-byte GET says why.
  Request probe("GET", head.key);
  probe.range = "bytes=0-0";
  auto why = send(probe);
  if (why && why->status >= 300 && xml_text(why->body, "Code")) return failure(probe, *why);
  Error e = failure(head, resp);
  if (resp.status == 403) {
    return Error(e.code(), e.message() +
                               " (S3 also answers 403 for an absent object when the "
                               "credentials may not list the bucket: s3:ListBucket)");
  }
  return e;
}

void S3Store::touch_if_stale(const std::string& key, int64_t modified_ms) const {
  if (modified_ms == 0 || wall_ms() - modified_ms < settings_.touch_interval_ms) return;
  // A copy onto itself is refused unless something changes: the metadata is replaced (by none).
  Request copy("PUT", key);
  copy.headers.push_back("x-amz-copy-source: /" + bucket_ + "/" + uri_encode(key, true));
  copy.headers.push_back("x-amz-metadata-directive: REPLACE");
  copy.content_type = "application/octet-stream";
  (void)send(copy);
}

Result<std::vector<bool>> S3Store::missing(const std::vector<Digest>& digests) {
  // One byte per answer: vector<bool> packs bits, which threads cannot write independently.
  std::vector<char> absent(digests.size(), 0);
  unsigned threads = static_cast<unsigned>(
      std::min<size_t>(settings_.parallel_requests, std::max<size_t>(digests.size(), 1)));
  RTENV_TRY(parallel_for(digests.size(), threads, [&](size_t i) -> Result<void> {
    RTENV_ASSIGN_OR_RETURN(auto used, last_used(digests[i]));
    absent[i] = !used;
    if (used) touch_if_stale(object_key(digests[i]), *used);  // a pack relies on it from now
    return ok_result();
  }));
  return std::vector<bool>(absent.begin(), absent.end());
}

Result<void> S3Store::upload(const Digest& digest, std::string_view data, std::string_view source) {
  Digest actual = Digest::of(data);
  if (actual != digest) return content_mismatch(digest, actual, source);
  return upload_wire(object_key(digest), encode_blob(data));
}

Result<void> S3Store::upload_wire(const std::string& key, std::string_view wire) {
  if (wire.size() > settings_.multipart_threshold) return upload_multipart(key, wire);
  Request put("PUT", key);
  put.body = wire;
  return put_if_absent(put);
}

Result<void> S3Store::put_if_absent(Request& put) const {
  put.content_type = "application/octet-stream";
  // Put-if-absent in one request: S3 answers 412 (409 when racing another writer) if the object
  // exists, and leaves it. A store that ignores the condition overwrites it with the same bytes.
  put.if_none_match = true;
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(put));
  if (resp.status == 412 || resp.status == 409) return ok_result();
  if (resp.status != 200) return failure(put, resp);
  return ok_result();
}

Result<void> S3Store::upload_multipart(const std::string& key, std::string_view wire) {
  uint64_t part_size = std::max(settings_.part_size, uint64_t{1});
  size_t offset = 0;
  return upload_multipart(
      key,
      [&](std::string* part) -> Result<bool> {
        size_t take = static_cast<size_t>(std::min<uint64_t>(part_size, wire.size() - offset));
        part->assign(wire.substr(offset, take));
        offset += take;
        return offset < wire.size();
      },
      part_size);
}

uint64_t S3Store::PartBudget::take(uint64_t n) {
  n = std::min(n, total_);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return free_ >= n; });
  free_ -= n;
  peak_ = std::max(peak_, total_ - free_);
  return n;
}

void S3Store::PartBudget::give_back(uint64_t n) {
  {
    std::lock_guard lock(mu_);
    free_ += n;
  }
  cv_.notify_all();
}

uint64_t S3Store::PartBudget::peak() const {
  std::lock_guard lock(mu_);
  return peak_;
}

uint64_t S3Store::peak_part_bytes_held() const { return part_budget_->peak(); }

Result<void> S3Store::upload_multipart(const std::string& key, const NextPart& next_part,
                                       uint64_t part_bytes, uint64_t first_reserved) {
  // A first part's room that no part took (the upload could not start) goes back.
  struct Unreserve {
    PartBudget& budget;
    uint64_t& bytes;
    ~Unreserve() { budget.give_back(std::exchange(bytes, 0)); }
  } unreserve{*part_budget_, first_reserved};
  Request create("POST", key, "uploads=");
  RTENV_ASSIGN_OR_RETURN(HttpResponse created, send(create));
  if (created.status != 200) return failure(create, created);
  auto upload_id = xml_text(created.body, "UploadId");
  if (!upload_id || upload_id->empty()) {
    return make_error(ErrorCode::kIo, "{} {}: the answer has no UploadId", create.method,
                      http_url(create.key, create.query));
  }
  std::string id = uri_encode(*upload_id, false);

  // Parts are read in order on this thread and sent by up to `parallel_parts` threads; a part
  // is read only when one of them is free, so at most parallel_parts + 1 parts are held.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    struct Part {
      uint64_t number;
      std::string body;
      uint64_t reserved;  ///< taken from the store's budget, given back once sent
    };
    std::deque<Part> queue;
    unsigned held = 0;  ///< parts queued or being sent
    bool done = false;
    std::optional<Error> error;
    std::map<uint64_t, std::string> etags;
  } shared;
  auto send_part = [&](uint64_t number, const std::string& body) -> Result<std::string> {
    Request part("PUT", key, fmt::format("partNumber={}&uploadId={}", number, id));
    part.body = body;
    part.content_type = "application/octet-stream";
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(part));
    if (resp.status != 200) return failure(part, resp);
    std::string etag = resp.header("etag");
    if (etag.empty()) {
      return make_error(ErrorCode::kIo, "PUT {}: the answer has no ETag",
                        http_url(part.key, part.query));
    }
    return etag;
  };
  const unsigned senders = std::max(settings_.parallel_parts, 1u);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < senders; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        Shared::Part job;
        bool failed = false;
        {
          std::unique_lock lock(shared.mu);
          shared.cv.wait(lock, [&] { return !shared.queue.empty() || shared.done; });
          if (shared.queue.empty()) return;
          job = std::move(shared.queue.front());
          shared.queue.pop_front();
          failed = shared.error.has_value();
        }
        Result<std::string> etag = Error(ErrorCode::kInternal, "a part was not sent");
        if (!failed) etag = send_part(job.number, job.body);
        job.body = std::string();
        part_budget_->give_back(job.reserved);
        {
          std::lock_guard lock(shared.mu);
          if (etag) {
            shared.etags[job.number] = std::move(etag).value();
          } else if (!shared.error) {
            shared.error = std::move(etag).error();
          }
          --shared.held;
        }
        shared.cv.notify_all();
      }
    });
  }
  for (uint64_t number = 1;; ++number) {
    {
      std::unique_lock lock(shared.mu);
      shared.cv.wait(lock, [&] { return shared.held < senders || shared.error; });
      if (shared.error) break;
    }
    // Room for the part among all of the store's uploads, before it is read.
    uint64_t reserved = std::exchange(first_reserved, 0);
    if (reserved == 0) reserved = part_budget_->take(part_bytes);
    std::string part;
    auto more = next_part(&part);
    std::lock_guard lock(shared.mu);
    if (!more || (part.empty() && number != 1)) part_budget_->give_back(reserved);
    if (!more) {
      if (!shared.error) shared.error = std::move(more).error();
      break;
    }
    // S3 wants at least one part, even an empty one.
    if (!part.empty() || number == 1) {
      shared.queue.push_back({number, std::move(part), reserved});
      ++shared.held;
      shared.cv.notify_all();
    }
    if (!*more) break;
  }
  {
    std::lock_guard lock(shared.mu);
    shared.done = true;
  }
  shared.cv.notify_all();
  for (auto& t : threads) t.join();

  auto complete = [&]() -> Result<void> {
    if (shared.error) return *shared.error;
    std::string body = "<CompleteMultipartUpload>";
    for (const auto& [number, etag] : shared.etags) {
      body += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", number,
                          xml_escape(etag));
    }
    body += "</CompleteMultipartUpload>";
    Request done("POST", key, "uploadId=" + id);
    done.body = body;
    done.content_type = "application/xml";
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(done));
    // S3 may answer 200 and still fail: the error is then in the body.
    if (resp.status != 200 || resp.body.find("<Error>") != std::string::npos) {
      if (resp.status == 200) resp.status = 500;
      return failure(done, resp);
    }
    return ok_result();
  };
  auto r = complete();
  if (!r) {
    // Best effort: an abandoned upload's parts would be billed until a lifecycle rule ends them.
    // (An upload's parts, never a blob: nothing a reader sees is deleted.)
    Request abort("DELETE", key, "uploadId=" + id);
    (void)send(abort);
  }
  return r;
}

bool S3Store::may_go_multipart(uint64_t raw_bytes) const {
  return raw_bytes + 1 > settings_.multipart_threshold;  // encoding adds at most a tag byte
}

// Callers mostly put what missing() just reported absent, so no HEAD comes first: the
// conditional PUT keeps a present object. Multipart uploads (large blobs) do look first.
Result<void> S3Store::put(const Digest& digest, std::string_view data) {
  if (may_go_multipart(data.size())) {
    RTENV_ASSIGN_OR_RETURN(bool there, exists(digest));
    if (there) return ok_result();
  }
  return upload(digest, data, "the data");
}

Result<void> S3Store::put_file(const Digest& digest, const fs::path& path) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (!ec && size <= kInMemoryBytes) {
    RTENV_ASSIGN_OR_RETURN(std::string data, read_file(path));
    return upload(digest, data, path.string());
  }
  if (ec || may_go_multipart(size)) {
    RTENV_ASSIGN_OR_RETURN(bool there, exists(digest));
    if (there) return ok_result();
  }
  RTENV_ASSIGN_OR_RETURN(auto reader, EncodedFileReader::open(path, digest));
  std::string key = object_key(digest);
  if (!may_go_multipart(reader->file_size())) {
    // One PUT, read from the file as it is sent; measured (and hashed, for the signature) first.
    RTENV_ASSIGN_OR_RETURN(auto measured, reader->measure(/*hash=*/true));
    EncodedFileSource source(*reader, measured.bytes);
    Request put("PUT", key);
    put.source = &source;
    put.source_sha256 = measured.sha256;
    return put_if_absent(put);
  }
  // In parts read from the file; each part is held while it is sent (S3 signs it by its hash).
  // Parts grow for a blob that would need more than S3's 10000.
  const uint64_t part_size =
      std::max({settings_.part_size, uint64_t{1}, (reader->file_size() + 1) / 9999 + 1});
  std::optional<char> carried;  // read ahead to learn whether a full part was the last
  auto fill = [&](std::string* part) -> Result<bool> {
    part->clear();
    part->resize(part_size);
    size_t at = 0;
    if (carried) part->front() = *carried, at = 1, carried.reset();
    while (at < part->size()) {
      RTENV_ASSIGN_OR_RETURN(size_t n, reader->read(part->data() + at, part->size() - at));
      if (n == 0) break;
      at += n;
    }
    part->resize(at);
    if (at < part_size) return false;
    char next;
    RTENV_ASSIGN_OR_RETURN(size_t n, reader->read(&next, 1));
    if (n == 0) return false;
    carried = next;
    return true;
  };
  // The first part is read to learn whether there is a second: in the budget too.
  uint64_t first_reserved = part_budget_->take(part_size);
  std::string first;
  auto more = fill(&first);
  if (!more || !*more) {
    auto done = more ? upload_wire(key, first)  // it compressed to one part: one PUT after all
                     : Result<void>(std::move(more).error());
    first = std::string();
    part_budget_->give_back(first_reserved);
    return done;
  }
  bool first_given = false;
  return upload_multipart(
      key,
      [&](std::string* part) -> Result<bool> {
        if (first_given) return fill(part);
        first_given = true;
        *part = std::move(first);
        return true;
      },
      part_size, first_reserved);
}

Error S3Store::not_found(const Digest& digest, const HttpResponse& resp) const {
  if (xml_text(resp.body, "Code") != "NoSuchBucket") {
    return make_error(ErrorCode::kNotFound, "blob {} is not in store {}", digest.hex(), url());
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "store {}: bucket {} does not exist (or is in another account)", url(),
                    bucket_);
}

Result<std::string> S3Store::fetch_verified(const Digest& digest) {
  Request get("GET", object_key(digest));
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(get));
  if (resp.status == 404) return not_found(digest, resp);
  if (resp.status != 200) return failure(get, resp);
  auto data = decode_blob(resp.body);
  if (!data) {
    return make_error(ErrorCode::kCorrupt,
                      "blob {} in store {} is corrupt ({}); delete {} and pack "
                      "the package again",
                      digest.hex(), url(), data.error().message(), object_url(digest));
  }
  Digest actual = Digest::of(*data);
  if (actual != digest) {
    return make_error(ErrorCode::kCorrupt,
                      "blob {} in store {} is corrupt (its content hashes to {}); delete {} and "
                      "pack the package again",
                      digest.hex(), url(), actual.hex(), object_url(digest));
  }
  touch_if_stale(get.key, parse_s3_time(resp.header("last-modified")));  // a node uses it
  return std::move(data).value();
}

Result<std::string> S3Store::get(const Digest& digest) { return fetch_verified(digest); }

Result<void> S3Store::get_to_file(const Digest& digest, const fs::path& dest, mode_t mode,
                                  uint64_t max_bytes) {
  DecodedFileWriter writer(digest, dest, mode, max_bytes, "store " + url());
  DecodedFileSink sink(writer);
  auto fetched = [&]() -> Result<void> {
    Request get("GET", object_key(digest));
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(get, &sink));
    if (resp.status == 404) return not_found(digest, resp);
    if (resp.status != 200) return failure(get, resp);
    RTENV_TRY(writer.finish());
    touch_if_stale(get.key, parse_s3_time(resp.header("last-modified")));  // a node uses it
    return ok_result();
  }();
  if (fetched) return fetched;
  writer.discard();
  if (fetched.error().code() != ErrorCode::kCorrupt) return fetched;
  return make_error(ErrorCode::kCorrupt, "{}; delete {} and pack the package again",
                    fetched.error().message(), object_url(digest));
}

Result<bool> S3Store::remove(const Digest& digest) {
  // DELETE answers 204 whether or not the object was there; only a HEAD can tell.
  RTENV_ASSIGN_OR_RETURN(bool there, exists(digest));
  if (!there) return false;
  Request del("DELETE", object_key(digest));
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(del));
  if (resp.status != 204 && resp.status != 200) return failure(del, resp);
  return true;
}

Result<void> S3Store::list_objects(
    std::string_view under, const std::function<void(std::string_view, uint64_t, int64_t)>& fn) {
  std::string key_prefix = (prefix_.empty() ? "" : prefix_ + "/") + std::string(under);
  std::string token;
  for (;;) {
    // Query names in byte order, as SigV4's canonical form has them.
    std::string query;
    if (!token.empty()) query += "continuation-token=" + uri_encode(token, false) + "&";
    query += fmt::format("list-type=2&max-keys={}", settings_.list_page_size);
    if (!key_prefix.empty()) query += "&prefix=" + uri_encode(key_prefix, false);
    Request req("GET", "", query);
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
    if (resp.status != 200) return failure(req, resp);
    std::string_view xml = resp.body;
    if (xml.find("<ListBucketResult") == std::string_view::npos) {
      return make_error(ErrorCode::kCorrupt, "GET {}: the answer is not a ListBucketResult",
                        http_url("", query));
    }
    size_t pos = 0;
    while (auto entry = xml_element(xml, "Contents", &pos)) {
      auto key = xml_text(*entry, "Key");
      auto size = xml_text(*entry, "Size");
      if (!key || !size || !key->starts_with(key_prefix)) continue;
      char* end = nullptr;
      uint64_t bytes = std::strtoull(size->c_str(), &end, 10);
      if (size->empty() || *end != '\0') continue;
      auto modified = xml_text(*entry, "LastModified");
      fn(std::string_view(*key).substr(key_prefix.size()), bytes,
         modified ? parse_s3_time(*modified) : 0);
    }
    if (xml_text(xml, "IsTruncated") != "true") return ok_result();
    auto next = xml_text(xml, "NextContinuationToken");
    if (!next || next->empty()) {
      return make_error(ErrorCode::kCorrupt,
                        "GET {}: the listing is truncated but has no NextContinuationToken",
                        http_url("", query));
    }
    token = *next;
  }
}

namespace {
// The digest a blob's key names relative to the store's prefix ("ab/ab12..."), if it is one.
std::optional<Digest> blob_key_digest(std::string_view rel) {
  if (rel.size() != 67 || rel[2] != '/') return std::nullopt;
  auto d = Digest::from_hex(rel.substr(3));
  if (!d || d->hex() != rel.substr(3) || rel.substr(0, 2) != rel.substr(3, 2)) return std::nullopt;
  return *d;
}
}  // namespace

Result<void> S3Store::list(const std::function<void(const Digest&, uint64_t)>& fn) {
  return list_objects("", [&](std::string_view rel, uint64_t bytes, int64_t) {
    if (auto d = blob_key_digest(rel)) fn(*d, bytes);
  });
}

Result<void> S3Store::scan(const std::function<void(const Digest&, uint64_t, int64_t)>& fn) {
  return list_objects("", [&](std::string_view rel, uint64_t bytes, int64_t modified) {
    if (auto d = blob_key_digest(rel)) fn(*d, bytes, modified);
  });
}

Result<void> S3Store::scan_records(
    const std::function<void(const std::string&, const std::string&)>& fn) {
  std::vector<std::string> names;
  RTENV_TRY(list_objects("records/", [&](std::string_view name, uint64_t bytes, int64_t) {
    if (bytes <= kMaxRecordBytes && check_record_name(name)) names.emplace_back(name);
  }));
  for (const auto& name : names) {
    auto text = get_record(name);
    if (text) fn(name, *text);
  }
  return ok_result();
}

namespace {

// A blob's encoded body decoded as it arrives (the decoder bounds what it may grow to), kept in
// memory: how a collector reads a manifest.
class DecodedMemorySink final : public BodySink {
 public:
  explicit DecodedMemorySink(uint64_t max_bytes) : decoder_(max_bytes) {}
  Result<void> restart() override {
    decoder_.reset();
    text.clear();
    received = 0;
    return ok_result();
  }
  Result<void> write(std::string_view chunk) override {
    received += chunk.size();
    return decoder_.update(chunk, [&](std::string_view b) -> Result<void> {
      text.append(b);
      return ok_result();
    });
  }
  /// kCorrupt unless the body ended where the blob's encoding does.
  Result<void> finish() const { return decoder_.finish(); }

  std::string text;
  uint64_t received = 0;  ///< encoded bytes

 private:
  BlobDecoder decoder_;
};

}  // namespace

Result<std::optional<std::string>> S3Store::read_if(const Digest& digest, size_t head_bytes,
                                                    const HeadTest& wanted, uint64_t max_bytes) {
  // zstd's first block (at most 128 KiB of content) lies whole within this much of a frame, so
  // the first bytes decode from it.
  constexpr uint64_t kProbeBytes = (128 << 10) + 64;
  // The answer's status, or nullopt for a blob that is gone or is not a blob of that size.
  auto fetch = [&](const std::string& range,
                   DecodedMemorySink& sink) -> Result<std::optional<long>> {
    Request get("GET", object_key(digest));
    get.range = range;
    auto resp = send(get, &sink);
    if (!resp) {
      ErrorCode code = resp.error().code();
      if (code == ErrorCode::kTooLarge || code == ErrorCode::kCorrupt) return std::optional<long>();
      return resp.error();
    }
    if (resp->status == 404 || resp->status == 416) return std::optional<long>();
    if (resp->status != 200 && resp->status != 206) return failure(get, *resp);
    return std::optional<long>(resp->status);
  };
  DecodedMemorySink probe(max_bytes);
  RTENV_ASSIGN_OR_RETURN(auto status, fetch(fmt::format("bytes=0-{}", kProbeBytes - 1), probe));
  if (!status || !wanted(std::string_view(probe.text).substr(0, head_bytes))) {
    return std::optional<std::string>();
  }
  DecodedMemorySink full(max_bytes);
  DecodedMemorySink* whole = &probe;
  if (*status == 206 && probe.received >= kProbeBytes) {  // there is more
    RTENV_ASSIGN_OR_RETURN(status, fetch("", full));
    if (!status) return std::optional<std::string>();
    whole = &full;
  }
  if (!whole->finish() || Digest::of(whole->text) != digest) return std::optional<std::string>();
  return std::optional<std::string>(std::move(whole->text));
}

Result<bool> S3Store::remove_if_untouched_since(const Digest& digest, int64_t cutoff_ms) {
  RTENV_ASSIGN_OR_RETURN(auto used, last_used(digest));
  if (!used || *used == 0 || *used >= cutoff_ms) return false;
  Request del("DELETE", object_key(digest));
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(del));
  if (resp.status != 204 && resp.status != 200) return failure(del, resp);
  return true;
}

Result<S3ObjectUrl> S3ObjectUrl::parse(std::string_view url) {
  std::string_view rest = url.substr(std::min(url.size(), kScheme.size()));
  size_t slash = rest.find('/');
  if (!url.starts_with(kScheme) || slash == 0 || slash == std::string_view::npos ||
      slash + 1 == rest.size()) {
    return make_error(ErrorCode::kInvalidArgument, "{}: expected s3://<bucket>/<key>",
                      redact_url_credentials(url));
  }
  return S3ObjectUrl{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

Result<uint64_t> S3Store::get_object_to_file(std::string_view key, const fs::path& dest,
                                             uint64_t max_bytes) const {
  std::string shown = fmt::format("s3://{}/{}", bucket_, key);
  FileSink sink(dest.string(), max_bytes, shown);
  auto fetched = [&]() -> Result<uint64_t> {
    Request get("GET", std::string(key));
    RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(get, &sink));
    RTENV_ASSIGN_OR_RETURN(uint64_t size, sink.finish());
    if (resp.status == 200) return size;
    if (resp.status == 404 && xml_text(resp.body, "Code") == "NoSuchBucket") {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: bucket {} does not exist (or is in another account)", shown, bucket_);
    }
    if (resp.status == 404) {
      return make_error(ErrorCode::kNotFound, "{}: not found (HTTP 404)", shown);
    }
    return failure(get, resp);
  }();
  if (!fetched) {
    (void)sink.finish();
    std::error_code ec;
    fs::remove(dest, ec);
  }
  return fetched;
}

Result<std::string> S3Store::record_key(std::string_view name) const {
  RTENV_TRY(check_record_name(name));
  std::string rel = "records/" + std::string(name);
  return prefix_.empty() ? rel : prefix_ + "/" + rel;
}

Result<void> S3Store::write_record(std::string_view name, std::string_view data, bool if_absent) {
  RTENV_ASSIGN_OR_RETURN(std::string key, record_key(name));
  Request put("PUT", key);
  put.body = data;
  put.content_type = "application/octet-stream";
  put.if_none_match = if_absent;
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(put));
  // 409: a conditional write raced another one on the same key.
  if (if_absent && (resp.status == 412 || resp.status == 409)) {
    return make_error(ErrorCode::kAlreadyExists, "record {} exists in store {}", name, url());
  }
  if (resp.status != 200) return failure(put, resp);
  return ok_result();
}

Result<void> S3Store::create_record(std::string_view name, std::string_view data) {
  return write_record(name, data, /*if_absent=*/true);
}

Result<void> S3Store::put_record(std::string_view name, std::string_view data) {
  return write_record(name, data, /*if_absent=*/false);
}

Result<std::string> S3Store::get_record(std::string_view name) {
  RTENV_ASSIGN_OR_RETURN(std::string key, record_key(name));
  Request get("GET", key);
  // Records are small values: a bigger object is not read into memory.
  MemorySink body(kMaxRecordBytes, fmt::format("record {} in store {}", name, url()));
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(get, &body));
  if (resp.status == 404 && xml_text(resp.body, "Code") != "NoSuchBucket") {
    return make_error(ErrorCode::kNotFound, "record {} is not in store {}", name, url());
  }
  if (resp.status != 200) return failure(get, resp);
  return std::move(body.data);
}

Result<bool> S3Store::remove_record(std::string_view name) {
  RTENV_ASSIGN_OR_RETURN(std::string key, record_key(name));
  Request head("HEAD", key);
  RTENV_ASSIGN_OR_RETURN(HttpResponse there, send(head));
  if (there.status == 404) return false;
  Request del("DELETE", key);
  RTENV_ASSIGN_OR_RETURN(HttpResponse resp, send(del));
  if (resp.status != 204 && resp.status != 200) return failure(del, resp);
  return true;
}

}  // namespace rtenv::store
