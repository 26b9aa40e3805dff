#pragma once
// Reading text line by line without copies.

#include <string_view>

namespace rtenv {

/// Takes the first line off `*rest` (without its '\n') and returns it; `*rest` keeps what
/// follows. Loop with `while (!rest.empty()) { auto line = next_line(&rest); ... }`.
inline std::string_view next_line(std::string_view* rest) {
  size_t nl = rest->find('\n');
  std::string_view line = rest->substr(0, nl);
  *rest = nl == std::string_view::npos ? std::string_view() : rest->substr(nl + 1);
  return line;
}

}  // namespace rtenv
