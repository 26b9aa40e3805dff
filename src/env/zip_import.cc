#include "env/zip_import.h"

#include <cstdio>

#include <fmt/format.h>

#include "env/download.h"
#include "pack/archive.h"
#include "util/fs.h"

namespace rtenv::env {

std::function<Result<void>(const std::string&, const fs::path&)> zip_importer(
    const Home& home, uint64_t max_bytes, SetupReporter report) {
  return [home, max_bytes, report](const std::string& source,
                                   const fs::path& dest) -> Result<void> {
    fs::path zip_path = source;
    fs::path download_path;
    if (source.starts_with("file://")) {
      zip_path = source.substr(7);
    } else if (spec::is_uri(source)) {
      download_path = home.tmp() / unique_name("download");
      if (report) report(fmt::format("downloading {}", redact_url(source)));
      RTENV_TRY(download(source, download_path, max_bytes, home.config().ca_bundle().value_or("")));
      zip_path = download_path;
    }
    auto extracted = pack::extract_zip(zip_path, dest, max_bytes);
    if (!download_path.empty()) std::remove(download_path.c_str());
    if (!extracted) return extracted.error();
    return ok_result();
  };
}

}  // namespace rtenv::env
