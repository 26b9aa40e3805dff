#include "util/nesting.h"

#include <vector>

namespace rtenv {

Result<void> check_nesting(std::string_view text, size_t max_depth, size_t max_bytes,
                           std::string_view what) {
  if (text.size() > max_bytes) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} bytes, more than the {} allowed", what,
                      text.size(), max_bytes);
  }
  auto too_deep = [&](size_t line) {
    return make_error(ErrorCode::kInvalidArgument, "{}: nested deeper than {} levels (line {})",
                      what, max_depth, line);
  };
  size_t flow = 0;              // open brackets and braces
  std::vector<size_t> indents;  // YAML block levels: the indentation of each open one
  size_t line = 1;
  bool at_line_start = true;
  char quote = 0;   // inside a '"' or '\'' string
  char before = 0;  // the last character outside strings that is not a space
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == '\\' && quote == '"') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      } else if (c == '\n') {
        ++line;
      }
      continue;
    }
    if (at_line_start) {
      at_line_start = false;
      size_t indent = 0;
      while (i + indent < text.size() && text[i + indent] == ' ') ++indent;
      size_t j = i + indent;
      // `- ` items opened on this line: each is a level of its own.
      size_t items = 0;
      while (j + 1 < text.size() && text[j] == '-' && text[j + 1] == ' ') {
        ++items;
        j += 2;
        while (j < text.size() && text[j] == ' ') ++j;
      }
      if (j < text.size() && text[j] != '\n' && text[j] != '#') {
        while (!indents.empty() && indents.back() >= indent) indents.pop_back();
        indents.push_back(indent);
        // The first level is the document itself.
        if (indents.size() - 1 + items + flow > max_depth) return too_deep(line);
      }
    }
    switch (c) {
      case '"':
      case '\'':
        // Opens a string only where a value starts (in YAML a quote inside a plain scalar is
        // just a character, which must not hide the brackets after it).
        if (before == 0 || before == ':' || before == '-' || before == '[' || before == '{' ||
            before == ',' || before == '\n') {
          quote = c;
        }
        break;
      case '[':
      case '{':
        if (++flow + (indents.empty() ? 0 : indents.size() - 1) > max_depth) return too_deep(line);
        break;
      case ']':
      case '}':
        if (flow > 0) --flow;
        break;
      case '\n':
        ++line;
        at_line_start = true;
        break;
      default:
        break;
    }
    if (c != ' ' && c != '\t') before = c;
  }
  return ok_result();
}

}  // namespace rtenv
