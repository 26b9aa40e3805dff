#pragma once
// Helpers shared by the spec library's .cc files. Not part of the public interface.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "spec/runtime_env.h"

namespace rtenv::spec::internal {

/// Bounds on a runtime_env's text (JSON or YAML), checked before it is parsed: parsers and the
/// walks of what they build recurse, so an input nested 100,000 deep would end the process.
inline constexpr size_t kMaxNesting = 100;
inline constexpr size_t kMaxTextBytes = size_t{16} << 20;

/// The built-in top-level fields, sorted.
const std::vector<std::string>& builtin_fields();

/// The type name used in messages: string, integer, number, boolean, null, list, dict.
std::string type_name(const Json& value);

/// `value` as compact JSON for a message, cut to a readable length. Never throws.
std::string render_value(const Json& value);

/// "<path>: expected <expected>, got <value> (<type>)", kInvalidArgument.
Error type_error(std::string_view path, std::string_view expected, const Json& got);

/// True for the values that mean "absent": null, "", [] and {}.
bool is_empty_value(const Json& value);

/// `text` with each byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD, so
/// messages that quote user input stay printable and serializable.
std::string valid_utf8(std::string_view text);

/// `error` with its message passed through valid_utf8.
Error sanitized(const Error& error);

/// Converts YAML text (its first document) to JSON, typing plain scalars by the YAML 1.2 core
/// schema; quoted and block scalars stay strings. Errors (kInvalidArgument) have no field prefix,
/// e.g. "invalid YAML at line 2, column 1: end of sequence flow not found".
Result<Json> yaml_to_json(std::string_view text);

/// Validates `value` and returns its normalized form (docs/runtime_env.md §1, §2). What the
/// user should hear about an accepted env (one line each) goes to `warnings` when given.
Result<Json> validate_and_normalize(const Json& value, const ParseOptions& options,
                                    std::vector<std::string>* warnings = nullptr);

/// Structural normalization of one top-level field, without filesystem access (for with_field):
/// returns null when the field should be dropped.
Json normalize_field_shape(const std::string& name, Json value);

}  // namespace rtenv::spec::internal
