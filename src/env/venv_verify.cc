#include "env/venv_verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <set>

#include <fmt/format.h>

namespace rtenv::env {

namespace {

// A RECORD is a few hundred bytes per installed file; this only bounds what a planted one costs.
constexpr uint64_t kMaxRecordBytes = 64 << 20;

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The requirement part of a lock line: what precedes its first option ("--hash=...").
std::string requirement_of(const std::string& line) {
  std::string out;
  size_t at = 0;
  while (at < line.size()) {
    size_t end = line.find(' ', at);
    if (end == std::string::npos) end = line.size();
    std::string_view token(line.data() + at, end - at);
    if (token.starts_with("--")) break;
    if (!out.empty()) out += ' ';
    out += token;
    at = end + 1;
  }
  return trim(out);
}

Result<PinnedDistribution> parse_pin(const std::string& line) {
  std::string req = requirement_of(line);
  PinnedDistribution pin;
  if (size_t semi = req.find(';'); semi != std::string::npos) {
    pin.conditional = true;
    req = trim(std::string_view(req).substr(0, semi));
  }
  size_t n = 0;
  while (n < req.size() && is_name_char(req[n])) ++n;
  if (n == 0) {
    return make_error(ErrorCode::kInvalidArgument, "the locked line {:?} names no distribution",
                      line);
  }
  pin.name = normalize_distribution_name(std::string_view(req).substr(0, n));
  std::string rest = trim(std::string_view(req).substr(n));
  if (rest.starts_with('[')) {  // extras
    size_t close = rest.find(']');
    rest = close == std::string::npos ? "" : trim(std::string_view(rest).substr(close + 1));
  }
  if (rest.starts_with("===")) {
    pin.version = trim(std::string_view(rest).substr(3));
  } else if (rest.starts_with("==") && rest.find_first_of(",*") == std::string::npos) {
    pin.version = trim(std::string_view(rest).substr(2));
  }
  return pin;
}

// "<name>-<version>.dist-info" -> (normalized name, version); nullopt for another name.
std::optional<std::pair<std::string, std::string>> dist_info_of(const std::string& dir_name) {
  constexpr std::string_view kSuffix = ".dist-info";
  if (!dir_name.ends_with(kSuffix)) return std::nullopt;
  std::string_view stem(dir_name.data(), dir_name.size() - kSuffix.size());
  size_t dash = stem.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == stem.size()) return std::nullopt;
  return std::make_pair(normalize_distribution_name(stem.substr(0, dash)),
                        std::string(stem.substr(dash + 1)));
}

// Versions compared as installers spell them (case aside: "1.0RC1" and "1.0rc1").
bool same_version(const std::string& a, const std::string& b) { return lower(a) == lower(b); }

struct TreeEntry {
  bool symlink = false;
  uint64_t size = 0;
};

// Every entry below `dir` that is not a directory, by path relative to it.
Result<void> list_tree(const fs::path& dir, const std::string& rel,
                       std::map<std::string, TreeEntry>& out) {
  std::error_code ec;
  fs::directory_iterator it(rel.empty() ? dir : dir / rel, ec);
  if (ec) return io_error("cannot read directory", dir / rel, ec.value());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return io_error("cannot read directory", dir / rel, ec.value());
    std::string name = it->path().filename().string();
    std::string child = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) return io_error("cannot stat", it->path(), errno);
    if (S_ISDIR(st.st_mode)) {
      RTENV_TRY(list_tree(dir, child, out));
    } else {
      out[child] = TreeEntry{!S_ISREG(st.st_mode), static_cast<uint64_t>(st.st_size)};
    }
  }
  return ok_result();
}

Result<Digest> digest_of(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return io_error("cannot open", path, errno);
  auto d = hash_fd(fd, path.string());
  ::close(fd);
  return d;
}

// What one RECORD row says a file is.
struct Listed {
  std::string hash;
  std::string size;
  std::string dist;        // "<name> <version>", for messages
  bool is_record = false;  // the RECORD itself, which lists itself without a hash
};

}  // namespace

std::string normalize_distribution_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (!out.empty() && out.back() == '-') continue;
      out += '-';
    } else {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

Result<std::vector<PinnedDistribution>> pinned_distributions(const spec::PythonPackages& locked) {
  std::vector<PinnedDistribution> out;
  for (const auto& line : locked.packages) {
    std::string t = trim(line);
    if (t.empty() || t.starts_with('-') || t.starts_with('#')) continue;
    RTENV_ASSIGN_OR_RETURN(PinnedDistribution pin, parse_pin(t));
    out.push_back(std::move(pin));
  }
  if (locked.installer == spec::Installer::kPip && locked.installer_version) {
    out.push_back(PinnedDistribution{"pip", *locked.installer_version, false});
  }
  return out;
}

Result<std::vector<RecordRow>> parse_record(std::string_view text) {
  std::vector<RecordRow> rows;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, was_quoted = false;
  auto end_row = [&]() -> Result<void> {
    fields.push_back(std::move(field));
    field.clear();
    bool blank = fields.size() == 1 && fields[0].empty() && !was_quoted;
    if (!blank) {
      if (fields.size() != 3) {
        return make_error(ErrorCode::kCorrupt, "RECORD row {} has {} fields, not 3",
                          rows.size() + 1, fields.size());
      }
      rows.push_back(RecordRow{fields[0], fields[1], fields[2]});
    }
    fields.clear();
    was_quoted = false;
    return ok_result();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"' && field.empty()) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      RTENV_TRY(end_row());
    } else if (c != '\r') {
      field += c;
    }
  }
  if (quoted) return Error(ErrorCode::kCorrupt, "RECORD ends inside a quoted field");
  if (!field.empty() || !fields.empty()) RTENV_TRY(end_row());
  return rows;
}

std::string record_hash(const Digest& digest) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto& b = digest.bytes();
  std::string out = "sha256=";
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3) {
    uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | b[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  // 32 bytes: two left over, three characters.
  uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8);
  for (int shift : {18, 12, 6}) out += kAlphabet[(v >> shift) & 63];
  return out;
}

std::optional<std::string> retarget_script_header(std::string_view text, std::string_view from,
                                                  std::string_view to) {
  if (!text.starts_with("#!") || from.empty()) return std::nullopt;
  size_t header_end = text.find('\n');
  if (header_end != std::string_view::npos) header_end = text.find('\n', header_end + 1);
  if (header_end == std::string_view::npos) header_end = text.size();
  size_t at = text.find(from);
  if (at == std::string_view::npos || at > header_end) return std::nullopt;
  char next = at + from.size() < text.size() ? text[at + from.size()] : '\n';
  if (next != '\n' && next != ' ' && next != '\'' && next != '"') return std::nullopt;
  std::string out(text);
  out.replace(at, from.size(), to);
  return out;
}

Result<void> verify_venv_files(const fs::path& dir, const fs::path& site_packages,
                               const std::vector<PinnedDistribution>& pins,
                               const std::map<std::string, Digest>& digests,
                               const std::vector<HeaderChange>& header_changes) {
  std::map<std::string, TreeEntry> tree;
  RTENV_TRY(list_tree(dir, "", tree));

  // The distributions installed, by their dist-info directories in site-packages.
  std::map<std::string, const PinnedDistribution*> pinned;
  for (const auto& p : pins) pinned[p.name] = &p;
  std::set<std::string> installed;
  std::map<std::string, Listed> listed;  // venv-relative path -> what a RECORD says
  std::error_code ec;
  const fs::path sp_abs = dir / site_packages;
  fs::directory_iterator it(sp_abs, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return io_error("cannot read directory", sp_abs, ec.value());
  }
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    auto dist = dist_info_of(name);
    if (!dist) continue;
    auto pin = pinned.find(dist->first);
    if (pin == pinned.end()) {
      return make_error(ErrorCode::kCorrupt,
                        "it installs {}, a distribution its lock does not pin ({})", name,
                        (site_packages / name).string());
    }
    if (pin->second->version && !same_version(*pin->second->version, dist->second)) {
      return make_error(ErrorCode::kCorrupt, "it installs {} {}, and its lock pins {}=={}",
                        dist->first, dist->second, dist->first, *pin->second->version);
    }
    if (!installed.insert(dist->first).second) {
      return make_error(ErrorCode::kCorrupt, "it installs {} twice", dist->first);
    }
    const fs::path record_rel = site_packages / name / "RECORD";
    auto entry = tree.find(record_rel.string());
    if (entry == tree.end() || entry->second.symlink) {
      return make_error(ErrorCode::kCorrupt, "{} has no RECORD of its files ({})", dist->first,
                        record_rel.string());
    }
    if (entry->second.size > kMaxRecordBytes) {
      return make_error(ErrorCode::kCorrupt, "{} is {} bytes, more than a RECORD can be",
                        record_rel.string(), entry->second.size);
    }
    RTENV_ASSIGN_OR_RETURN(std::string text, read_file(dir / record_rel));
    auto rows = parse_record(text);
    if (!rows) {
      return make_error(ErrorCode::kCorrupt, "{}: {}", record_rel.string(), rows.error().message());
    }
    const std::string who = dist->first + " " + dist->second;
    for (const RecordRow& row : *rows) {
      fs::path p(row.path);
      // Files outside the venv (absolute paths, or leading out of it) cannot be in the tree.
      if (p.is_absolute()) continue;
      fs::path rel = (site_packages / p).lexically_normal();
      if (rel.empty() || *rel.begin() == "..") continue;
      listed[rel.string()] = Listed{row.hash, row.size, who, false};
    }
    // RECORD lists itself without a hash: it is what the others are checked against.
    listed[record_rel.string()] = Listed{"", "", who, true};
  }
  if (ec) return io_error("cannot read directory", sp_abs, ec.value());
  for (const auto& p : pins) {
    if (!p.conditional && !installed.contains(p.name)) {
      return make_error(ErrorCode::kCorrupt, "its lock pins {}{}, which it does not install",
                        p.name, p.version ? "==" + *p.version : std::string());
    }
  }

  for (const auto& [rel, entry] : tree) {
    // uv's lock of the prefix it installed into, empty, which venvs published before it was
    // left out still have: nothing reads it.
    if (rel == ".lock" && !entry.symlink && entry.size == 0) continue;
    if (entry.symlink) {
      return make_error(ErrorCode::kCorrupt, "{} is a symbolic link, which no installer writes",
                        rel);
    }
    auto l = listed.find(rel);
    if (l == listed.end()) {
      return make_error(ErrorCode::kCorrupt,
                        "{} is not a file of any pinned distribution (no RECORD lists it)", rel);
    }
    if (l->second.is_record) continue;
    if (l->second.hash.empty()) {
      return make_error(ErrorCode::kCorrupt, "the RECORD of {} lists {} without a hash",
                        l->second.dist, rel);
    }
    if (!l->second.hash.starts_with("sha256=")) {
      return make_error(ErrorCode::kCorrupt,
                        "the RECORD of {} gives {} a hash that is not SHA-256 ({})", l->second.dist,
                        rel, l->second.hash.substr(0, 20));
    }
    const std::string size = std::to_string(entry.size);
    auto known = digests.find(rel);
    Digest digest;
    if (known != digests.end()) {
      digest = known->second;
    } else {
      RTENV_ASSIGN_OR_RETURN(digest, digest_of(dir / rel));
    }
    if (record_hash(digest) == l->second.hash &&
        (l->second.size.empty() || l->second.size == size)) {
      continue;
    }
    // A script whose interpreter line the builder changed after installing: as installed.
    bool matches = false;
    if (rel.starts_with("bin/") && entry.size <= kMaxRecordBytes) {
      RTENV_ASSIGN_OR_RETURN(std::string text, read_file(dir / rel));
      for (const HeaderChange& change : header_changes) {
        auto installed_text = retarget_script_header(text, change.to, change.from);
        if (installed_text && record_hash(Digest::of(*installed_text)) == l->second.hash &&
            (l->second.size.empty() || l->second.size == std::to_string(installed_text->size()))) {
          matches = true;
          break;
        }
      }
    }
    if (!matches) {
      return make_error(ErrorCode::kCorrupt,
                        "{} is not the file the RECORD of {} lists (its content differs)", rel,
                        l->second.dist);
    }
  }
  return ok_result();
}

}  // namespace rtenv::env
