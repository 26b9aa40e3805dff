#include "env/archive_import.h"

#include <fmt/format.h>

#include "env/fields/fields.h"
#include "env/remote_url.h"
#include "pack/archive.h"
#include "util/fs.h"
#include "util/redact.h"

namespace rtenv::env {

UploadOptions::UnpackArchive archive_importer(const Home& home, UploadOptions::Fetch fetch,
                                              uint64_t max_bytes) {
  return [home, fetch, max_bytes](const std::string& source, const fs::path& dest) -> Result<void> {
    bool remote = spec::is_uri(source);
    std::string name = source;
    if (remote) {
      RTENV_ASSIGN_OR_RETURN(RemoteUrl url, RemoteUrl::parse(source));
      name = url.file_name();
    }
    auto format = pack::archive_format_of(name);
    if (!format) {
      return make_error(ErrorCode::kInvalidArgument, "{} is not an archive rtenv unpacks ({})",
                        redact_url_credentials(source),
                        "a .zip, .tar.gz, .tgz, .tar.xz, .tar.bz2 or .tar file");
    }
    fs::path archive_path = source;
    fs::path download_path;
    if (remote) {
      download_path = home.tmp() / unique_name("download");
      RTENV_ASSIGN_OR_RETURN(archive_path, fetch(source, download_path));
    }
    auto extracted = pack::extract_archive(archive_path, *format, dest, max_bytes);
    if (!download_path.empty()) {
      std::error_code ec;
      fs::remove(download_path, ec);
    }
    if (!extracted) {
      if (!remote) return extracted.error();
      // The download's name means nothing to the user: the URL does.
      std::string message = extracted.error().message();
      std::string tmp = archive_path.string();
      if (size_t at = message.find(tmp); at != std::string::npos) {
        message.replace(at, tmp.size(), redact_url_credentials(source));
      }
      return Error(extracted.error().code(), std::move(message));
    }
    return ok_result();
  };
}

void enable_image_layers() {
  set_layer_extractor(
      [](const fs::path& blob, const fs::path& dest, uint64_t max_bytes) -> Result<void> {
        RTENV_TRY(pack::extract_layer(blob, dest, max_bytes));
        return ok_result();
      });
}

}  // namespace rtenv::env
