// Single-precision matrix products for the native kernels. Row-major throughout:
// element (i, j) of a matrix with leading dimension ld is at [i * ld + j].
// The micro-kernel follows rc::current_isa() (AVX-512, AVX2 or portable) at each call;
// the work is split over rc::parallel_for, and runs on the calling thread alone when it
// is small or when called from inside a parallel_for body. Any thread may call these.
#pragma once
#include <cstdint>
#include <memory>

namespace rc {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// op(A) is A [M,K] (lda >= K) or, when trans_a, the transpose of A stored [K,M] (lda >= M); likewise B.
// beta == 0 overwrites C without reading it (NaN in C does not propagate).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// op(B) [K,N] packed once into the layout the micro-kernels read, so a product with
// the same right-hand side (a weight matrix, every time step) does not repack it.
// The layout is the same for every ISA; a PackedB is immutable and may be used by
// several threads at once.
class PackedB {
 public:
  virtual ~PackedB() = default;
  virtual int64_t rows() const = 0;  // K
  virtual int64_t cols() const = 0;  // N
};

std::unique_ptr<PackedB> pack_b(bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb);

// C[M,N] = alpha * op(A)[M,K] * B + beta * C with B packed by pack_b (K = b.rows(),
// N = b.cols()); op(A) as in sgemm. beta == 0 does not read C.
void sgemm_packed(bool trans_a, int64_t m, float alpha, const float* a, int64_t lda, const PackedB& b,
                  float beta, float* c, int64_t ldc);

}  // namespace rc
