#include "gemm.h"
#include <stdexcept>
#include <string>
#include <vector>
#include "rc_common.h"

namespace rc {

// Plain triple loop: correct for every shape and transpose; the tuned kernels replace it.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++) {
    for (int64_t j = 0; j < n; j++) {
      float sum = 0;
      for (int64_t p = 0; p < k; p++) {
        float av = trans_a ? a[p * lda + i] : a[i * lda + p];
        float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
      }
      c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
    }
  }
}

namespace {
class DensePackedB final : public PackedB {
 public:
  DensePackedB(int64_t k, int64_t n) : k_(k), n_(n), data_(static_cast<size_t>(k * n)) {}
  int64_t rows() const override { return k_; }
  int64_t cols() const override { return n_; }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }

 private:
  int64_t k_, n_;
  std::vector<float> data_;
};
}  // namespace

std::unique_ptr<PackedB> pack_b(bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb) {
  auto packed = std::make_unique<DensePackedB>(k, n);
  for (int64_t p = 0; p < k; p++)
    for (int64_t j = 0; j < n; j++) packed->data()[p * n + j] = trans_b ? b[j * ldb + p] : b[p * ldb + j];
  return packed;
}

void sgemm_packed(bool trans_a, int64_t m, float alpha, const float* a, int64_t lda, const PackedB& b,
                  float beta, float* c, int64_t ldc) {
  const auto& dense = static_cast<const DensePackedB&>(b);
  sgemm(trans_a, false, m, b.cols(), b.rows(), alpha, a, lda, dense.data(), b.cols(), beta, c, ldc);
}

}  // namespace rc

RC_EXPORT rc_status rc_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  return rc::guard([&] {
    if (m < 0 || n < 0 || k < 0)
      throw std::invalid_argument("rc_sgemm: sizes must be non-negative, got m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
    if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n)
      throw std::invalid_argument("rc_sgemm: a leading dimension is smaller than its row");
    rc::sgemm(trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
}
