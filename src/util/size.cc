#include "util/size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace rtenv {

Result<uint64_t> parse_size(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? std::string(end) : "";
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.ends_with("IB"))
    unit.erase(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("B"))
    unit.pop_back();
  double mult = unit.empty() || unit == "B" ? 1
                : unit == "K"               ? 1024.0
                : unit == "M"               ? 1024.0 * 1024
                : unit == "G"               ? 1024.0 * 1024 * 1024
                : unit == "T"               ? 1024.0 * 1024 * 1024 * 1024
                                            : -1;
  if (end == text.c_str() || mult < 0 || !(v >= 0) || std::isinf(v)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a size (examples: 1048576, 500M, 2G)", text);
  }
  return static_cast<uint64_t>(v * mult);
}

Result<int64_t> parse_duration_ms(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  static const std::pair<const char*, int64_t> kUnits[] = {
      {"", 1000}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  if (digits > 0 && digits <= 9) {
    for (const auto& [name, ms] : kUnits) {
      if (unit == name) return std::stoll(text.substr(0, digits)) * ms;
    }
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "'{}' is not a duration (a number with s, m, h or d, such as 6h or 7d)", text);
}

std::string format_duration_ms(int64_t ms) {
  static const std::pair<const char*, int64_t> kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}};
  for (const auto& [name, unit] : kUnits) {
    if (ms != 0 && ms % unit == 0) return fmt::format("{}{}", ms / unit, name);
  }
  return fmt::format("{}ms", ms);
}

std::string count_of(uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace rtenv
