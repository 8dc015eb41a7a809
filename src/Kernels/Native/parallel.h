// The native library's worker threads. Kernels split work with parallel_for rather
// than creating threads, so one pool serves GEMM and the pointwise kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace rc {

// Runs body(begin, end) over [0, count) split into contiguous chunks, one per worker,
// and returns when all are done. Never spawns threads per call.
// Called from inside a body, or while another thread holds the pool, it runs the
// whole range serially on the calling thread (no deadlock, no oversubscription).
void parallel_for(int64_t count, const std::function<void(int64_t begin, int64_t end)>& body);

// Number of workers parallel_for uses (the calling thread included).
int num_threads();

// Sets the number of workers (the calling thread included); 0 or less restores the
// default, the number of CPUs this process may run on. Waits for a running
// parallel_for to finish before resizing the pool.
void set_num_threads(int count);

// True while the calling thread is running a parallel_for body.
bool in_parallel_region();

}  // namespace rc
