#include "env/remote_fetch.h"

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "env/archive_import.h"
#include "env/download.h"
#include "env/image_registry.h"
#include "env/remote_url.h"
#include "pack/packer.h"
#include "store/s3_store.h"

namespace rtenv::env {

namespace {

Result<void> download_s3(const Home& home, const RemoteUrl& url, const fs::path& dest,
                         uint64_t max_bytes) {
  RTENV_ASSIGN_OR_RETURN(store::S3ObjectUrl object, store::S3ObjectUrl::parse(url.url));
  store::StoreOptions options;
  options.ca_bundle = home.config().ca_bundle().value_or("");
  options.s3_endpoint = home.config().s3_endpoint().value_or("");
  options.s3_touch_interval_ms =
      static_cast<int64_t>(home.config().s3_touch_interval_seconds() * 1000);
  auto settings = store::s3_settings_for(options);
  if (!settings) return settings.error().with_context(url.shown());
  RTENV_ASSIGN_OR_RETURN(auto bucket, store::S3Store::open("s3://" + object.bucket, *settings));
  RTENV_TRY(bucket->get_object_to_file(object.key, dest, max_bytes));
  return ok_result();
}

Result<Digest> hash_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "cannot read {}: {}", path.string(), std::strerror(errno));
  }
  auto digest = hash_fd(fd, path.string());
  ::close(fd);
  return digest;
}

}  // namespace

Result<fs::path> fetch_remote(const Home& home, const std::string& text, const fs::path& dest,
                              uint64_t max_bytes, const SetupReporter& report) {
  RTENV_ASSIGN_OR_RETURN(RemoteUrl url, RemoteUrl::parse(text));
  fs::path got;
  if (url.scheme == "file") {
    got = url.url.substr(std::string_view("file://").size());
    std::error_code ec;
    if (!fs::is_regular_file(got, ec)) {
      return make_error(ErrorCode::kNotFound, "{}: not found (no such file)", url.shown());
    }
    if (uint64_t size = fs::file_size(got, ec); !ec && size > max_bytes) {
      return make_error(ErrorCode::kTooLarge, "{} is larger than the package limit of {}",
                        url.shown(), pack::format_bytes(max_bytes));
    }
  } else {
    if (report) report(fmt::format("downloading {}", url.shown()));
    Result<void> r = ok_result();
    if (url.scheme == "http" || url.scheme == "https") {
      r = download(url.url, dest, max_bytes, home.config().ca_bundle().value_or(""));
    } else if (url.scheme == "s3") {
      r = download_s3(home, url, dest, max_bytes);
    } else {
      r = make_error(ErrorCode::kUnsupported,
                     "{}: cannot fetch {}:// URLs; use http://, https://, s3:// or file://",
                     url.shown(), url.scheme);
    }
    if (!r && r.error().code() == ErrorCode::kTooLarge) {
      r = make_error(ErrorCode::kTooLarge,
                     "{} is larger than the package limit of {}; raise max_package_size",
                     url.shown(), pack::format_bytes(max_bytes));
    }
    if (!r) return r.error();
    got = dest;
  }
  if (url.sha256) {
    auto digest = hash_file(got);
    if (digest && *digest != *url.sha256) {
      digest = make_error(ErrorCode::kCorrupt,
                          "{}: the file's SHA-256 does not match the URL's #sha256: expected {}, "
                          "got {}; fix the fragment or the file",
                          url.shown(), url.sha256->hex(), digest->hex());
    }
    if (!digest) {
      if (got == dest) {
        std::error_code ec;
        fs::remove(dest, ec);
      }
      return digest.error();
    }
  }
  return got;
}

void add_remote_sources(const Home& home, UploadOptions* options) {
  uint64_t max_bytes = options->max_package_bytes;
  SetupReporter report = options->report;
  options->fetch = [home, max_bytes, report](const std::string& url,
                                             const fs::path& dest) -> Result<fs::path> {
    return fetch_remote(home, url, dest, max_bytes, report);
  };
  options->unpack_archive = archive_importer(home, options->fetch, max_bytes);
  options->import_image = image_importer(home, report);
}

}  // namespace rtenv::env
