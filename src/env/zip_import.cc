#include "env/zip_import.h"

#include <fmt/format.h>

#include "pack/archive.h"
#include "util/fs.h"

namespace rtenv::env {

std::function<Result<void>(const std::string&, const fs::path&)> zip_importer(
    const Home& home, UploadOptions::Fetch fetch, uint64_t max_bytes) {
  return [home, fetch, max_bytes](const std::string& source, const fs::path& dest) -> Result<void> {
    fs::path zip_path = source;
    fs::path download_path;
    if (spec::is_uri(source)) {
      download_path = home.tmp() / unique_name("download");
      RTENV_ASSIGN_OR_RETURN(zip_path, fetch(source, download_path));
    }
    auto extracted = pack::extract_zip(zip_path, dest, max_bytes);
    if (!download_path.empty()) {
      std::error_code ec;
      fs::remove(download_path, ec);
    }
    if (!extracted) return extracted.error();
    return ok_result();
  };
}

}  // namespace rtenv::env
