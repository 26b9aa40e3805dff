#pragma once
// The OCI image format's JSON documents (and Docker's v2 schema 2, which has the same shape):
// image index, image manifest, image config. Parsed from untrusted text into types, with bounds
// on size, depth and counts. Pure: no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/digest.h"
#include "util/result.h"

namespace rtenv::env {

inline constexpr const char* kOciIndexType = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kDockerListType =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifestType =
    "application/vnd.docker.distribution.manifest.v2+json";

/// The biggest index, manifest or config document read (bigger ones are refused).
inline constexpr uint64_t kMaxImageDocumentBytes = uint64_t{4} << 20;
/// The most layers an image may have.
inline constexpr size_t kMaxImageLayers = 256;

/// How a layer's tar is compressed.
enum class LayerCompression { kNone, kGzip, kZstd };

/// A content descriptor: what a document points to.
struct OciDescriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::string os, architecture, variant;  ///< an index entry's platform
  std::string ref_name;  ///< an OCI layout's "org.opencontainers.image.ref.name" annotation
};

struct OciIndex {
  std::vector<OciDescriptor> manifests;
};

struct OciManifest {
  OciDescriptor config;
  std::vector<OciDescriptor> layers;
};

/// What the image says about running it.
struct OciImageConfig {
  std::string os, architecture;
  std::vector<std::string> env;  ///< "NAME=value"
  std::vector<std::string> entrypoint, cmd;
  std::string working_dir;
};

bool is_index_type(std::string_view media_type);
bool is_manifest_type(std::string_view media_type);
/// The compression of a layer of `media_type`; kUnsupported naming it for a type that is not a
/// tar layer (foreign layers, encrypted layers, artifacts).
Result<LayerCompression> layer_compression(std::string_view media_type);

/// The media type a document declares ("mediaType"), or "" when it has none or is not JSON.
std::string declared_media_type(std::string_view text);

/// Each parser: kCorrupt naming `what` when the text is over kMaxImageDocumentBytes, nested over
/// 32 levels, not JSON, or not the document's shape.
Result<OciIndex> parse_oci_index(std::string_view text, std::string_view what);
Result<OciManifest> parse_oci_manifest(std::string_view text, std::string_view what);
Result<OciImageConfig> parse_oci_config(std::string_view text, std::string_view what);

/// The node's platform as OCI names it: {"linux", "amd64" | "arm64" | ...}.
struct Platform {
  std::string os, architecture, variant;
};
Platform node_platform();

/// The entry of `index` for `platform`; kNotFound naming `image` and the platforms it has.
Result<OciDescriptor> select_platform(const OciIndex& index, const Platform& platform,
                                      std::string_view image);

/// The entry of an OCI layout's index.json tagged `tag` ("org.opencontainers.image.ref.name");
/// with an empty tag, the only entry. kNotFound naming `image` and the tags it has.
Result<OciDescriptor> select_tag(const OciIndex& index, std::string_view tag,
                                 std::string_view image);

}  // namespace rtenv::env
