#pragma once
// Milliseconds as plain integers: the wall clock for times other processes and hosts read
// (records, leases, "last used"), the steady clock for deadlines and durations in one process.

#include <chrono>
#include <cstdint>

namespace rtenv {

inline int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace rtenv
