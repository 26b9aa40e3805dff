#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace rtenv {

/// Parses a byte count: "1048576", "500M", "2G", "1.5GiB" (K, M, G, T are powers of 1024; a
/// trailing "B" or "iB" is optional). kInvalidArgument otherwise.
Result<uint64_t> parse_size(const std::string& text);

/// Parses a duration: "90s", "30m", "6h", "7d" (a plain number is seconds), into milliseconds.
/// kInvalidArgument otherwise.
Result<int64_t> parse_duration_ms(const std::string& text);

/// A duration in parse_duration_ms's terms, in the largest unit that divides it ("20m", "2d",
/// "90s"; "1500ms" below a whole second).
std::string format_duration_ms(int64_t ms);

/// "1 file", "3 files": `n` and the noun that agrees with it.
std::string count_of(uint64_t n, std::string_view one, std::string_view many);

}  // namespace rtenv
