#include "env/remote_url.h"

#include <fmt/format.h>

#include "util/digest.h"
#include "util/redact.h"

namespace rtenv::env {

Result<RemoteUrl> RemoteUrl::parse(std::string_view text) {
  RemoteUrl out;
  size_t scheme_end = text.find("://");
  out.scheme = scheme_end == std::string_view::npos ? "" : std::string(text.substr(0, scheme_end));
  size_t hash = text.find('#');
  out.url = std::string(text.substr(0, hash));
  if (hash == std::string_view::npos) return out;
  std::string_view fragment = text.substr(hash + 1);
  constexpr std::string_view kKey = "sha256=";
  auto digest = fragment.starts_with(kKey) && fragment.size() == kKey.size() + 64
                    ? Digest::from_hex(fragment.substr(kKey.size()))
                    : Result<Digest>(Error(ErrorCode::kInvalidArgument, ""));
  if (!digest) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: the URL's fragment must be #sha256=<64 hex digits> (the SHA-256 of "
                      "the file), not #{}",
                      redact_url_credentials(out.url), fragment);
  }
  out.sha256 = *digest;
  return out;
}

std::string RemoteUrl::file_name() const {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  std::string_view path(url);
  path = path.substr(0, path.find('?', start));
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash < start) return {};
  std::string_view raw = path.substr(slash + 1);
  std::string name;
  for (size_t i = 0; i < raw.size(); ++i) {
    int hi = 0, lo = 0;
    if (raw[i] == '%' && i + 2 < raw.size() && (hi = hex_digit_value(raw[i + 1])) >= 0 &&
        (lo = hex_digit_value(raw[i + 2])) >= 0) {
      name.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      name.push_back(raw[i]);
    }
  }
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    return {};
  }
  return name;
}

std::string RemoteUrl::shown() const { return redact_url_credentials(url); }

}  // namespace rtenv::env
