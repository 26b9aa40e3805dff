// YAML -> JSON conversion with YAML 1.2 core-schema typing of plain scalars.

#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "spec/internal.h"
#include "util/nesting.h"

namespace rtenv::spec::internal {
namespace {

constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_octal(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

/// Core schema int: [-+]?[0-9]+
bool is_decimal_int(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return all_of(s, is_digit);
}

/// Core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_core_float(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++int_digits;
  size_t frac_digits = 0;
  bool dot = false;
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && (!dot || frac_digits == 0)) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

bool is_special_float(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return s == ".inf" || s == ".Inf" || s == ".INF";
}

std::string where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return fmt::format(" at line {}, column {}", mark.line + 1, mark.column + 1);
}

Result<Json> integer_value(std::string_view text, int base, bool negative, const YAML::Node& node) {
  uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude, base);
  if (ec == std::errc() && ptr == text.data() + text.size()) {
    if (!negative) {
      if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Json(static_cast<int64_t>(magnitude));
      }
      return Json(magnitude);
    }
    if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
      return Json(static_cast<int64_t>(0 - magnitude));
    }
  }
  return make_error(ErrorCode::kInvalidArgument, "invalid YAML{}: integer {} is out of range",
                    where(node), node.Scalar());
}

/// Types a plain (unquoted) scalar by the YAML 1.2 core schema.
Result<Json> plain_scalar(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return Json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return Json(true);
  if (s == "false" || s == "False" || s == "FALSE") return Json(false);
  std::string_view v = s;
  if (is_decimal_int(v)) {
    bool negative = v[0] == '-';
    if (v[0] == '-' || v[0] == '+') v.remove_prefix(1);
    return integer_value(v, 10, negative, node);
  }
  if (v.size() > 2 && v[0] == '0' && v[1] == 'o' && all_of(v.substr(2), is_octal)) {
    return integer_value(v.substr(2), 8, false, node);
  }
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x' && all_of(v.substr(2), is_hex)) {
    return integer_value(v.substr(2), 16, false, node);
  }
  if (is_core_float(v)) {
    if (v[0] == '+') v.remove_prefix(1);
    double d = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec == std::errc() && ptr == v.data() + v.size()) return Json(d);
    return make_error(ErrorCode::kInvalidArgument, "invalid YAML{}: number {} is out of range",
                      where(node), s);
  }
  if (is_special_float(v)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid YAML{}: {} has no JSON equivalent (JSON has no infinity or NaN)",
                      where(node), s);
  }
  return Json(s);
}

Result<Json> convert(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Null:
      if (node.Tag() == kStrTag) return Json("");
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      // "!" is the tag of quoted and block scalars: they are strings whatever they look like.
      if (node.Tag() == "!" || node.Tag() == kStrTag) return Json(node.Scalar());
      return plain_scalar(node);
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const YAML::Node& item : node) {
        RTENV_ASSIGN_OR_RETURN(Json value, convert(item));
        out.push_back(std::move(value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& entry : node) {
        const YAML::Node key = entry.first;
        std::string name;
        if (key.IsScalar()) {
          name = key.Scalar();
        } else if (key.IsNull()) {
          name = "null";
        } else {
          return make_error(ErrorCode::kInvalidArgument,
                            "invalid YAML{}: a mapping key must be a scalar", where(key));
        }
        if (out.contains(name)) {
          return make_error(ErrorCode::kInvalidArgument, "invalid YAML{}: duplicate key '{}'",
                            where(key), name);
        }
        RTENV_ASSIGN_OR_RETURN(Json value, convert(entry.second));
        out[name] = std::move(value);
      }
      return out;
    }
  }
  return Json(nullptr);
}

}  // namespace

Result<Json> yaml_to_json(std::string_view text) {
  // yaml-cpp recurses as deep as the document nests.
  RTENV_TRY(check_nesting(text, kMaxNesting, kMaxTextBytes, "YAML"));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return make_error(ErrorCode::kInvalidArgument, "invalid YAML: {}", e.msg);
    }
    return make_error(ErrorCode::kInvalidArgument, "invalid YAML at line {}, column {}: {}",
                      e.mark.line + 1, e.mark.column + 1, e.msg);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, "invalid YAML: {}", e.what());
  }
  try {
    return convert(root);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, "invalid YAML: {}", e.what());
  }
}

}  // namespace rtenv::spec::internal
