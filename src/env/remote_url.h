#pragma once
// A URL a runtime_env names a package by (a zip, a wheel), as the submitting side reads it: what
// to fetch, the digest a "#sha256=" fragment promises, the file name. No network code: the lean
// binary may use it.

#include <optional>
#include <string>
#include <string_view>

#include "util/digest.h"
#include "util/result.h"

namespace rtenv::env {

struct RemoteUrl {
  std::string url;               ///< what is fetched: the URL without its fragment
  std::string scheme;            ///< "https", "s3", "file", ...
  std::optional<Digest> sha256;  ///< from a "#sha256=<64 hex digits>" fragment

  /// Splits `text` ("scheme://...[#sha256=<hex>]"). kInvalidArgument for a fragment that is
  /// not sha256=<64 hex digits>, naming the URL (credentials hidden).
  static Result<RemoteUrl> parse(std::string_view text);

  /// The last segment of the URL's path (no query), percent-decoded: "x-1.0-py3-none-any.whl".
  /// Empty if it has none, or if it decodes to something that is not a file name.
  std::string file_name() const;
  /// The URL for messages: credentials hidden.
  std::string shown() const;
};

}  // namespace rtenv::env
