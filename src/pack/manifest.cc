#include "pack/manifest.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace rtenv::pack {
namespace {

constexpr std::string_view kHeader = "rtenv-manifest 1\n";

void escape_into(std::string& out, std::string_view s, bool escape_space) {
  for (char c : s) {
    switch (c) {
      case '%':
        out += "%25";
        break;
      case '\n':
        out += "%0A";
        break;
      case '\r':
        out += "%0D";
        break;
      case ' ':
        if (escape_space) {
          out += "%20";
          break;
        }
        [[fallthrough]];
      default:
        out += c;
    }
  }
}

/// The inverse of escape_into: false for anything escape_into would not have written (an
/// unknown escape, a raw CR, %20 where spaces are not escaped), so only canonical text parses.
bool unescape(std::string_view s, std::string* out, bool escape_space) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') return false;
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    std::string_view code = s.substr(i + 1, 2);
    if (code == "25")
      out->push_back('%');
    else if (code == "0A")
      out->push_back('\n');
    else if (code == "0D")
      out->push_back('\r');
    else if (code == "20" && escape_space)
      out->push_back(' ');
    else
      return false;
    i += 2;
  }
  return true;
}

bool valid_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

Error malformed(size_t line, std::string_view why) {
  return make_error(ErrorCode::kCorrupt, "malformed manifest (line {}): {}", line, why);
}

}  // namespace

std::string Manifest::serialize() {
  std::sort(entries_.begin(), entries_.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.name < b.name; });
  std::string out(kHeader);
  out.reserve(entries_.size() * 96);
  for (const auto& e : entries_) {
    out.push_back(static_cast<char>(e.kind));
    out.push_back(' ');
    if (e.kind == EntryKind::kSymlink) {
      escape_into(out, e.target, /*escape_space=*/true);
    } else {
      out += e.digest.hex();
      out.push_back(' ');
      out += std::to_string(e.size);
    }
    out.push_back(' ');
    escape_into(out, e.name, /*escape_space=*/false);
    out.push_back('\n');
  }
  return out;
}

bool looks_like_manifest(std::string_view text) { return text.starts_with(kHeader); }

Result<Manifest> Manifest::parse(std::string_view text) {
  if (!looks_like_manifest(text)) return malformed(1, "missing 'rtenv-manifest 1' header");
  text.remove_prefix(kHeader.size());
  Manifest m;
  size_t line_no = 1;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return malformed(line_no, "last line has no newline");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.size() < 3 || line[1] != ' ') return malformed(line_no, "bad entry");
    ManifestEntry e;
    char kind = line[0];
    line.remove_prefix(2);
    if (kind == 'l') {
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos) return malformed(line_no, "symlink without a name");
      if (!unescape(line.substr(0, sp), &e.target, /*escape_space=*/true) || e.target.empty()) {
        return malformed(line_no, "bad symlink target");
      }
      e.kind = EntryKind::kSymlink;
      line.remove_prefix(sp + 1);
    } else if (kind == 'd' || kind == 'f' || kind == 'x') {
      e.kind = static_cast<EntryKind>(kind);
      if (line.size() < 66 || line[64] != ' ') return malformed(line_no, "bad digest");
      auto d = Digest::from_hex(line.substr(0, 64));
      // Lowercase only, as written: one tree has one manifest text, so one digest.
      if (!d || d->hex() != line.substr(0, 64)) return malformed(line_no, "bad digest");
      e.digest = *d;
      line.remove_prefix(65);
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos) return malformed(line_no, "entry without a name");
      auto size_text = line.substr(0, sp);
      auto [ptr, ec] =
          std::from_chars(size_text.data(), size_text.data() + size_text.size(), e.size);
      if (ec != std::errc() || ptr != size_text.data() + size_text.size() || size_text.empty() ||
          (size_text.size() > 1 && size_text[0] == '0')) {
        return malformed(line_no, "bad size");
      }
      line.remove_prefix(sp + 1);
    } else {
      return malformed(line_no, fmt::format("unknown entry kind '{}'", kind));
    }
    if (!unescape(line, &e.name, /*escape_space=*/false) || !valid_name(e.name)) {
      return malformed(line_no, "bad name");
    }
    if (!m.entries_.empty() && !(m.entries_.back().name < e.name)) {
      return malformed(line_no, "entries not sorted or duplicated");
    }
    m.entries_.push_back(std::move(e));
  }
  return m;
}

Result<PackageUri> PackageUri::parse(std::string_view uri) {
  if (!is_package_uri(uri)) {
    return make_error(ErrorCode::kInvalidArgument, "'{}' is not an rtenv package URI ({}<digest>)",
                      uri, kPrefix);
  }
  auto d = Digest::from_hex(uri.substr(kPrefix.size()));
  if (!d) {
    return make_error(ErrorCode::kInvalidArgument, "'{}' is not an rtenv package URI: {}", uri,
                      d.error().message());
  }
  return PackageUri(*d);
}

}  // namespace rtenv::pack
