#pragma once
// "Did you mean": the closest known name to a mistyped one. No domain knowledge.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtenv {

/// Edit distance (optimal string alignment: insert, delete, substitute, swap neighbours).
size_t edit_distance(std::string_view a, std::string_view b);

/// The name of `known` closest to `typed`, if it is within `max_distance` edits and closer than
/// the length of what was typed ("ab" is not a typo of "uv"); the first of equally close ones.
std::optional<std::string> closest_match(std::string_view typed,
                                         const std::vector<std::string>& known,
                                         size_t max_distance = 2);

}  // namespace rtenv
