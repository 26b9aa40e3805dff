#pragma once
// Unpacking zip packages from a path or a URL: the part of setup that needs libarchive and
// libcurl, kept apart so binaries that never unpack zips do not load them.

#include <string>

#include "env/home.h"
#include "env/setup.h"

namespace rtenv::env {

/// An UploadOptions::unpack_zip for this home: downloads http(s) URLs into $RTENV_HOME/tmp
/// first (reporting it), reads file:// URLs and local paths in place, and extracts safely
/// (pack::extract_zip) within `max_bytes`.
std::function<Result<void>(const std::string&, const fs::path&)> zip_importer(const Home& home,
                                                                              uint64_t max_bytes,
                                                                              SetupReporter report);

}  // namespace rtenv::env
