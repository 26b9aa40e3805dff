#include "env/image_ref.h"

#include <algorithm>

#include <fmt/format.h>

namespace rtenv::env {

namespace {

bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
         c == '/';
}

Error invalid(std::string_view text, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument, "image reference '{}': {}", text, why);
}

Result<void> check_tag(std::string_view text, std::string_view tag) {
  if (tag.empty() || tag.size() > 128 || !std::all_of(tag.begin(), tag.end(), is_tag_char) ||
      tag[0] == '.' || tag[0] == '-') {
    return invalid(text, fmt::format("'{}' is not a valid tag", tag));
  }
  return ok_result();
}

// Splits "rest@sha256:hex" into rest and the digest.
Result<std::string_view> take_digest(std::string_view text, std::string_view* rest,
                                     std::optional<Digest>* digest) {
  size_t at = rest->rfind('@');
  if (at == std::string_view::npos) return *rest;
  auto d = parse_oci_digest(rest->substr(at + 1), "digest");
  if (!d) return invalid(text, d.error().message());
  *digest = *d;
  *rest = rest->substr(0, at);
  return *rest;
}

}  // namespace

std::string oci_digest(const Digest& d) { return "sha256:" + d.hex(); }

Result<Digest> parse_oci_digest(std::string_view text, std::string_view what) {
  if (!text.starts_with("sha256:")) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} '{}' is not a sha256 digest (sha256:<64 hex digits>)", what, text);
  }
  auto d = Digest::from_hex(text.substr(7));
  if (!d || text.size() != 7 + 64) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{} '{}' is not a sha256 digest (sha256:<64 hex digits>)", what, text);
  }
  return *d;
}

Result<ImageRef> ImageRef::parse(std::string_view text) {
  ImageRef ref;
  if (text.empty()) return invalid(text, "empty");
  if (text.size() > 4096) return invalid(text.substr(0, 64), "longer than 4096 characters");
  std::string_view rest = text;
  if (rest.starts_with("oci:") || rest.starts_with("oci-archive:")) {
    bool archive = rest.starts_with("oci-archive:");
    ref.source = archive ? Source::kOciArchive : Source::kOciLayout;
    rest.remove_prefix(archive ? 12 : 4);
    RTENV_TRY(take_digest(text, &rest, &ref.digest));
    // A tag follows the last ':' after the last '/': paths may hold ':' in directory names.
    size_t slash = rest.rfind('/');
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
      ref.tag = std::string(rest.substr(colon + 1));
      RTENV_TRY(check_tag(text, ref.tag));
      rest = rest.substr(0, colon);
    }
    if (rest.empty() || rest[0] != '/') {
      return invalid(text,
                     fmt::format("{} needs an absolute path", archive ? "oci-archive:" : "oci:"));
    }
    ref.path = std::string(rest);
    return ref;
  }
  if (rest.find("://") != std::string_view::npos) {
    return invalid(text, "a registry reference has no scheme (write host/name:tag)");
  }
  RTENV_TRY(take_digest(text, &rest, &ref.digest));
  size_t slash = rest.find('/');
  std::string_view first = slash == std::string_view::npos ? "" : rest.substr(0, slash);
  // The first part is a registry if it looks like a host: a '.', a ':' or "localhost".
  if (!first.empty() && (first.find('.') != std::string_view::npos ||
                         first.find(':') != std::string_view::npos || first == "localhost")) {
    ref.registry = std::string(first);
    rest = rest.substr(slash + 1);
  } else {
    ref.registry = "docker.io";
  }
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    RTENV_TRY(check_tag(text, ref.tag));
    rest = rest.substr(0, colon);
  }
  if (rest.empty() || rest.size() > 255 || !std::all_of(rest.begin(), rest.end(), is_name_char) ||
      rest.front() == '/' || rest.back() == '/' || rest.find("//") != std::string_view::npos) {
    return invalid(text,
                   "the name must be lowercase letters, digits, '.', '_', '-' and '/' separators");
  }
  ref.repository = std::string(rest);
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

std::string ImageRef::to_string() const {
  std::string out;
  switch (source) {
    case Source::kOciLayout:
      out = "oci:" + path;
      break;
    case Source::kOciArchive:
      out = "oci-archive:" + path;
      break;
    case Source::kRegistry:
      out = registry + "/" + repository;
      break;
  }
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + oci_digest(*digest);
  return out;
}

std::string ImageRef::pinned(const Digest& d) const {
  ImageRef p = *this;
  p.tag.clear();
  p.digest = d;
  return p.to_string();
}

std::string ImageRef::manifest_reference() const { return digest ? oci_digest(*digest) : tag; }

}  // namespace rtenv::env
