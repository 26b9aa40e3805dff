#include "env/oci_image.h"

#include <sys/utsname.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "env/image_ref.h"

namespace rtenv::env {

namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 32;
constexpr size_t kMaxListEntries = 4096;

Error corrupt(std::string_view what, std::string_view why) {
  return make_error(ErrorCode::kCorrupt, "{}: {}", what, why);
}

Result<Json> parse_bounded(std::string_view text, std::string_view what) {
  if (text.size() > kMaxImageDocumentBytes) {
    return corrupt(what, fmt::format("bigger than {} bytes", kMaxImageDocumentBytes));
  }
  bool too_deep = false;
  Json::parser_callback_t depth_check = [&](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxDepth) too_deep = true;
    return !too_deep;
  };
  Json j = Json::parse(text.begin(), text.end(), depth_check, /*allow_exceptions=*/false);
  if (too_deep) return corrupt(what, fmt::format("nested deeper than {} levels", kMaxDepth));
  if (j.is_discarded()) return corrupt(what, "not valid JSON");
  if (!j.is_object()) return corrupt(what, "not a JSON object");
  return j;
}

std::string string_or_empty(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<std::vector<std::string>> string_list(const Json& j, const char* key,
                                             std::string_view what) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return corrupt(what, fmt::format("{} is not a list", key));
  if (it->size() > kMaxListEntries) return corrupt(what, fmt::format("{} is too long", key));
  for (const auto& s : *it) {
    if (!s.is_string()) return corrupt(what, fmt::format("{} holds a non-string", key));
    out.push_back(s.get<std::string>());
  }
  return out;
}

Result<OciDescriptor> descriptor(const Json& j, std::string_view what) {
  if (!j.is_object()) return corrupt(what, "a descriptor is not an object");
  OciDescriptor d;
  d.media_type = string_or_empty(j, "mediaType");
  auto digest = j.find("digest");
  if (digest == j.end() || !digest->is_string()) return corrupt(what, "a descriptor has no digest");
  auto parsed = parse_oci_digest(digest->get<std::string>(), "digest");
  if (!parsed) return corrupt(what, parsed.error().message());
  d.digest = *parsed;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) {
    return corrupt(what, "a descriptor has no size (a non-negative integer)");
  }
  d.size = size->get<uint64_t>();
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    d.os = string_or_empty(*p, "os");
    d.architecture = string_or_empty(*p, "architecture");
    d.variant = string_or_empty(*p, "variant");
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    d.ref_name = string_or_empty(*a, "org.opencontainers.image.ref.name");
  }
  return d;
}

}  // namespace

bool is_index_type(std::string_view media_type) {
  return media_type == kOciIndexType || media_type == kDockerListType;
}

bool is_manifest_type(std::string_view media_type) {
  return media_type == kOciManifestType || media_type == kDockerManifestType;
}

Result<LayerCompression> layer_compression(std::string_view media_type) {
  if (media_type == "application/vnd.oci.image.layer.v1.tar") return LayerCompression::kNone;
  if (media_type == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip") {
    return LayerCompression::kGzip;
  }
  if (media_type == "application/vnd.oci.image.layer.v1.tar+zstd") return LayerCompression::kZstd;
  return make_error(ErrorCode::kUnsupported, "layers of media type '{}' are not supported",
                    media_type);
}

std::string declared_media_type(std::string_view text) {
  auto j = parse_bounded(text, "document");
  return j ? string_or_empty(*j, "mediaType") : std::string();
}

Result<OciIndex> parse_oci_index(std::string_view text, std::string_view what) {
  RTENV_ASSIGN_OR_RETURN(Json j, parse_bounded(text, what));
  auto m = j.find("manifests");
  if (m == j.end() || !m->is_array()) return corrupt(what, "an index without a manifests list");
  if (m->size() > kMaxListEntries) return corrupt(what, "too many manifests");
  OciIndex index;
  for (const auto& e : *m) {
    RTENV_ASSIGN_OR_RETURN(auto d, descriptor(e, what));
    index.manifests.push_back(std::move(d));
  }
  return index;
}

Result<OciManifest> parse_oci_manifest(std::string_view text, std::string_view what) {
  RTENV_ASSIGN_OR_RETURN(Json j, parse_bounded(text, what));
  auto version = j.find("schemaVersion");
  if (version == j.end() || !version->is_number_integer() || version->get<int64_t>() != 2) {
    return corrupt(what, "not a schema version 2 manifest");
  }
  std::string type = string_or_empty(j, "mediaType");
  if (!type.empty() && !is_manifest_type(type)) {
    return corrupt(what, fmt::format("media type '{}' is not an image manifest", type));
  }
  auto config = j.find("config");
  if (config == j.end()) return corrupt(what, "a manifest without a config");
  OciManifest out;
  RTENV_ASSIGN_OR_RETURN(out.config, descriptor(*config, what));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return corrupt(what, "a manifest without layers");
  if (layers->size() > kMaxImageLayers) {
    return corrupt(what, fmt::format("more than {} layers", kMaxImageLayers));
  }
  for (const auto& l : *layers) {
    RTENV_ASSIGN_OR_RETURN(auto d, descriptor(l, what));
    out.layers.push_back(std::move(d));
  }
  return out;
}

Result<OciImageConfig> parse_oci_config(std::string_view text, std::string_view what) {
  RTENV_ASSIGN_OR_RETURN(Json j, parse_bounded(text, what));
  OciImageConfig out;
  out.os = string_or_empty(j, "os");
  out.architecture = string_or_empty(j, "architecture");
  auto c = j.find("config");
  if (c == j.end() || c->is_null()) return out;
  if (!c->is_object()) return corrupt(what, "config is not an object");
  RTENV_ASSIGN_OR_RETURN(out.env, string_list(*c, "Env", what));
  RTENV_ASSIGN_OR_RETURN(out.entrypoint, string_list(*c, "Entrypoint", what));
  RTENV_ASSIGN_OR_RETURN(out.cmd, string_list(*c, "Cmd", what));
  out.working_dir = string_or_empty(*c, "WorkingDir");
  for (const auto& e : out.env) {
    if (e.find('=') == std::string::npos || e[0] == '=' || e.find('\0') != std::string::npos) {
      return corrupt(what, fmt::format("Env entry '{}' is not NAME=value", e));
    }
  }
  return out;
}

Platform node_platform() {
  Platform p{"linux", "", ""};
  struct utsname u {};
  ::uname(&u);
  std::string_view m = u.machine;
  if (m == "x86_64") {
    p.architecture = "amd64";
  } else if (m == "aarch64") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (m.starts_with("armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (m == "ppc64le" || m == "s390x" || m == "riscv64") {
    p.architecture = std::string(m);
  } else {
    p.architecture = std::string(m);
  }
  return p;
}

Result<OciDescriptor> select_platform(const OciIndex& index, const Platform& platform,
                                      std::string_view image) {
  const OciDescriptor* best = nullptr;
  std::vector<std::string> seen;
  for (const auto& m : index.manifests) {
    if (!is_manifest_type(m.media_type)) continue;
    seen.push_back(m.os + "/" + m.architecture + (m.variant.empty() ? "" : "/" + m.variant));
    if (m.os != platform.os || m.architecture != platform.architecture) continue;
    // An exact variant wins; an entry without one is taken if nothing better comes.
    if (m.variant == platform.variant) return m;
    if (!best && m.variant.empty()) best = &m;
  }
  if (best) return *best;
  std::string have;
  for (const auto& s : seen) have += (have.empty() ? "" : ", ") + s;
  return make_error(ErrorCode::kNotFound, "image {} has no manifest for {}/{} (it has: {})", image,
                    platform.os, platform.architecture, have.empty() ? "none" : have);
}

Result<OciDescriptor> select_tag(const OciIndex& index, std::string_view tag,
                                 std::string_view image) {
  if (tag.empty()) {
    if (index.manifests.size() == 1) return index.manifests[0];
    return make_error(ErrorCode::kNotFound, "image {} holds {} manifests; name one with :<tag>",
                      image, index.manifests.size());
  }
  std::string have;
  for (const auto& m : index.manifests) {
    if (m.ref_name == tag) return m;
    if (!m.ref_name.empty()) have += (have.empty() ? "" : ", ") + m.ref_name;
  }
  return make_error(ErrorCode::kNotFound, "image {} has no tag '{}' (it has: {})", image, tag,
                    have.empty() ? "no tags" : have);
}

}  // namespace rtenv::env
