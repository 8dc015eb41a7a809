// The native library's worker threads. Kernels split work with parallel_for rather
// than creating threads, so one pool serves GEMM and the pointwise kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace rc {

// Runs body(begin, end) over [0, count) split into contiguous chunks, one per worker,
// and returns when all are done. Never spawns threads per call.
void parallel_for(int64_t count, const std::function<void(int64_t begin, int64_t end)>& body);

// Number of workers parallel_for uses (the calling thread included).
int num_threads();

}  // namespace rc
