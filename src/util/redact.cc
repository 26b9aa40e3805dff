#include "util/redact.h"

#include <cctype>

namespace rtenv {

std::string redact_url_credentials(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (true) {
    size_t scheme_end = text.find("://", i);
    if (scheme_end == std::string_view::npos) {
      out.append(text.substr(i));
      return out;
    }
    size_t start = scheme_end + 3;
    out.append(text.substr(i, start - i));
    size_t end = text.find_first_of("/?# \t\r\n\"'<>,;", start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view authority = text.substr(start, end - start);
    size_t at = authority.rfind('@');
    if (at == std::string_view::npos) {
      out.append(authority);
    } else {
      std::string_view userinfo = authority.substr(0, at);
      size_t colon = userinfo.find(':');
      if (colon == std::string_view::npos) {
        out.append("****");
      } else {
        out.append(userinfo.substr(0, colon));
        out.append(":****");
      }
      out.append(authority.substr(at));
    }
    i = end;
  }
}

std::string printable_line(std::string_view line) {
  std::string clean;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {  // ESC [ ... letter
      while (i < line.size() && !std::isalpha(static_cast<unsigned char>(line[i]))) ++i;
      continue;
    }
    if (line[i] != '\r') clean += line[i];
  }
  while (!clean.empty() && std::isspace(static_cast<unsigned char>(clean.back()))) clean.pop_back();
  return redact_url_credentials(clean);
}

std::string log_escaped(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace rtenv
