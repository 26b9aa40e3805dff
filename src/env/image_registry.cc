#include "env/image_registry.h"

#include <openssl/evp.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pack/archive.h"
#include "store/curl_http.h"
#include "util/fs.h"

namespace rtenv::env {

namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxTokenBytes = uint64_t{1} << 20;
constexpr uint64_t kMaxAuthFileBytes = uint64_t{4} << 20;

const char* kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::string url_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The parameters of a WWW-Authenticate challenge: scheme, then key="value" pairs.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};

Challenge parse_challenge(std::string_view text) {
  Challenge c;
  size_t sp = text.find(' ');
  c.scheme = std::string(text.substr(0, sp));
  std::transform(c.scheme.begin(), c.scheme.end(), c.scheme.begin(), ::tolower);
  if (sp == std::string_view::npos) return c;
  std::string_view rest = text.substr(sp + 1);
  while (!rest.empty()) {
    while (!rest.empty() && (rest[0] == ' ' || rest[0] == ',')) rest.remove_prefix(1);
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos) break;
    std::string key(rest.substr(0, eq));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest[0] == '"') {
      size_t end = rest.find('"', 1);
      if (end == std::string_view::npos) break;
      value = std::string(rest.substr(1, end - 1));
      rest.remove_prefix(end + 1);
    } else {
      size_t end = rest.find(',');
      value = std::string(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    c.params[key] = value;
  }
  return c;
}

// "user:password" for `host` from docker's config.json, or "".
std::string credentials_for(const std::string& auth_file, const std::string& host) {
  if (auth_file.empty()) return "";
  std::error_code ec;
  if (!fs::exists(auth_file, ec) || fs::file_size(auth_file, ec) > kMaxAuthFileBytes) return "";
  auto text = read_file(auth_file);
  if (!text) return "";
  Json j = Json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("auths") || !j["auths"].is_object()) return "";
  std::vector<std::string> keys{host, "https://" + host, "http://" + host};
  if (host == "registry-1.docker.io" || host == "docker.io") {
    keys.push_back("https://index.docker.io/v1/");
    keys.push_back("docker.io");
  }
  for (const auto& k : keys) {
    auto it = j["auths"].find(k);
    if (it == j["auths"].end() || !it->is_object()) continue;
    auto auth = it->find("auth");
    if (auth == it->end() || !auth->is_string()) continue;
    const std::string& enc = auth->get_ref<const std::string&>();
    std::string out(enc.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(enc.data()),
                            static_cast<int>(enc.size()));
    if (n < 0) continue;
    out.resize(static_cast<size_t>(n));
    while (!out.empty() && out.back() == '\0') out.pop_back();  // the padding's
    if (out.find(':') != std::string::npos) return out;
  }
  return "";
}

std::string registry_host(const ImageRef& ref) {
  return ref.registry == "docker.io" ? "registry-1.docker.io" : ref.registry;
}

std::optional<Error> retry_5xx(const store::HttpResponse& r) {
  if (r.status >= 500 || r.status == 429) {
    return make_error(ErrorCode::kUnavailable, "the registry answered HTTP {}", r.status);
  }
  return std::nullopt;
}

}  // namespace

RegistrySource::RegistrySource(ImageRef ref, RegistryAccess access)
    : ref_(std::move(ref)), access_(std::move(access)), image_(ref_.to_string()) {}

std::string RegistrySource::base_url() const {
  const std::string host = registry_host(ref_);
  bool insecure = std::find(access_.insecure.begin(), access_.insecure.end(), ref_.registry) !=
                  access_.insecure.end();
  return fmt::format("{}://{}", insecure ? "http" : "https", host);
}

Result<void> RegistrySource::authenticate(const std::string& header) {
  Challenge c = parse_challenge(header);
  const std::string host = registry_host(ref_);
  std::string creds = credentials_for(access_.auth_file, ref_.registry);
  if (creds.empty() && host != ref_.registry) creds = credentials_for(access_.auth_file, host);
  if (c.scheme == "basic") {
    if (creds.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image {}: the registry {} asks for credentials, and {} has none for it "
                        "(log in with docker or podman login, or set registry_auth_file)",
                        image_, ref_.registry,
                        access_.auth_file.empty() ? "no auth file" : access_.auth_file);
    }
    authorization_ = "Authorization: Basic " + base64(creds);
    return ok_result();
  }
  if (c.scheme != "bearer" || c.params["realm"].empty()) {
    return make_error(ErrorCode::kUnsupported,
                      "image {}: the registry {} asks for an authentication rtenv does not speak "
                      "('{}')",
                      image_, ref_.registry, c.scheme);
  }
  std::string realm = c.params["realm"];
  if (!realm.starts_with("https://") && !realm.starts_with("http://")) {
    return make_error(ErrorCode::kCorrupt,
                      "image {}: the registry's token service '{}' is not a URL", image_, realm);
  }
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  if (!c.params["service"].empty()) url += "service=" + url_escape(c.params["service"]) + "&";
  url += "scope=" + url_escape(c.params.count("scope") ? c.params["scope"]
                                                       : "repository:" + ref_.repository + ":pull");
  store::HttpRequest req;
  req.method = "GET";
  req.url = url;
  req.description = fmt::format("GET the registry token for {}", image_);
  req.ca_bundle = access_.ca_bundle;
  if (!creds.empty()) req.headers.push_back("Authorization: Basic " + base64(creds));
  store::MemorySink sink(kMaxTokenBytes, "the registry's token answer");
  req.body_sink = &sink;
  RTENV_ASSIGN_OR_RETURN(auto resp, store::http_send(req, store::RetryPolicy{}, retry_5xx));
  if (resp.status == 401 || resp.status == 403) {
    return make_error(ErrorCode::kInvalidArgument,
                      "image {}: the registry {} refused {} (HTTP {}); log in with docker or "
                      "podman login, or set registry_auth_file",
                      image_, ref_.registry, creds.empty() ? "anonymous access" : "the credentials",
                      resp.status);
  }
  if (resp.status != 200) {
    return make_error(ErrorCode::kUnavailable,
                      "image {}: the registry's token service answered HTTP {}", image_,
                      resp.status);
  }
  Json j = Json::parse(sink.data, nullptr, false);
  std::string token;
  if (j.is_object()) {
    for (const char* k : {"token", "access_token"}) {
      if (j.contains(k) && j[k].is_string() && !j[k].get<std::string>().empty()) {
        token = j[k].get<std::string>();
        break;
      }
    }
  }
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
    return make_error(ErrorCode::kCorrupt, "image {}: the registry's token service gave no token",
                      image_);
  }
  authorization_ = "Authorization: Bearer " + token;
  return ok_result();
}

Result<store::HttpResponse> RegistrySource::get(const std::string& path,
                                                const std::vector<std::string>& headers,
                                                store::BodySink* sink) {
  std::string url = base_url() + path;
  bool authenticated = false;
  for (int hop = 0; hop < 6; ++hop) {
    store::HttpRequest req;
    req.method = "GET";
    req.url = url;
    req.headers = headers;
    bool same_host = url.starts_with(base_url() + "/");
    if (!authorization_.empty() && same_host) req.headers.push_back(authorization_);
    req.description = fmt::format("GET {} of image {}", path, image_);
    req.ca_bundle = access_.ca_bundle;
    req.body_sink = sink;
    RTENV_ASSIGN_OR_RETURN(auto resp, store::http_send(req, store::RetryPolicy{}, retry_5xx));
    if (resp.status == 401 && same_host && !authenticated) {
      std::string challenge = resp.header("www-authenticate");
      if (challenge.empty()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "image {}: the registry {} refused access (HTTP 401) without saying how "
                          "to authenticate",
                          image_, ref_.registry);
      }
      RTENV_TRY(authenticate(challenge));
      authenticated = true;
      continue;
    }
    if (resp.status == 401 || resp.status == 403) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image {}: the registry {} refused the credentials (HTTP {}); log in with "
                        "docker or podman login, or set registry_auth_file",
                        image_, ref_.registry, resp.status);
    }
    if (resp.status >= 300 && resp.status < 400 && !resp.header("location").empty()) {
      // Blob storage behind a redirect: followed, without the registry's credentials.
      std::string location = resp.header("location");
      if (location.starts_with("/")) location = base_url() + location;
      if (!location.starts_with("https://") && !location.starts_with("http://")) {
        return make_error(ErrorCode::kCorrupt, "image {}: the registry redirected to '{}'", image_,
                          location);
      }
      url = location;
      continue;
    }
    return resp;
  }
  return make_error(ErrorCode::kUnavailable, "image {}: too many redirects for {}", image_, path);
}

Result<std::pair<std::string, std::string>> RegistrySource::document(const std::string& reference) {
  store::MemorySink sink(kMaxImageDocumentBytes,
                         fmt::format("image {}: manifest {}", image_, reference));
  RTENV_ASSIGN_OR_RETURN(auto resp,
                         get(fmt::format("/v2/{}/manifests/{}", ref_.repository, reference),
                             {kManifestAccept}, &sink));
  if (resp.status == 404) {
    return make_error(ErrorCode::kNotFound, "image {}: the registry {} has no manifest '{}'",
                      image_, ref_.registry, reference);
  }
  if (resp.status != 200) {
    return make_error(ErrorCode::kUnavailable,
                      "image {}: the registry answered HTTP {} for manifest {}", image_,
                      resp.status, reference);
  }
  std::string type = resp.header("content-type");
  if (size_t semi = type.find(';'); semi != std::string::npos) type.resize(semi);
  return std::make_pair(std::move(sink.data), type);
}

Result<void> RegistrySource::blob_to_file(const OciDescriptor& d, const fs::path& dest) {
  store::FileSink sink(dest.string(), d.size,
                       fmt::format("image {}: blob {}", image_, oci_digest(d.digest)));
  auto resp = get(fmt::format("/v2/{}/blobs/{}", ref_.repository, oci_digest(d.digest)), {}, &sink);
  auto finished = sink.finish();
  if (!resp) return resp.error();
  if (resp->status == 404) {
    return make_error(ErrorCode::kNotFound, "image {}: the registry {} has no blob {}", image_,
                      ref_.registry, oci_digest(d.digest));
  }
  if (resp->status != 200) {
    return make_error(ErrorCode::kUnavailable,
                      "image {}: the registry answered HTTP {} for blob {}", image_, resp->status,
                      oci_digest(d.digest));
  }
  if (!finished) return finished.error();
  return ok_result();
}

UploadOptions::ImportImage image_importer(const Home& home, const SetupReporter& report) {
  return [home, report](const std::string& text, store::BlobStore& store) -> Result<Digest> {
    RTENV_ASSIGN_OR_RETURN(ImageRef ref, ImageRef::parse(text));
    if (ref.source == ImageRef::Source::kOciLayout) {
      OciLayoutSource source(ref.path, ref.to_string());
      RTENV_ASSIGN_OR_RETURN(auto imported, import_image(source, ref, store, home.tmp(), report));
      return imported.manifest;
    }
    if (ref.source == ImageRef::Source::kOciArchive) {
      RTENV_TRY(make_dirs(home.tmp()));
      fs::path dir = home.tmp() / unique_name("oci-archive");
      auto extracted = pack::extract_archive(ref.path, pack::ArchiveFormat::kTar, dir,
                                             home.config().max_package_size());
      if (!extracted) return extracted.error().with_context("image " + ref.to_string());
      OciLayoutSource source(dir, ref.to_string());
      auto imported = import_image(source, ref, store, home.tmp(), report);
      (void)remove_tree(dir);
      if (!imported) return imported.error();
      return imported->manifest;
    }
    RegistryAccess access;
    access.insecure = home.config().insecure_registries();
    access.auth_file = home.config().registry_auth_file().value_or("");
    access.ca_bundle = home.config().ca_bundle().value_or("");
    RegistrySource source(ref, access);
    RTENV_ASSIGN_OR_RETURN(auto imported, import_image(source, ref, store, home.tmp(), report));
    return imported.manifest;
  };
}

}  // namespace rtenv::env
