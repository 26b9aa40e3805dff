#pragma once
// What `image_uri` (or `container.image`) names: an image in a registry, an OCI image layout
// directory, or an OCI archive file; with a tag, a digest or both. Pure: no I/O.

#include <optional>
#include <string>
#include <string_view>

#include "util/digest.h"
#include "util/result.h"

namespace rtenv::env {

/// A parsed image reference. Registry references are normalized as Docker does: no registry
/// means docker.io, a one-part name on docker.io is under library/, no tag and no digest means
/// the tag "latest".
struct ImageRef {
  enum class Source { kRegistry, kOciLayout, kOciArchive };
  Source source = Source::kRegistry;
  std::string registry;    ///< kRegistry: "docker.io", "127.0.0.1:5000"
  std::string repository;  ///< kRegistry: "library/busybox"
  std::string path;        ///< kOciLayout: the layout directory; kOciArchive: the archive file
  std::string tag;         ///< may be empty when a digest is given
  std::optional<Digest> digest;

  /// Parses `text`: "oci:/abs/dir[:tag][@sha256:hex]", "oci-archive:/abs/file.tar[:tag][@…]",
  /// or "[host[:port]/]name[:tag][@sha256:hex]". kInvalidArgument naming what is wrong.
  static Result<ImageRef> parse(std::string_view text);

  /// The reference as text (the form parse() reads back).
  std::string to_string() const;
  /// The reference pinned to the manifest `d`: the tag dropped, "@sha256:<hex>" appended.
  std::string pinned(const Digest& d) const;
  /// What the manifest is asked for by: "sha256:<hex>" if pinned, else the tag.
  std::string manifest_reference() const;
};

/// "sha256:<hex>" of a digest.
std::string oci_digest(const Digest& d);
/// Parses "sha256:<64 hex>"; kInvalidArgument (naming `what`) for anything else.
Result<Digest> parse_oci_digest(std::string_view text, std::string_view what);

}  // namespace rtenv::env
