#pragma once
// Deterministic bytes that do not compress (an xorshift generator is enough to defeat zstd).

#include <cstddef>
#include <cstdint>
#include <string>

namespace rtenv::testing {

inline std::string noise(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

}  // namespace rtenv::testing
