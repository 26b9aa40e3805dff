#pragma once
// Unpacking archives (.zip, .tar.gz, ...) from a path or a URL: the part of setup that needs
// libarchive, kept apart (with env/remote_fetch.h) so binaries that never unpack archives do not
// load it.

#include <string>

#include "env/field.h"
#include "env/home.h"

namespace rtenv::env {

/// An UploadOptions::unpack_archive for this home: a URL is fetched with `fetch` (the one remote
/// fetch of setup, env/remote_fetch.h; a download lands in $RTENV_HOME/tmp and is removed
/// afterwards), a local path read in place, and the archive extracted safely
/// (pack::extract_archive, the format read from the path's or the URL's file name) within
/// `max_bytes`. kInvalidArgument for a name that is not an archive's.
UploadOptions::UnpackArchive archive_importer(const Home& home, UploadOptions::Fetch fetch,
                                              uint64_t max_bytes);

/// Lets this process's node caches unpack image layers (pack::extract_layer, each layer within
/// the package limit, max_package_size): called once at start by the binaries that link
/// libarchive.
void enable_image_layers();

}  // namespace rtenv::env
