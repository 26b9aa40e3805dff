#pragma once
// Bounds on untrusted JSON and YAML text, checked before a parser (which recurses, as do the
// walks of what it builds) sees it.

#include <cstddef>
#include <string_view>

#include "util/result.h"

namespace rtenv {

/// kInvalidArgument if `text` is longer than `max_bytes`, or nests deeper than `max_depth`:
/// brackets and braces outside quoted strings (JSON, YAML flow style), and, for YAML block
/// style, indentation levels and `- ` items that start on one line. `what` names the input in
/// the message ("runtime_env"). Linear in the text; never recurses.
Result<void> check_nesting(std::string_view text, size_t max_depth, size_t max_bytes,
                           std::string_view what);

}  // namespace rtenv
