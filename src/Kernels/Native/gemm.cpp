// Cache-blocked GEMM driver (the BLIS loop structure, simplified for few cores):
// op(B) is packed whole (or in column blocks of at most kMaxPackedFloats) into
// kPanelWidth-column panels; each thread then takes a range of rows of C (many rows)
// or of panels (few rows, the per-time-step case), and for each kMc x kKc block of
// op(A) packs it into mr-row panels and runs the ISA's macro-kernel across its columns.
// The packed A block (336 x 512 floats, 672 KiB) stays in L2, a B micro-panel
// (512 x 32) is reused from L1/L2 by every A panel of the block, packed B streams
// from L3. 512 x 336 measured fastest on the project machine (AMD EPYC Zen 4) among
// K blocks 128..512 and M blocks 84..504: larger blocks mean fewer passes over C and
// fewer reloads of B panels, which outweighs the B micro-panel spilling out of L1.
#include "gemm.h"
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include "gemm_kernels.h"
#include "parallel.h"
#include "rc_common.h"

namespace rc {
namespace {

using gemm::kPanelWidth;
using gemm::MacroKernel;

constexpr int64_t kKc = 512;
constexpr int64_t kMcTarget = 336;
constexpr int64_t kMaxPackedFloats = int64_t{1} << 22;  // 16 MiB of packed B per block
// Below this many multiply-adds a product runs on the calling thread: waking the
// workers costs more than it saves.
constexpr double kParallelMinMacs = 1 << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A 64-byte aligned float buffer that only grows; one per thread for packed A and
// for whole-matrix packed B, so repeated products do not allocate.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  float* reserve(int64_t count) {
    if (count > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) & ~size_t{63};
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = count;
    }
    return data_;
  }

  float* data() const { return data_; }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

thread_local AlignedBuffer t_packed_a;
thread_local AlignedBuffer t_packed_b;

MacroKernel select_kernel() {
  switch (current_isa()) {
    case RC_ISA_AVX512: return gemm::avx512_kernel();
    case RC_ISA_AVX2: return gemm::avx2_kernel();
    default: return gemm::portable_kernel();
  }
}

int64_t mc_block(const MacroKernel& kernel) { return std::max<int64_t>(1, kMcTarget / kernel.mr) * kernel.mr; }

constexpr int64_t kPrefetchRows = 8;

// Packs op(A)[rows, cols] (rows from row0, cols from col0) into Mr-row panels at out.
// Mr is a compile-time constant so the per-column copies unroll.
template <int64_t Mr>
void pack_a_panels(bool trans_a, const float* a, int64_t lda, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                   float* out) {
  const int64_t full_rows = rows / Mr * Mr;
  if (trans_a) {
    // op(A) column p is a contiguous row of A: read each once, in order, and scatter
    // it across the panels (reading panel by panel instead strides through A by lda
    // and misses the TLB on every column).
    for (int64_t p = 0; p < cols; p++) {
      const float* src = a + (col0 + p) * lda + row0;
      // Rows of A lda apart defeat the hardware prefetcher; the weight-gradient product
      // reads A from memory exactly here, so fetch a few rows ahead.
      if (p + kPrefetchRows < cols)
        for (int64_t x = 0; x < rows; x += 16) __builtin_prefetch(src + kPrefetchRows * lda + x);
      float* dst = out + p * Mr;
      int64_t i = 0;
      for (; i < full_rows; i += Mr, dst += Mr * cols)
        for (int64_t r = 0; r < Mr; r++) dst[r] = src[i + r];
      for (int64_t r = 0; i + r < rows; r++) dst[r] = src[i + r];
    }
    return;
  }
  int64_t i = 0;
  for (; i < full_rows; i += Mr) {
    const float* src = a + (row0 + i) * lda + col0;
    float* dst = out + i * cols;
    for (int64_t p = 0; p < cols; p++)
      for (int64_t r = 0; r < Mr; r++) dst[p * Mr + r] = src[r * lda + p];
  }
  for (int64_t r = 0; i + r < rows; r++) {
    const float* src = a + (row0 + i + r) * lda + col0;
    float* dst = out + i * cols;
    for (int64_t p = 0; p < cols; p++) dst[p * Mr + r] = src[p];
  }
}

void pack_a(bool trans_a, const float* a, int64_t lda, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
            int64_t mr, float* out) {
  // An if-chain, not a switch: kernels may share a panel height.
  if (mr == gemm::kAvx512Mr) return pack_a_panels<gemm::kAvx512Mr>(trans_a, a, lda, row0, rows, col0, cols, out);
  if (mr == gemm::kAvx2Mr) return pack_a_panels<gemm::kAvx2Mr>(trans_a, a, lda, row0, rows, col0, cols, out);
  if (mr == gemm::kPortableMr) return pack_a_panels<gemm::kPortableMr>(trans_a, a, lda, row0, rows, col0, cols, out);
  throw std::logic_error("pack_a: no packing for " + std::to_string(mr) + "-row panels");
}

// Packs columns [col0, col0 + cols) of op(B)[k, *] into panels of kPanelWidth, panel
// stride k * kPanelWidth; panels [panel_begin, panel_end) only.
void pack_b_panels(bool trans_b, const float* b, int64_t ldb, int64_t k, int64_t col0, int64_t cols,
                   int64_t panel_begin, int64_t panel_end, float* out) {
  if (!trans_b) {
    // Row by row across all the panels, so B is read sequentially: reading one panel
    // at a time strides through B by ldb and leaves the prefetcher behind (a third of
    // the time of a per-step product went there). Full panels copy a fixed length.
    for (int64_t p = 0; p < k; p++) {
      const float* src = b + p * ldb + col0;
      for (int64_t panel = panel_begin; panel < panel_end; panel++) {
        int64_t j0 = panel * kPanelWidth, width = std::min(kPanelWidth, cols - j0);
        float* dst = out + (panel * k + p) * kPanelWidth;
        if (width == kPanelWidth)
          for (int64_t j = 0; j < kPanelWidth; j++) dst[j] = src[j0 + j];
        else
          for (int64_t j = 0; j < kPanelWidth; j++) dst[j] = j < width ? src[j0 + j] : 0.0f;
      }
    }
    return;
  }
  for (int64_t panel = panel_begin; panel < panel_end; panel++) {
    int64_t j0 = panel * kPanelWidth, width = std::min(kPanelWidth, cols - j0);
    float* dst = out + panel * k * kPanelWidth;
    if (width < kPanelWidth)
      for (int64_t p = 0; p < k; p++) std::fill(dst + p * kPanelWidth + width, dst + (p + 1) * kPanelWidth, 0.0f);
    for (int64_t j = 0; j < width; j++) {
      const float* src = b + (col0 + j0 + j) * ldb;
      for (int64_t p = 0; p < k; p++) dst[p * kPanelWidth + j] = src[p];
    }
  }
}

void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++) {
    float* row = c + i * ldc;
    if (beta == 0) std::fill(row, row + n, 0.0f);
    else if (beta != 1) for (int64_t j = 0; j < n; j++) row[j] *= beta;
  }
}

// Where the right-hand side of a product comes from: panels packed earlier (pack_b), or
// op(B) itself with a buffer to pack it into during the product.
struct RightHandSide {
  float* panels;        // packed panels, panel stride k * kPanelWidth
  bool packed;          // panels already hold op(B); otherwise pack from b below
  bool trans_b;
  const float* b;
  int64_t ldb;
  int64_t col0;         // first column of op(B) this product covers
};

void pack_b_parallel(bool trans_b, const float* b, int64_t ldb, int64_t k, int64_t col0, int64_t cols, float* out) {
  int64_t panels = ceil_div(cols, kPanelWidth);
  if (static_cast<double>(k) * static_cast<double>(cols) < kParallelMinMacs / 4) {
    pack_b_panels(trans_b, b, ldb, k, col0, cols, 0, panels, out);
    return;
  }
  parallel_for(panels, [&](int64_t begin, int64_t end) { pack_b_panels(trans_b, b, ldb, k, col0, cols, begin, end, out); });
}

// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C. k > 0.
void multiply(const MacroKernel& kernel, bool trans_a, int64_t m, int64_t n, int64_t k, float alpha,
              const float* a, int64_t lda, const RightHandSide& rhs, float beta, float* c, int64_t ldc) {
  const int64_t panel_stride = k * kPanelWidth;
  const int64_t mc_max = mc_block(kernel), kc_max = std::min(k, kKc);

  // Rows [i_begin, i_end) of C, columns [j_begin, j_end) with j_begin a panel boundary.
  auto block = [&](int64_t i_begin, int64_t i_end, int64_t j_begin, int64_t j_end) {
    float* packed_a = t_packed_a.reserve(mc_max * kc_max);
    const float* b_first = rhs.panels + (j_begin / kPanelWidth) * panel_stride;
    for (int64_t ic = i_begin; ic < i_end; ic += mc_max) {
      int64_t mc = std::min(mc_max, i_end - ic);
      for (int64_t pc = 0; pc < k; pc += kc_max) {
        int64_t kc = std::min(kc_max, k - pc);
        pack_a(trans_a, a, lda, ic, mc, pc, kc, kernel.mr, packed_a);
        kernel.run(mc, j_end - j_begin, kc, packed_a, b_first + pc * kPanelWidth, panel_stride, c + ic * ldc + j_begin,
                   ldc, alpha, pc == 0 ? beta : 1.0f);
      }
    }
  };
  // Columns [j_begin, j_end) whole: a thread that owns them packs their panels itself,
  // which needs no barrier between packing and multiplying.
  auto column_block = [&](int64_t j_begin, int64_t j_end) {
    if (!rhs.packed)
      pack_b_panels(rhs.trans_b, rhs.b, rhs.ldb, k, rhs.col0, j_end, j_begin / kPanelWidth, ceil_div(j_end, kPanelWidth),
                    rhs.panels);
    block(0, m, j_begin, j_end);
  };

  const int threads = num_threads();
  const int64_t row_panels = ceil_div(m, kernel.mr), col_panels = ceil_div(n, kPanelWidth);
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);  // no int64 overflow
  if (threads <= 1 || macs < kParallelMinMacs || in_parallel_region()) {
    column_block(0, n);
  } else if (row_panels >= 4 * threads || col_panels < threads) {
    // Many rows: split them; every thread reads all of packed B.
    if (!rhs.packed) pack_b_parallel(rhs.trans_b, rhs.b, rhs.ldb, k, rhs.col0, n, rhs.panels);
    parallel_for(row_panels, [&](int64_t begin, int64_t end) {
      block(begin * kernel.mr, std::min(end * kernel.mr, m), 0, n);
    });
  } else {
    // Few rows (one time step of a batch): split the columns; each thread packs the
    // small A itself, which costs far less than a barrier would.
    parallel_for(col_panels, [&](int64_t begin, int64_t end) {
      column_block(begin * kPanelWidth, std::min(end * kPanelWidth, n));
    });
  }
}

class PanelPackedB final : public PackedB {
 public:
  PanelPackedB(int64_t k, int64_t n) : k_(k), n_(n) { storage_.reserve(std::max<int64_t>(1, ceil_div(n, kPanelWidth) * k * kPanelWidth)); }
  int64_t rows() const override { return k_; }
  int64_t cols() const override { return n_; }
  float* panels() const { return storage_.data(); }

 private:
  int64_t k_, n_;
  AlignedBuffer storage_;
};

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const MacroKernel kernel = select_kernel();
  // Column blocks keep packed B bounded for very large products; the block width is a
  // whole number of panels.
  int64_t block_cols = std::max(kPanelWidth, (kMaxPackedFloats / k) / kPanelWidth * kPanelWidth);
  for (int64_t jc = 0; jc < n; jc += block_cols) {
    int64_t cols = std::min(block_cols, n - jc);
    RightHandSide rhs{t_packed_b.reserve(ceil_div(cols, kPanelWidth) * k * kPanelWidth), false, trans_b, b, ldb, jc};
    multiply(kernel, trans_a, m, cols, k, alpha, a, lda, rhs, beta, c + jc, ldc);
  }
}

std::unique_ptr<PackedB> pack_b(bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb) {
  auto packed = std::make_unique<PanelPackedB>(k, n);
  if (k > 0 && n > 0) pack_b_parallel(trans_b, b, ldb, k, 0, n, packed->panels());
  return packed;
}

void sgemm_packed(bool trans_a, int64_t m, float alpha, const float* a, int64_t lda, const PackedB& b,
                  float beta, float* c, int64_t ldc) {
  const int64_t n = b.cols(), k = b.rows();
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const auto& packed = static_cast<const PanelPackedB&>(b);
  RightHandSide rhs{packed.panels(), true, false, nullptr, 0, 0};
  multiply(select_kernel(), trans_a, m, n, k, alpha, a, lda, rhs, beta, c, ldc);
}

}  // namespace rc

namespace {
void check_sizes(const char* operation, int64_t m, int64_t n, int64_t k) {
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument(std::string(operation) + ": sizes must be non-negative, got m=" + std::to_string(m) +
                                " n=" + std::to_string(n) + " k=" + std::to_string(k));
}
}  // namespace

RC_EXPORT rc_status rc_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  return rc::guard([&] {
    check_sizes("rc_sgemm", m, n, k);
    if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || ldc < n)
      throw std::invalid_argument("rc_sgemm: a leading dimension is smaller than its row");
    rc::sgemm(trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  });
}

RC_EXPORT rc_status rc_pack_b(int32_t trans_b, int64_t k, int64_t n, const float* b, int64_t ldb, rc_packed_b** packed) {
  return rc::guard([&] {
    check_sizes("rc_pack_b", 0, n, k);
    if (!packed) throw std::invalid_argument("rc_pack_b: packed must not be null");
    if (ldb < (trans_b ? k : n)) throw std::invalid_argument("rc_pack_b: ldb is smaller than a row of b");
    *packed = reinterpret_cast<rc_packed_b*>(rc::pack_b(trans_b != 0, k, n, b, ldb).release());
  });
}

RC_EXPORT void rc_packed_b_free(rc_packed_b* packed) { delete reinterpret_cast<rc::PackedB*>(packed); }

RC_EXPORT rc_status rc_sgemm_packed(int32_t trans_a, int64_t m, float alpha, const float* a, int64_t lda,
                                    const rc_packed_b* packed, float beta, float* c, int64_t ldc) {
  return rc::guard([&] {
    if (!packed) throw std::invalid_argument("rc_sgemm_packed: packed must not be null");
    const auto& b = *reinterpret_cast<const rc::PackedB*>(packed);
    check_sizes("rc_sgemm_packed", m, b.cols(), b.rows());
    if (lda < (trans_a ? m : b.rows()) || ldc < b.cols())
      throw std::invalid_argument("rc_sgemm_packed: a leading dimension is smaller than its row");
    rc::sgemm_packed(trans_a != 0, m, alpha, a, lda, b, beta, c, ldc);
  });
}
