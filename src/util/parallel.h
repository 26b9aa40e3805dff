#pragma once

#include <cstddef>
#include <functional>

#include "util/result.h"

namespace rtenv {

/// Runs `fn(i)` for every i in [0, n) on up to `threads` threads (the caller's among them). After
/// the first error no new work is started; that error is returned. `fn` must be thread-safe.
Result<void> parallel_for(size_t n, unsigned threads,
                          const std::function<Result<void>(size_t)>& fn);

/// One thread per core, at least one.
unsigned default_threads();

}  // namespace rtenv
