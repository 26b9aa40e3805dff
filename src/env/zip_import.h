#pragma once
// Unpacking zip packages from a path or a URL: the part of setup that needs libarchive, kept
// apart (with env/remote_fetch.h) so binaries that never unpack zips do not load it.

#include <string>

#include "env/field.h"
#include "env/home.h"

namespace rtenv::env {

/// An UploadOptions::unpack_zip for this home: a URL is fetched with `fetch` (the one remote
/// fetch of setup, env/remote_fetch.h; a download lands in $RTENV_HOME/tmp and is removed
/// afterwards), a local path read in place, and the zip extracted safely (pack::extract_zip)
/// within `max_bytes`.
std::function<Result<void>(const std::string&, const fs::path&)> zip_importer(
    const Home& home, UploadOptions::Fetch fetch, uint64_t max_bytes);

}  // namespace rtenv::env
