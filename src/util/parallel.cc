#include "util/parallel.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace rtenv {

unsigned default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

Result<void> parallel_for(size_t n, unsigned threads,
                          const std::function<Result<void>(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::optional<Error> first_error;
  auto worker = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      if (auto r = fn(i); !r) {
        std::lock_guard lock(mu);
        if (!first_error) first_error = r.error();
        failed = true;
      }
    }
  };
  unsigned count = static_cast<unsigned>(std::min<size_t>(std::max(1u, threads), n));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < count; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first_error) return *first_error;
  return ok_result();
}

}  // namespace rtenv
