// The canonical JSON text of a value: what env ids hash and what the Python package reproduces.

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spec/runtime_env.h"

namespace rtenv::spec {
namespace {

/// A finite double as Python's repr() prints it: the shortest digits that read back to the same
/// double, in fixed notation when the decimal exponent is in [-4, 16), else as d.ddde±XX.
void write_double(double d, std::string& out) {
  if (!std::isfinite(d)) {  // not reachable for parsed input (JSON has no NaN or infinity)
    out += "null";
    return;
  }
  std::array<char, 64> buf{};
  auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::scientific);
  std::string_view sci(buf.data(), ec == std::errc() ? static_cast<size_t>(end - buf.data()) : 0);
  // sci: [-]d[.ddd]e(+|-)XX
  size_t e = sci.find('e');
  std::string_view mantissa = sci.substr(0, e);
  if (!mantissa.empty() && mantissa[0] == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int n = static_cast<int>(digits.size());
  const int point = exponent + 1;  // value = 0.DIGITS * 10^point
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-point), '0');
      out += digits;
    } else if (point < n) {
      out.append(digits, 0, static_cast<size_t>(point));
      out += '.';
      out.append(digits, static_cast<size_t>(point));
    } else {
      out += digits;
      out.append(static_cast<size_t>(point - n), '0');
      out += ".0";
    }
    return;
  }
  out += digits[0];
  if (n > 1) {
    out += '.';
    out.append(digits, 1);
  }
  const int shown = point - 1;
  out += shown < 0 ? "e-" : "e+";
  const int magnitude = shown < 0 ? -shown : shown;
  if (magnitude < 10) out += '0';
  out += std::to_string(magnitude);
}

void write(const Json& value, std::string& out) {
  switch (value.type()) {
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.items()) {  // std::map: sorted by UTF-8 bytes
        if (!first) out += ',';
        first = false;
        out += Json(key).dump(-1, ' ', false, Json::error_handler_t::replace);
        out += ':';
        write(item, out);
      }
      out += '}';
      return;
    }
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const Json& item : value) {
        if (!first) out += ',';
        first = false;
        write(item, out);
      }
      out += ']';
      return;
    }
    case Json::value_t::number_float:
      write_double(value.get<double>(), out);
      return;
    default:  // null, booleans, integers, strings: nlohmann's compact form
      out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
      return;
  }
}

}  // namespace

std::string canonical_json(const Json& value) {
  std::string out;
  write(value, out);
  return out;
}

}  // namespace rtenv::spec
