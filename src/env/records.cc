#include "env/records.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/nesting.h"

namespace rtenv::env {

namespace {

using Json = nlohmann::json;

// Records are a few hundred bytes and flat; these bounds only stop a planted one from costing
// more than reading it.
constexpr size_t kMaxRecordBytes = 64 * 1024;
constexpr size_t kMaxRecordNesting = 8;

/// The record's text as a JSON object, or why it is not one.
Result<Json> record_object(std::string_view text, std::string_view what,
                           size_t max_bytes = kMaxRecordBytes) {
  if (auto bounded = check_nesting(text, kMaxRecordNesting, max_bytes, what); !bounded) {
    return make_error(ErrorCode::kCorrupt, "{}", bounded.error().message());
  }
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return make_error(ErrorCode::kCorrupt, "{} is not a JSON object", what);
  }
  return j;
}

/// `j[key]` as a string: `fallback` if absent; kCorrupt if present and not a string.
Result<std::string> string_field(const Json& j, const char* key, std::string_view what,
                                 std::optional<std::string> fallback) {
  auto it = j.find(key);
  if (it == j.end() && fallback) return *fallback;
  if (it == j.end() || !it->is_string()) {
    return make_error(ErrorCode::kCorrupt, "{}: \"{}\" is {}, not a string", what, key,
                      it == j.end() ? "missing" : it->type_name());
  }
  return it->get<std::string>();
}

/// Never throws: bytes that are not UTF-8 (a path or URL given as raw bytes) are replaced.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::string record_text(const PublishedVenvRecord& r) {
  Json j = {{"format", PublishedVenvRecord::kFormat},
            {"package", r.package.str()},
            {"venv", r.venv},
            {"python", r.python},
            {"python_version", r.python_version},
            {"platform", r.platform},
            {"implementation", r.implementation},
            {"base_venv", r.base_venv},
            {"system_site_packages", r.system_site_packages},
            {"tool", r.tool},
            {"built_by", r.built_by},
            {"key", r.key},
            {"signature", r.signature},
            {"signed_by", r.signed_by}};
  return dump(j);
}

std::string signed_text(const PublishedVenvRecord& record, std::string_view key) {
  PublishedVenvRecord unsigned_record = record;
  unsigned_record.key = std::string(key);
  unsigned_record.signature.clear();
  return "rtenv published venv 1\n" + record_text(unsigned_record);
}

std::string record_text(const UrlRecord& r) { return dump(Json{{"uri", r.uri}, {"url", r.url}}); }

std::string record_text(const LeaseRecord& r) {
  return dump(Json{{"holder", r.holder}, {"expires_ms", r.expires_ms}});
}

std::string NodeReportRecord::name_for(std::string_view host, std::string_view home) {
  std::string clean;
  for (char c : host.substr(0, 100)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    clean += ok ? c : '_';
  }
  if (clean.empty() || clean[0] == '.') clean = "node" + clean;
  return fmt::format("{}{}-{}", kPrefix, clean, Digest::of(home).hex().substr(0, 12));
}

std::string record_text(const NodeReportRecord& r) {
  return dump(
      Json{{"node", r.node}, {"home", r.home}, {"written_ms", r.written_ms}, {"in_use", r.in_use}});
}

Result<NodeReportRecord> parse_node_report_record(std::string_view text) {
  constexpr std::string_view what = "the node's report";
  RTENV_ASSIGN_OR_RETURN(Json j, record_object(text, what, 1 << 20));
  NodeReportRecord r;
  RTENV_ASSIGN_OR_RETURN(r.node, string_field(j, "node", what, std::nullopt));
  RTENV_ASSIGN_OR_RETURN(r.home, string_field(j, "home", what, std::nullopt));
  auto written = j.find("written_ms");
  if (written == j.end() || !written->is_number_integer()) {
    return make_error(ErrorCode::kCorrupt, "{}: \"written_ms\" is {}, not an integer", what,
                      written == j.end() ? "missing" : written->type_name());
  }
  r.written_ms = written->get<int64_t>();
  auto in_use = j.find("in_use");
  if (in_use == j.end() || !in_use->is_array()) {
    return make_error(ErrorCode::kCorrupt, "{}: \"in_use\" is not a list", what);
  }
  for (const auto& u : *in_use) {
    if (!u.is_string()) {
      return make_error(ErrorCode::kCorrupt, "{}: \"in_use\" holds a {}, not a string", what,
                        u.type_name());
    }
    r.in_use.push_back(u.get<std::string>());
  }
  return r;
}

Result<PublishedVenvRecord> parse_published_venv_record(std::string_view text) {
  constexpr std::string_view what = "the published venv's record";
  RTENV_ASSIGN_OR_RETURN(Json j, record_object(text, what));
  auto format = j.find("format");
  if (format == j.end() || !format->is_number_integer() ||
      format->get<int64_t>() != PublishedVenvRecord::kFormat) {
    return make_error(ErrorCode::kCorrupt, "{} is not of a format this rtenv reads (format {})",
                      what, format == j.end() ? std::string("missing") : format->dump());
  }
  RTENV_ASSIGN_OR_RETURN(std::string package, string_field(j, "package", what, std::nullopt));
  auto uri = pack::PackageUri::parse(package);
  if (!uri) return make_error(ErrorCode::kCorrupt, "{}: {}", what, uri.error().message());
  PublishedVenvRecord r;
  r.package = *uri;
  const std::string none;
  RTENV_ASSIGN_OR_RETURN(r.venv, string_field(j, "venv", what, none));
  RTENV_ASSIGN_OR_RETURN(r.python, string_field(j, "python", what, none));
  RTENV_ASSIGN_OR_RETURN(r.python_version, string_field(j, "python_version", what, none));
  RTENV_ASSIGN_OR_RETURN(r.platform, string_field(j, "platform", what, none));
  RTENV_ASSIGN_OR_RETURN(r.implementation, string_field(j, "implementation", what, none));
  RTENV_ASSIGN_OR_RETURN(r.base_venv, string_field(j, "base_venv", what, none));
  RTENV_ASSIGN_OR_RETURN(r.tool, string_field(j, "tool", what, none));
  RTENV_ASSIGN_OR_RETURN(r.built_by, string_field(j, "built_by", what, none));
  RTENV_ASSIGN_OR_RETURN(r.key, string_field(j, "key", what, none));
  RTENV_ASSIGN_OR_RETURN(r.signature, string_field(j, "signature", what, none));
  RTENV_ASSIGN_OR_RETURN(r.signed_by, string_field(j, "signed_by", what, none));
  if (auto s = j.find("system_site_packages"); s != j.end()) {
    if (!s->is_boolean()) {
      return make_error(ErrorCode::kCorrupt, "{}: \"system_site_packages\" is {}, not a boolean",
                        what, s->type_name());
    }
    r.system_site_packages = s->get<bool>();
  }
  return r;
}

Result<UrlRecord> parse_url_record(std::string_view text) {
  constexpr std::string_view what = "the URL's record";
  RTENV_ASSIGN_OR_RETURN(Json j, record_object(text, what));
  UrlRecord r;
  RTENV_ASSIGN_OR_RETURN(r.uri, string_field(j, "uri", what, std::nullopt));
  RTENV_ASSIGN_OR_RETURN(r.url, string_field(j, "url", what, std::string()));
  return r;
}

Result<LeaseRecord> parse_lease_record(std::string_view text) {
  constexpr std::string_view what = "the build lease";
  RTENV_ASSIGN_OR_RETURN(Json j, record_object(text, what));
  LeaseRecord r;
  RTENV_ASSIGN_OR_RETURN(r.holder, string_field(j, "holder", what, std::nullopt));
  auto expires = j.find("expires_ms");
  if (expires == j.end() || !expires->is_number_integer()) {
    return make_error(ErrorCode::kCorrupt, "{}: \"expires_ms\" is {}, not an integer", what,
                      expires == j.end() ? "missing" : expires->type_name());
  }
  r.expires_ms = expires->get<int64_t>();
  return r;
}

}  // namespace rtenv::env
