// A small persistent thread pool shared by all CPU kernels.
// parallel_for is safe to call from several threads at once (the Node addon runs kernels on
// libuv's worker threads); the calling thread works on its own job too, so nested or
// concurrent calls cannot deadlock.
#pragma once
#include <cstdint>
#include <functional>

namespace tokenrec {

// Number of threads kernels use: TOKENREC_NUM_THREADS if set, else the hardware concurrency.
int num_threads();
// Overrides the thread count for later calls (n <= 0 restores the default).
void set_num_threads(int n);

// Runs fn(lo, hi) over [begin, end) split into chunks of at least `grain` elements.
// Exceptions thrown by fn are rethrown in the caller (the first one wins).
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t lo, int64_t hi)>& fn);

}  // namespace tokenrec
