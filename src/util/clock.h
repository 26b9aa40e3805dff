#pragma once
// Milliseconds as plain integers: the wall clock for times other processes and hosts read
// (records, leases, "last used"), the steady clock for deadlines and durations in one process.

#include <algorithm>
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

/// The steady-clock deadline `timeout_ms` from now; negative (no deadline) for a negative one.
inline int64_t deadline_after(int64_t timeout_ms) {
  return timeout_ms >= 0 ? steady_ms() + timeout_ms : -1;
}

/// Milliseconds left until `deadline` (at least 1, so a timeout of 0 is never "none"); -1 for
/// no deadline (a negative one).
inline int64_t ms_left(int64_t deadline) {
  return deadline < 0 ? -1 : std::max<int64_t>(1, deadline - steady_ms());
}

}  // namespace rtenv
