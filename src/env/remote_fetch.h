#pragma once
// Fetching what a runtime_env names by URL (a remote archive, a wheel) to a local file on the
// submitting side: the one download path of setup. http(s):// through download(), s3:// through
// the S3 store's client (its settings and signing), file:// read in place. Needs libcurl, so only
// binaries with network support link it; setup reaches it through UploadOptions.

#include <cstdint>
#include <string>

#include "env/field.h"
#include "env/home.h"

namespace rtenv::env {

/// Fetches `url` (http://, https://, s3:// or file://, with an optional "#sha256=<hex>"
/// fragment): downloads it to the new file `dest` and returns `dest`, or for file:// returns the
/// file itself (nothing copied). At most `max_bytes` (kTooLarge). The fragment's digest is checked
/// against the bytes: kCorrupt naming the URL, the expected and the actual digest. Errors name the
/// URL with its credentials hidden: kNotFound "...: not found (HTTP 404)", kUnavailable /
/// kTimeout with the number of attempts once the retries ran out, kUnsupported for another
/// scheme. Nothing is left at `dest` on error. S3 settings: the home's configuration
/// (s3_endpoint, ca_bundle) over the AWS variables and files.
Result<fs::path> fetch_remote(const Home& home, const std::string& url, const fs::path& dest,
                              uint64_t max_bytes, const SetupReporter& report);

/// Gives `options` what a binary with network and archive support does with remote sources:
/// `fetch` (fetch_remote) and `unpack_archive` (archive_importer on that fetch), within
/// options->max_package_bytes, reporting through options->report. Set the limit and the reporter
/// first.
void add_remote_sources(const Home& home, UploadOptions* options);

}  // namespace rtenv::env
