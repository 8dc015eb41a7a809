#include "rnn_sequence.h"
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>
#include <sys/mman.h>
#include "gemm.h"
#include "isa/passes.h"
#include "parallel.h"
#include "rc_common.h"

namespace rc::rnn {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kLargeBlock = 2 * kHugePage;

// Large blocks freed by one call, kept for the next. A fresh block costs the kernel a zeroing pass
// over every page on first touch: a third of all the non-GEMM time of an LSTM at T=100, N=64,
// H=512 before this cache. Bounded, and emptied by rc_rnn_release_cached_memory.
// Blocks from kCachedMinBlock up are cached: at small shapes (T=50, N=16, H=128) the tape's blocks
// are a few hundred KiB, and freeing them to malloc let it trim and regrow its heap every call.
constexpr size_t kCachedBlocks = 16;
constexpr size_t kCachedMinBlock = size_t(256) << 10;
constexpr size_t kCachedBytes = size_t(512) << 20;

struct BlockCache {
  std::mutex mutex;
  std::vector<std::pair<void*, size_t>> blocks;  // (block, capacity in bytes)
  size_t bytes = 0;
};

// Never destroyed: a tape may be freed by a finalizer after static destructors have run.
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;
  return *cache;
}

void* take_cached_block(size_t bytes, size_t& capacity) {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  size_t best = cache.blocks.size();
  for (size_t i = 0; i < cache.blocks.size(); i++) {
    size_t c = cache.blocks[i].second;
    // Not more than twice the request, so a small call does not pin a large block.
    if (c >= bytes && c <= 2 * bytes && (best == cache.blocks.size() || c < cache.blocks[best].second)) best = i;
  }
  if (best == cache.blocks.size()) return nullptr;
  auto [block, cap] = cache.blocks[best];
  cache.blocks.erase(cache.blocks.begin() + static_cast<std::ptrdiff_t>(best));
  cache.bytes -= cap;
  capacity = cap;
  return block;
}

}  // namespace

void BufferFree::operator()(float* p) const {
  if (capacity >= kCachedMinBlock) {
    BlockCache& cache = block_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.blocks.size() < kCachedBlocks && cache.bytes + capacity <= kCachedBytes) {
      cache.blocks.emplace_back(p, capacity);
      cache.bytes += capacity;
      return;
    }
  }
  std::free(p);
}

Buffer Buffer::allocate(int64_t count) {
  size_t bytes = sizeof(float) * static_cast<size_t>(std::max<int64_t>(count, 1));
  bool large = bytes >= kLargeBlock;
  size_t alignment = large ? kHugePage : 64;
  bytes = (bytes + alignment - 1) / alignment * alignment;
  size_t capacity = bytes;
  void* p = bytes >= kCachedMinBlock ? take_cached_block(bytes, capacity) : nullptr;
  if (!p) {
    p = std::aligned_alloc(alignment, bytes);
    if (!p) throw std::bad_alloc();
    // Advice only: without transparent huge pages the block keeps 4 KiB pages.
    if (large) madvise(p, bytes, MADV_HUGEPAGE);
  }
  return Buffer{std::unique_ptr<float[], BufferFree>(static_cast<float*>(p), BufferFree{capacity}), count};
}

void release_cached_memory() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& block : cache.blocks) std::free(block.first);
  cache.blocks.clear();
  cache.bytes = 0;
}

RowLayout RowLayout::of(int64_t steps, int64_t batch, const int32_t* batch_sizes) {
  RowLayout layout;
  layout.steps = steps, layout.batch = batch;
  layout.offsets.resize(static_cast<size_t>(steps) + 1);
  layout.offsets[0] = 0;
  for (int64_t t = 0; t < steps; t++) layout.offsets[t + 1] = layout.offsets[t] + (batch_sizes ? batch_sizes[t] : batch);
  layout.dense = layout.offsets[steps] == steps * batch;  // every b_t = N (they are at most N)
  return layout;
}

int64_t RowLayout::balanced_bound(int64_t part, int64_t parts) const {
  if (dense) return batch * part / parts;
  // The tokens of rows [0, r): row p runs the steps with b_t > p.
  auto tokens_before = [&](int64_t r) {
    int64_t sum = 0;
    for (int64_t t = 0; t < steps; t++) sum += std::min(size(t), r);
    return sum;
  };
  const int64_t target = rows() * part / parts;
  int64_t lo = 0, hi = batch;  // the least r with tokens_before(r) ≥ target
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (tokens_before(mid) >= target) hi = mid;
    else lo = mid + 1;
  }
  return std::clamp(lo, part, batch - (parts - part));
}

namespace {

// Runs a pointwise kernel over batch rows [begin, end) of a step, split among the workers when large
// (inside a batch-split sequence the caller already owns its rows: it runs them itself).
template <class Kernel, class Step>
void run_rows(Kernel kernel, const Step& step, int64_t begin, int64_t end, int64_t cols) {
  const int64_t rows = end - begin;
  if (rows * cols < kParallelElements || rows < 2 || in_parallel_region()) {
    kernel(step, begin, end);
    return;
  }
  parallel_for(rows, [&](int64_t b, int64_t e) { kernel(step, begin + b, begin + e); });
}

// Batch rows never mix in a recurrence, so a sequence whose per-step work is small runs as one
// parallel region in which each worker takes a slice of the batch through all T steps: no
// synchronization per step, where otherwise two fork-joins (product, pointwise) of a few
// microseconds each cost as much as the step's arithmetic. Each worker then reads all of packed
// W_hh every step, so this is chosen only while that fits in a core's L2 (Zen 4: 1 MiB). Four rows
// per worker already beat the per-step split of the columns (N=8, H=128: 1.1–1.25× on 2 cores).
constexpr int64_t kBatchSplitMaxWeightBytes = int64_t{512} << 10;
constexpr int64_t kBatchSplitMinRows = 4;
// Below this many multiply-adds per step the whole sequence is not worth a second thread.
constexpr double kBatchSplitMinStepMacs = 1 << 18;

bool split_batch(int64_t N, int64_t H, int64_t GH) {
  const double step_macs = static_cast<double>(N) * static_cast<double>(GH) * static_cast<double>(H);
  return num_threads() > 1 && !in_parallel_region() && N >= 2 * kBatchSplitMinRows &&
         H * GH * static_cast<int64_t>(sizeof(float)) <= kBatchSplitMaxWeightBytes && step_macs >= kBatchSplitMinStepMacs;
}

// Runs rows_body(begin, end) over the batch: split among the workers when split, else whole on the caller. With a
// layout the rows are split by their tokens: the sorted rows of a packed batch run fewer steps the later they come.
template <class Body>
void over_batch(bool split, int64_t N, const Body& rows_body, const RowLayout* layout = nullptr) {
  if (!split) {
    rows_body(0, N);
    return;
  }
  const int64_t parts = std::min<int64_t>(num_threads(), N / kBatchSplitMinRows);
  auto bound = [&](int64_t part) { return layout ? layout->balanced_bound(part, parts) : N * part / parts; };
  parallel_for(parts, [&](int64_t begin, int64_t end) { rows_body(bound(begin), bound(end)); });
}

bool any_negative(int64_t rows, const int32_t* ids) {
  for (int64_t r = 0; r < rows; r++)
    if (ids[r] < 0) return true;
  return false;
}

// The product of a zero input row with W [rows, cols]: 0 for each row of W, unless the row holds a NaN or
// ±∞ (0·∞ is NaN). What a dense zero row of x projects to, so the table path gives what x would.
std::vector<float> zero_row_product(int64_t rows, int64_t cols, const float* w) {
  std::vector<float> out(rows, 0.0f);
  for (int64_t j = 0; j < rows; j++)
    for (int64_t k = 0; k < cols; k++) out[j] += 0.0f * w[j * cols + k];
  return out;
}

// out[r] = table[ids[r]] for each of rows rows of cols floats, zero_row where ids[r] < 0.
void gather_rows(int64_t rows, int64_t cols, const int32_t* ids, const float* table, const float* zero_row, float* out) {
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++)
      std::memcpy(out + r * cols, ids[r] < 0 ? zero_row : table + ids[r] * cols, sizeof(float) * cols);
  };
  if (rows * cols < kParallelElements) body(0, rows);
  else parallel_for(rows, body);
}

// sums[v] = Σ a[r] over the rows r with ids[r] = v ([V, cols], overwritten; rows with ids[r] < 0 are
// skipped). The columns are split among the workers so no two write the same sum: no atomics, and the
// order of the additions (and so the result) does not depend on the number of threads.
// The table rows some id in [0, vocab) selects, ascending.
std::vector<int64_t> used_rows(int64_t rows, int64_t vocab, const int32_t* ids) {
  std::vector<char> seen(static_cast<size_t>(vocab), 0);
  for (int64_t r = 0; r < rows; r++)
    if (ids[r] >= 0) seen[static_cast<size_t>(ids[r])] = 1;
  std::vector<int64_t> used;
  for (int64_t v = 0; v < vocab; v++)
    if (seen[static_cast<size_t>(v)]) used.push_back(v);
  return used;
}

void sum_rows_by_id(int64_t rows, int64_t cols, int64_t vocab, const int32_t* ids, const float* a, float* sums) {
  constexpr int64_t kColumnsPerTask = 256;
  const int64_t tasks = (cols + kColumnsPerTask - 1) / kColumnsPerTask;
  parallel_for(tasks, [&](int64_t begin, int64_t end) {
    const int64_t c0 = begin * kColumnsPerTask, c1 = std::min(cols, end * kColumnsPerTask);
    for (int64_t v = 0; v < vocab; v++) std::memset(sums + v * cols + c0, 0, sizeof(float) * (c1 - c0));
    for (int64_t r = 0; r < rows; r++) {
      if (ids[r] < 0) continue;
      const float* source = a + r * cols;
      float* sum = sums + ids[r] * cols;
      for (int64_t c = c0; c < c1; c++) sum[c] += source[c];
    }
  });
}

// out[c] += Σ_r a[r, c] over all T·N rows; the columns are split among the workers.
void add_column_sums(const ElementwiseOps& ops, int64_t rows, int64_t cols, const float* a, int64_t lda, float* out) {
  constexpr int64_t kColumnsPerTask = 256;
  int64_t tasks = (cols + kColumnsPerTask - 1) / kColumnsPerTask;
  parallel_for(tasks, [&](int64_t begin, int64_t end) {
    int64_t c0 = begin * kColumnsPerTask, c1 = std::min(cols, end * kColumnsPerTask);
    ops.add_column_sums(rows, c1 - c0, a + c0, lda, out + c0);
  });
}

// Slot of the state a step at time t starts from / writes, in Tape::states ordering.
inline int64_t prev_slot(bool reverse, int64_t t) { return reverse ? t + 1 : t; }
inline int64_t new_slot(bool reverse, int64_t t) { return reverse ? t : t + 1; }

}  // namespace

std::vector<float> fused_bias(const CellOps& c, int64_t H, const float* bias_ih, const float* bias_hh) {
  const int64_t GH = c.gates * H, last = GH - H;
  std::vector<float> bias(GH);
  for (int64_t j = 0; j < GH; j++) bias[j] = bias_ih[j] + bias_hh[j];
  if (c.scales_recurrent_block)
    for (int64_t j = last; j < GH; j++) bias[j] = bias_ih[j];
  return bias;
}

RecurrentWeights pack_recurrent(const CellOps& c, int64_t H, const float* weight_hh, const float* bias_hh) {
  RecurrentWeights w;
  const int64_t GH = c.gates * H;
  w.first_rows = c.split_recurrent_product ? GH - H : GH;
  w.packed = pack_b(true, H, w.first_rows, weight_hh, H);
  if (c.split_recurrent_product) w.packed_n = pack_b(true, H, H, weight_hh + w.first_rows * H, H);
  w.bias_hh = bias_hh;
  return w;
}

void forward_step(const CellOps& c, bool fused, bool train, const RecurrentWeights& w, const Passes& passes, int64_t N,
                  StepForward& step, float* recurrent, float* recurrent_n, int64_t row0, int64_t row1) {
  const int64_t H = step.hidden, rows = row1 - row0, first_rows = w.first_rows;
  const bool split_n = c.split_recurrent_product;
  step.recurrent = recurrent;
  step.recurrent_ld = first_rows;
  sgemm_packed(false, rows, 1.0f, step.h_prev + row0 * step.h_prev_ld, step.h_prev_ld, *w.packed, 0.0f,
               recurrent + row0 * first_rows, first_rows);
  if (!fused) passes.add_bias(first_rows, w.bias_hh, {recurrent, first_rows});
  if (split_n) {
    if (fused) run_rows(c.forward_operand, step, row0, row1, first_rows);
    else c.unfused_forward_operand(step, N);
    sgemm_packed(false, rows, 1.0f, step.rh_out + row0 * H, H, *w.packed_n, 0.0f, recurrent_n + row0 * H, H);
    if (!fused) passes.add_bias(H, w.bias_hh + first_rows, {recurrent_n, H});
    step.recurrent = recurrent_n;
    step.recurrent_ld = H;
  }
  if (fused) {
    run_rows(c.forward[train], step, row0, row1, split_n ? H : c.gates * H);
  } else {
    c.unfused_forward[train](step, N);
    if (train) passes.copy(H, {step.h_out, step.h_out_ld}, {step.h_copy, H});
  }
}

RecurrentWeights pack_recurrent_backward(const CellOps& c, int64_t H, const float* weight_hh) {
  RecurrentWeights w;
  const int64_t GH = c.gates * H;
  w.first_rows = c.split_recurrent_product ? GH - H : GH;
  w.packed = pack_b(false, w.first_rows, H, weight_hh, H);
  if (c.split_recurrent_product) w.packed_n = pack_b(false, H, H, weight_hh + w.first_rows * H, H);
  return w;
}

void over_step_batch(bool fused, int64_t N, int64_t H, int64_t GH, const std::function<void(int64_t, int64_t)>& rows_body) {
  over_batch(fused && split_batch(N, H, GH), N, rows_body);
}

void backward_step(const CellOps& c, bool fused, const RecurrentWeights& w, int64_t N, StepBackward& step, float* drh,
                   int64_t row0, int64_t row1) {
  const int64_t H = step.hidden, GH = c.gates * H, last = GH - H, rows = row1 - row0;
  step.drh = drh;
  if (fused) run_rows(c.backward, step, row0, row1, w.first_rows);
  else c.unfused_backward(step, N);
  if (c.split_recurrent_product) {
    sgemm_packed(false, rows, 1.0f, step.dgates + row0 * GH + last, GH, *w.packed_n, 0.0f, drh + row0 * H, H);
    if (fused) run_rows(c.backward_operand, step, row0, row1, H);
    else c.unfused_backward_operand(step, N);
  }
  // The recurrent path to the step before: added to the direct path where there is one, else overwriting dh.
  const float* dgr = c.scales_recurrent_block ? step.dgates_rec : step.dgates;
  sgemm_packed(false, rows, 1.0f, dgr + row0 * GH, GH, *w.packed, c.direct_state_path ? 1.0f : 0.0f, step.dh + row0 * H, H);
}

void add_recurrent_gradients(const CellOps& c, int64_t H, int64_t rows, const float* gates, const float* dgates,
                             const float* dgates_rec, const float* h_prevs, float* dweight_hh, float* dbias_ih, float* dbias_hh) {
  const ElementwiseOps& ops = kernels().elementwise;
  const int64_t GH = c.gates * H, last = GH - H;
  const float* dg_rec = c.scales_recurrent_block ? dgates_rec : dgates;
  if (c.split_recurrent_product) {
    sgemm(true, false, last, H, rows, 1.0f, dgates, GH, h_prevs, H, 1.0f, dweight_hh, H);
    // The last block's rows of W_hh saw the second product's operand, not h_prev.
    Buffer operand = Buffer::allocate(rows * H);
    c.recompute_operand(rows, H, gates, h_prevs, operand.get());
    sgemm(true, false, H, H, rows, 1.0f, dgates + last, GH, operand.get(), H, 1.0f, dweight_hh + last * H, H);
  } else {
    sgemm(true, false, GH, H, rows, 1.0f, dg_rec, GH, h_prevs, H, 1.0f, dweight_hh, H);
  }
  if (c.scales_recurrent_block) {
    add_column_sums(ops, rows, GH, dgates, GH, dbias_ih);
    add_column_sums(ops, rows, GH, dg_rec, GH, dbias_hh);
  } else {
    // Both biases see the same gradient: one reduction, added to both.
    std::vector<float> sums(GH, 0.0f);
    add_column_sums(ops, rows, GH, dgates, GH, sums.data());
    for (int64_t j = 0; j < GH; j++) dbias_ih[j] += sums[j], dbias_hh[j] += sums[j];
  }
}

void forward(const rc_rnn_direction& pass, const LayerInput& input, Tape* tape) {
  const int32_t cell = pass.cell;
  const bool fused = pass.fused != 0, reverse = pass.reverse != 0;
  const int64_t T = pass.steps, N = pass.batch, I = pass.input_size, H = pass.hidden_size;
  const float* weight_ih = pass.parameters[0];
  const float* weight_hh = pass.parameters[1];
  const float* bias_ih = pass.parameters[2];
  const float* bias_hh = pass.parameters[3];
  const float* h0 = pass.h0;
  const float* c0 = pass.c0;
  // y's rows may be another direction's half of a wider output: the kernels write row n of step t at
  // y + (offsets[t] + n)·ys, and without a tape read it back from there as the next step's h_prev.
  float* y = pass.y;
  const int64_t ys = pass.y_stride;
  const Kernels& k = kernels();
  const CellOps& c = k.cells.cells[cell];
  const bool train = tape != nullptr;
  const RowLayout layout = RowLayout::of(T, N, pass.batch_sizes);
  const int64_t G = c.gates, GH = G * H, NH = N * H, R = layout.rows();
  // The last gate block, where a GRU's r meets the recurrent product (split_recurrent_product, scales_recurrent_block).
  const int64_t last = GH - H;
  const bool has_c = c.has_cell_state, split_n = c.split_recurrent_product;

  if (train) {
    *tape = Tape{};
    tape->cell = cell;
    tape->fused = fused;
    tape->reverse = reverse;
    tape->steps = T, tape->batch = N, tape->input_size = I, tape->hidden = H;
    tape->layout = layout;
    if (c.keeps_gates) tape->gates = Buffer::allocate(R * GH);
    tape->states = Buffer::allocate(NH + R * H);
    if (has_c) tape->cells = Buffer::allocate(NH + R * H);
    if (c.scales_recurrent_block) tape->hn = Buffer::allocate(R * H);
  }

  // The input projection of every step at once: [rows, I] · W_ih^T -> [rows, G·H]. When the tape keeps
  // the gates it is computed into the tape, whose gates each step then overwrites in place.
  Buffer projection_workspace;
  float* projection;
  if (train && c.keeps_gates) {
    projection = tape->gates.get();
  } else {
    projection_workspace = Buffer::allocate(R * GH);
    projection = projection_workspace.get();
  }
  // The fused kernels add both biases as they read each gate (one vector, L1-resident), so the
  // product overwrites the projection and no pass over it is spent on the bias. A scaled recurrent
  // block's bias stays apart: r multiplies it. The unfused baseline adds b_ih here and b_hh to each
  // recurrent product, each as a pass of its own.
  const std::vector<float> bias = fused_bias(c, H, bias_ih, bias_hh);
  if (input.from_table()) {
    Buffer table_projection = Buffer::allocate(input.vocab * GH);
    sgemm(false, true, input.vocab, GH, I, 1.0f, input.table, I, weight_ih, I, 0.0f, table_projection.get(), GH);
    const std::vector<float> zero_row =
        any_negative(R, input.ids) ? zero_row_product(GH, I, weight_ih) : std::vector<float>(GH, 0.0f);
    gather_rows(R, GH, input.ids, table_projection.get(), zero_row.data(), projection);
  } else {
    sgemm(false, true, R, GH, I, 1.0f, input.x, input.x_ld, weight_ih, I, 0.0f, projection, GH);
  }
  if (!fused) Passes(k.elementwise, R).add_bias(GH, bias_ih, {projection, GH});

  // W_hh^T packed once for all steps.
  const RecurrentWeights recurrent_weights = pack_recurrent(c, H, weight_hh, bias_hh);

  // Per-call workspaces; nothing is allocated per step.
  Buffer recurrent = Buffer::allocate(N * GH);
  Buffer cell_state = (has_c && !train) ? Buffer::allocate(NH) : Buffer{};
  Buffer rh = split_n ? Buffer::allocate(NH) : Buffer{};
  Buffer recurrent_n = split_n ? Buffer::allocate(NH) : Buffer{};
  Buffer temp1 = fused ? Buffer{} : Buffer::allocate(NH);
  Buffer temp2 = fused ? Buffer{} : Buffer::allocate(NH);
  // Inference, reverse, packed: a step where sequences start reads their h0 rows beside the step before's outputs in y.
  Buffer h_joined = (!train && reverse && !layout.dense) ? Buffer::allocate(NH) : Buffer{};

  float* states = train ? tape->states.get() : nullptr;
  float* cells = train && has_c ? tape->cells.get() : nullptr;
  if (train && !reverse) {
    std::memcpy(states, h0, sizeof(float) * NH);
    if (has_c) std::memcpy(cells, c0, sizeof(float) * NH);
  } else if (train) {
    // Each sequence starts from h0 (c0) at its own last step t: rows [b_{t+1}, b_t) of slot t+1.
    for (int64_t t = 0; t < T; t++) {
      const int64_t begin = layout.size(t + 1), count = layout.size(t) - begin, row = layout.slot(t + 1) + begin;
      if (count == 0) continue;
      std::memcpy(states + row * H, h0 + begin * H, sizeof(float) * count * H);
      if (has_c) std::memcpy(cells + row * H, c0 + begin * H, sizeof(float) * count * H);
    }
  } else if (has_c) {
    // Step t updates rows [0, b_t) in place: the rows past it hold c0 until their sequence starts (reverse) or their
    // final state once it has ended (forward).
    std::memcpy(cell_state.get(), c0, sizeof(float) * NH);
  }

  // Batch rows [row0, row1) through all T steps; the unfused baseline always takes the whole batch.
  auto run_steps = [&](int64_t row0, int64_t row1) {
    const float* h_prev = h0;
    int64_t h_prev_ld = H;
    for (int64_t s = 0; s < T; s++) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t running = layout.size(t), end = std::min(row1, running);
      if (end <= row0) continue;  // these rows' sequences have ended (forward) or not yet started (reverse)
      float* h_out = y + layout.offsets[t] * ys;
      if (train) {
        h_prev = states + layout.slot(prev_slot(reverse, t)) * H, h_prev_ld = H;
      } else if (reverse && layout.size(t + 1) < end) {
        // Rows [b_{t+1}, b_t) start here, from h0; the rows before them continue from step t+1's output.
        const int64_t joined = std::max(row0, layout.size(t + 1));
        if (joined > row0) {
          for (int64_t n = row0; n < joined; n++) std::memcpy(h_joined.get() + n * H, h_prev + n * h_prev_ld, sizeof(float) * H);
          std::memcpy(h_joined.get() + joined * H, h0 + joined * H, sizeof(float) * (end - joined) * H);
          h_prev = h_joined.get(), h_prev_ld = H;
        } else {
          h_prev = h0, h_prev_ld = H;
        }
      }

      StepForward step{};
      step.hidden = H;
      step.gates = projection + layout.offsets[t] * GH;
      step.bias = bias.data();
      step.bias_hn = bias_hh + last;
      step.h_prev = h_prev;
      step.h_prev_ld = h_prev_ld;
      step.c_prev = has_c ? (train ? cells + layout.slot(prev_slot(reverse, t)) * H : cell_state.get()) : nullptr;
      step.c_out = has_c ? (train ? cells + layout.slot(new_slot(reverse, t)) * H : cell_state.get()) : nullptr;
      step.h_out = h_out;
      step.h_out_ld = ys;
      step.h_copy = train ? states + layout.slot(new_slot(reverse, t)) * H : nullptr;
      step.hn_out = train && c.scales_recurrent_block ? tape->hn.get() + layout.offsets[t] * H : nullptr;
      step.rh_out = rh.get();
      step.scratch[0] = temp1.get(), step.scratch[1] = temp2.get();
      step.own = pass.parameters + kBaseParameters;

      // The unfused passes run over whole buffers: the running rows, all of them (the unfused path never splits).
      forward_step(c, fused, train, recurrent_weights, Passes(k.elementwise, running), running, step, recurrent.get(),
                   recurrent_n.get(), row0, end);
      h_prev = h_out;
      h_prev_ld = ys;
    }
  };
  over_batch(fused && split_batch(N, H, GH), N, run_steps, layout.dense ? nullptr : &layout);

  // The final states: the reverse direction's all at step 0; the forward one's, rows [b_{t+1}, b_t) at step t, where
  // their sequences end.
  for (int64_t t = reverse ? 0 : T - 1; t >= 0; t--) {
    const int64_t begin = reverse ? 0 : layout.size(t + 1), end = layout.size(t);
    for (int64_t n = begin; n < end; n++) std::memcpy(pass.h_n + n * H, y + (layout.offsets[t] + n) * ys, sizeof(float) * H);
    if (has_c && train)
      std::memcpy(pass.c_n + begin * H, cells + (layout.slot(new_slot(reverse, t)) + begin) * H, sizeof(float) * (end - begin) * H);
    if (reverse) break;
  }
  if (has_c && !train) std::memcpy(pass.c_n, cell_state.get(), sizeof(float) * NH);
}

void backward(const Tape& tape, const rc_rnn_direction& pass, const LayerInput& input) {
  const float* weight_ih = pass.parameters[0];
  const float* weight_hh = pass.parameters[1];
  float* dweight_ih = pass.gradients[0];
  float* dweight_hh = pass.gradients[1];
  float* dbias_ih = pass.gradients[2];
  float* dbias_hh = pass.gradients[3];
  const float* dy = pass.dy;
  const int64_t dys = pass.dy_stride;
  const Kernels& k = kernels();
  const CellOps& c = k.cells.cells[tape.cell];
  const bool reverse = tape.reverse, fused = tape.fused;
  const RowLayout& layout = tape.layout;
  const int64_t T = tape.steps, N = tape.batch, I = tape.input_size, H = tape.hidden;
  const int64_t G = c.gates, GH = G * H, NH = N * H, R = layout.rows();
  const bool has_c = c.has_cell_state, split_n = c.split_recurrent_product, after = c.scales_recurrent_block;

  // dGates [rows, G·H], in the rows of x, so the weight gradients are single products at the end.
  Buffer dgates = Buffer::allocate(R * GH);
  Buffer dgates_rec = after ? Buffer::allocate(R * GH) : Buffer{};
  // W_hh packed once (untransposed: dh_prev = dGates · W_hh).
  const RecurrentWeights recurrent_weights = pack_recurrent_backward(c, H, weight_hh);
  Buffer dh = Buffer::allocate(NH);
  Buffer dc = has_c ? Buffer::allocate(NH) : Buffer{};
  Buffer drh = split_n ? Buffer::allocate(NH) : Buffer{};
  Buffer temps[4];
  if (!fused)
    for (auto& temp : temps) temp = Buffer::allocate(NH);
  // Step t touches rows [0, b_t) of dh and dc only. Forward direction, a sequence's rows keep dh_n (dc_n) until the
  // step where it ends; reverse, once its first step is done they keep the gradient of h0 (c0), its state before that.
  std::memcpy(dh.get(), pass.dh_n, sizeof(float) * NH);
  if (has_c) std::memcpy(dc.get(), pass.dc_n, sizeof(float) * NH);

  const float* states = tape.states.get();
  // Batch rows [row0, row1) through all T steps; the unfused baseline always takes the whole batch.
  auto run_steps = [&](int64_t row0, int64_t row1) {
    for (int64_t s = T - 1; s >= 0; s--) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t running = layout.size(t), end = std::min(row1, running), r = layout.offsets[t];
      if (end <= row0) continue;  // no sequence of these rows runs step t
      StepBackward step{};
      step.hidden = H;
      step.gates = tape.gates.get() ? tape.gates.get() + r * GH : nullptr;
      step.h_prev = states + layout.slot(prev_slot(reverse, t)) * H;
      step.h_new = states + layout.slot(new_slot(reverse, t)) * H;
      step.c_prev = has_c ? tape.cells.get() + layout.slot(prev_slot(reverse, t)) * H : nullptr;
      step.c_new = has_c ? tape.cells.get() + layout.slot(new_slot(reverse, t)) * H : nullptr;
      step.hn = after ? tape.hn.get() + r * H : nullptr;
      step.dy = dy + r * dys;
      step.dy_ld = dys;
      step.dh = dh.get();
      step.dc = dc.get();
      step.dgates = dgates.get() + r * GH;
      step.dgates_rec = after ? dgates_rec.get() + r * GH : nullptr;
      for (int i = 0; i < 4; i++) step.scratch[i] = temps[i].get();
      step.own = pass.parameters + kBaseParameters;
      step.d_own = pass.gradients + kBaseParameters;
      // The unfused passes run over whole buffers: the running rows, all of them (the unfused path never splits).
      backward_step(c, fused, recurrent_weights, running, step, drh.get(), row0, end);
    }
  };
  over_batch(fused && split_batch(N, H, GH), N, run_steps, layout.dense ? nullptr : &layout);
  std::memcpy(pass.dh0, dh.get(), sizeof(float) * NH);
  if (has_c) std::memcpy(pass.dc0, dc.get(), sizeof(float) * NH);

  // Weight and bias gradients over all rows at once, against the states the steps started from in the rows' order.
  // Reverse, those are one block (slot t+1 = row N + offsets[t]); forward, slot t is that block shifted by N − b_{t−1}
  // rows, which is 0 only when dense: packed, they are gathered.
  Buffer h_prevs_gathered;
  const float* h_prevs = states + (reverse ? NH : 0);
  if (!reverse && !layout.dense) {
    h_prevs_gathered = Buffer::allocate(R * H);
    for (int64_t t = 0; t < T; t++)
      std::memcpy(h_prevs_gathered.get() + layout.offsets[t] * H, states + layout.slot(t) * H, sizeof(float) * layout.size(t) * H);
    h_prevs = h_prevs_gathered.get();
  }
  // Table input: a table row's uses share its gradient terms, so the gates' gradients are summed per
  // row first and both products below run over V rows instead of T·N.
  // Table rows no id uses are not rows of the dense x, so they enter neither product (0 · NaN in an unused row
  // would otherwise reach dW_ih and the table's gradient); when some are unused, both products run over the used
  // rows, gathered.
  Buffer dgates_by_id, used_dgates, used_table;
  std::vector<int64_t> used;
  int64_t used_count = input.vocab;
  const float* dgates_rows = nullptr;
  const float* table_rows = input.table;
  if (input.from_table()) {
    dgates_by_id = Buffer::allocate(input.vocab * GH);
    sum_rows_by_id(R, GH, input.vocab, input.ids, dgates.get(), dgates_by_id.get());
    dgates_rows = dgates_by_id.get();
    used = used_rows(R, input.vocab, input.ids);
    if (static_cast<int64_t>(used.size()) < input.vocab) {
      used_count = static_cast<int64_t>(used.size());
      used_dgates = Buffer::allocate(used_count * GH);
      used_table = Buffer::allocate(used_count * I);
      for (int64_t k = 0; k < used_count; k++) {
        std::memcpy(used_dgates.get() + k * GH, dgates_by_id.get() + used[k] * GH, sizeof(float) * GH);
        std::memcpy(used_table.get() + k * I, input.table + used[k] * I, sizeof(float) * I);
      }
      dgates_rows = used_dgates.get();
      table_rows = used_table.get();
    }
    sgemm(true, false, GH, I, used_count, 1.0f, dgates_rows, GH, table_rows, I, 1.0f, dweight_ih, I);
    // Rows of zeros (ids < 0) add dgates · 0 to dW_ih, which is NaN in row j of it where a gradient of gate j
    // is NaN or ±∞ there: as dense x does. Finite, the terms are zero and change nothing.
    if (any_negative(R, input.ids)) {
      std::vector<float> pad(GH, 0.0f);
      for (int64_t r = 0; r < R; r++)
        if (input.ids[r] < 0)
          for (int64_t j = 0; j < GH; j++) pad[j] += 0.0f * dgates.get()[r * GH + j];
      for (int64_t j = 0; j < GH; j++)
        if (pad[j] != pad[j])
          for (int64_t c = 0; c < I; c++) dweight_ih[j * I + c] += pad[j];
    }
  } else {
    sgemm(true, false, GH, I, R, 1.0f, dgates.get(), GH, input.x, input.x_ld, 1.0f, dweight_ih, I);
  }
  add_recurrent_gradients(c, H, R, tape.gates.get(), dgates.get(), dgates_rec.get(), h_prevs, dweight_hh, dbias_ih, dbias_hh);
  if (input.from_table() && used_count == input.vocab) {
    sgemm(false, false, input.vocab, I, GH, 1.0f, dgates_by_id.get(), GH, weight_ih, I, 1.0f, pass.dinput_table, I);
  } else if (input.from_table()) {
    Buffer dtable_used = Buffer::allocate(used_count * I);
    sgemm(false, false, used_count, I, GH, 1.0f, dgates_rows, GH, weight_ih, I, 0.0f, dtable_used.get(), I);
    for (int64_t k = 0; k < used_count; k++)
      for (int64_t c = 0; c < I; c++) pass.dinput_table[used[k] * I + c] += dtable_used.get()[k * I + c];
  } else {
    // With accumulate_dx the second direction of a layer adds its input gradient to the first's in the product.
    sgemm(false, false, R, I, GH, 1.0f, dgates.get(), GH, weight_ih, I, pass.accumulate_dx ? 1.0f : 0.0f, pass.dx,
          pass.dx_stride);
  }
}

}  // namespace rc::rnn

// ---- C ABI -----------------------------------------------------------------------------------------

struct rc_rnn_tape {
  rc::rnn::Tape tape;
};

namespace rc::rnn {
void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

}  // namespace rc::rnn

namespace {
using rc::rnn::require;

// A row stride of 0 means dense; below the row's width rows would overlap.
int64_t resolve_stride(const std::string& function, const char* name, int64_t stride, int64_t width) {
  if (stride == 0) return width;
  require(stride >= width, function + ": " + name + ": expected 0 (dense) or a row stride ≥ " + std::to_string(width) +
                               ", got " + std::to_string(stride));
  return stride;
}

// The input rows of a checked pass: T·N, or Σ batch_sizes.
int64_t pass_rows(const rc_rnn_direction& pass) {
  if (!pass.batch_sizes) return pass.steps * pass.batch;
  int64_t rows = 0;
  for (int64_t t = 0; t < pass.steps; t++) rows += pass.batch_sizes[t];
  return rows;
}

// Exactly one of x and (input_table, input_ids) is given; every id is checked so a bad one fails here
// rather than reading outside the table.
rc::rnn::LayerInput layer_input(const std::string& function, const rc_rnn_direction& pass) {
  const int64_t rows = pass_rows(pass);
  if (!pass.input_ids) {
    require(pass.x != nullptr, function + ": x and input_ids are both null; expected one");
    return {pass.x, resolve_stride(function, "x_stride", pass.x_stride, pass.input_size), nullptr, nullptr, 0};
  }
  require(pass.x == nullptr, function + ": both x and input_ids were given; expected one");
  if (!pass.input_table || pass.vocab < 1)
    throw std::invalid_argument(function + ": input_ids needs input_table and vocab ≥ 1, got vocab " + std::to_string(pass.vocab));
  for (int64_t r = 0; r < rows; r++)
    if (pass.input_ids[r] < -1 || pass.input_ids[r] >= pass.vocab)
      throw std::invalid_argument(function + ": input_ids[" + std::to_string(r) + "] is " + std::to_string(pass.input_ids[r]) +
                                  "; expected -1 (zeros) or an index in [0, " + std::to_string(pass.vocab) + ")");
  return {nullptr, 0, pass.input_table, pass.input_ids, pass.vocab};
}

}  // namespace

namespace rc::rnn {
// What both passes check: the cell, the sizes, the parameter table (all of the cell's entries; backward reads
// neither bias, which the driver folds into the forward pass), batch_sizes.
void check_pass(const std::string& function, const rc_rnn_direction& pass, bool backward) {
  const int32_t cells = rc::rnn::cell_count();
  if (pass.cell < 0 || pass.cell >= cells)
    throw std::invalid_argument(function + ": cell: expected 0.." + std::to_string(cells - 1) + ", got " + std::to_string(pass.cell));
  if (pass.steps < 1 || pass.batch < 1 || pass.input_size < 1 || pass.hidden_size < 1)
    throw std::invalid_argument(function + ": steps, batch, input_size, hidden_size: expected ≥ 1, got " +
                                std::to_string(pass.steps) + ", " + std::to_string(pass.batch) + ", " +
                                std::to_string(pass.input_size) + ", " + std::to_string(pass.hidden_size));
  const int64_t count = rc::rnn::cell_ops(pass.cell).parameters;
  require(count <= RC_RNN_MAX_PARAMETERS, function + ": the cell registers " + std::to_string(count) +
                                              " parameters, more than RC_RNN_MAX_PARAMETERS; raise it");
  require(pass.parameter_count == count, function + ": parameter_count: expected " + std::to_string(count) + " for cell " +
                                             rc::rnn::cell_ops(pass.cell).name + ", got " + std::to_string(pass.parameter_count));
  for (int64_t p = 0; p < count; p++)
    require(pass.parameters[p] != nullptr || (backward && (p == 2 || p == 3)),
            function + ": parameters[" + std::to_string(p) + "] is null");
  if (pass.batch_sizes) {
    const int32_t* b = pass.batch_sizes;
    auto fail = [&](int64_t t, const std::string& expected) {
      throw std::invalid_argument(function + ": batch_sizes[" + std::to_string(t) + "] is " + std::to_string(b[t]) + "; expected " +
                                  expected + " (batch sizes per step, as a packed batch's: non-increasing from b[0] = batch = " +
                                  std::to_string(pass.batch) + " to b[T-1] ≥ 1)");
    };
    if (b[0] != pass.batch) fail(0, std::to_string(pass.batch) + ", the batch");
    for (int64_t t = 1; t < pass.steps; t++)
      if (b[t] < 1 || b[t] > b[t - 1]) fail(t, "a size in [1, b[" + std::to_string(t - 1) + "] = " + std::to_string(b[t - 1]) + "]");
  }
}
}  // namespace rc::rnn

using rc::rnn::check_pass;

RC_EXPORT rc_status rc_rnn_forward(const rc_rnn_direction* pass_in, int32_t keep_for_backward, rc_rnn_tape** tape) {
  return rc::guard([&] {
    if (tape) *tape = nullptr;
    require(pass_in != nullptr, "rc_rnn_forward: pass is null");
    rc_rnn_direction pass = *pass_in;
    check_pass("rc_rnn_forward", pass, false);
    const bool has_c = rc::rnn::cell_ops(pass.cell).has_cell_state;
    require(pass.h0 && pass.y && pass.h_n, "rc_rnn_forward: a required buffer (h0, y, h_n) is null");
    const rc::rnn::LayerInput input = layer_input("rc_rnn_forward", pass);
    pass.y_stride = resolve_stride("rc_rnn_forward", "y_stride", pass.y_stride, pass.hidden_size);
    require(!has_c || (pass.c0 && pass.c_n), "rc_rnn_forward: a cell with a cell state (LSTM) needs c0 and c_n");
    require(!keep_for_backward || tape, "rc_rnn_forward: keep_for_backward needs a place for the tape");
    std::unique_ptr<rc_rnn_tape> kept = keep_for_backward ? std::make_unique<rc_rnn_tape>() : nullptr;
    rc::rnn::forward(pass, input, kept ? &kept->tape : nullptr);
    if (kept) *tape = kept.release();
  });
}

RC_EXPORT rc_status rc_rnn_backward(rc_rnn_tape* tape, const rc_rnn_direction* pass_in) {
  return rc::guard([&] {
    require(tape != nullptr, "rc_rnn_backward: tape is null (was the forward pass run with keep_for_backward?)");
    require(pass_in != nullptr, "rc_rnn_backward: pass is null");
    rc_rnn_direction pass = *pass_in;
    check_pass("rc_rnn_backward", pass, true);
    const rc::rnn::Tape& t = tape->tape;
    require(pass.cell == t.cell && pass.steps == t.steps && pass.batch == t.batch && pass.input_size == t.input_size &&
                pass.hidden_size == t.hidden && (pass.reverse != 0) == t.reverse,
            "rc_rnn_backward: cell, steps, batch, input_size, hidden_size or reverse differ from the tape's forward pass");
    bool same_rows = true;  // null is every b_t = N, as in forward
    for (int64_t s = 0; same_rows && s < t.steps; s++) same_rows = (pass.batch_sizes ? pass.batch_sizes[s] : pass.batch) == t.layout.size(s);
    require(same_rows, "rc_rnn_backward: batch_sizes differ from the tape's forward pass");
    const bool has_c = rc::rnn::cell_ops(t.cell).has_cell_state;
    require(pass.dy && pass.dh_n && pass.dh0, "rc_rnn_backward: a required buffer (dy, dh_n, dh0) is null");
    for (int64_t p = 0; p < pass.parameter_count; p++)
      require(pass.gradients[p] != nullptr, "rc_rnn_backward: gradients[" + std::to_string(p) + "] is null");
    const rc::rnn::LayerInput input = layer_input("rc_rnn_backward", pass);
    require(input.from_table() ? pass.dinput_table != nullptr : pass.dx != nullptr,
            "rc_rnn_backward: dx (dense input) or dinput_table (table input) is null");
    pass.dy_stride = resolve_stride("rc_rnn_backward", "dy_stride", pass.dy_stride, pass.hidden_size);
    if (!input.from_table()) pass.dx_stride = resolve_stride("rc_rnn_backward", "dx_stride", pass.dx_stride, pass.input_size);
    require(!has_c || (pass.dc_n && pass.dc0), "rc_rnn_backward: a cell with a cell state (LSTM) needs dc_n and dc0");
    rc::rnn::backward(t, pass, input);
  });
}

RC_EXPORT int32_t rc_rnn_direction_layout(int64_t* size, int64_t* offsets, int32_t capacity) {
#define RC_FIELD(f) static_cast<int64_t>(offsetof(rc_rnn_direction, f))
  const int64_t fields[] = {
      RC_FIELD(cell),        RC_FIELD(fused),      RC_FIELD(steps),        RC_FIELD(batch),
      RC_FIELD(input_size),  RC_FIELD(hidden_size), RC_FIELD(reverse),     RC_FIELD(accumulate_dx),
      RC_FIELD(parameters),  RC_FIELD(gradients),  RC_FIELD(parameter_count), RC_FIELD(x),
      RC_FIELD(x_stride),    RC_FIELD(input_table), RC_FIELD(input_ids),   RC_FIELD(vocab),
      RC_FIELD(batch_sizes), RC_FIELD(h0),         RC_FIELD(c0),           RC_FIELD(y),
      RC_FIELD(y_stride),    RC_FIELD(h_n),        RC_FIELD(c_n),          RC_FIELD(dy),
      RC_FIELD(dy_stride),   RC_FIELD(dh_n),       RC_FIELD(dc_n),         RC_FIELD(dx),
      RC_FIELD(dx_stride),   RC_FIELD(dinput_table), RC_FIELD(dh0),        RC_FIELD(dc0),
  };
#undef RC_FIELD
  const int32_t count = static_cast<int32_t>(sizeof fields / sizeof fields[0]);
  if (size) *size = static_cast<int64_t>(sizeof(rc_rnn_direction));
  if (!offsets || capacity < count) return -1;
  for (int32_t i = 0; i < count; i++) offsets[i] = fields[i];
  return count;
}

RC_EXPORT rc_status rc_cell_info(int32_t cell, const char** name, int64_t* gates, int32_t* has_cell_state, int64_t* parameters) {
  return rc::guard([&] {
    const int32_t cells = rc::rnn::cell_count();
    if (cell < 0 || cell >= cells)
      throw std::invalid_argument("rc_cell_info: cell: expected 0.." + std::to_string(cells - 1) + ", got " + std::to_string(cell));
    require(name && gates && has_cell_state && parameters, "rc_cell_info: a required pointer is null");
    const rc::rnn::CellOps& ops = rc::rnn::cell_ops(cell);
    *name = ops.name;
    *gates = ops.gates;
    *has_cell_state = ops.has_cell_state ? 1 : 0;
    *parameters = ops.parameters;
  });
}

RC_EXPORT int32_t rc_cell_count(void) { return rc::rnn::cell_count(); }

RC_EXPORT int64_t rc_rnn_tape_bytes(const rc_rnn_tape* tape) { return tape ? tape->tape.bytes() : 0; }

RC_EXPORT void rc_rnn_tape_free(rc_rnn_tape* tape) { delete tape; }

RC_EXPORT rc_status rc_rnn_elementwise(int32_t op, int64_t count, const float* a, const float* b, float* out) {
  return rc::guard([&] {
    if (op < 0 || op > 8) throw std::invalid_argument("rc_rnn_elementwise: op: expected 0..8, got " + std::to_string(op));
    if (count < 0) throw std::invalid_argument("rc_rnn_elementwise: count: expected ≥ 0, got " + std::to_string(count));
    if (count == 0) return;
    require(a && out && (op > 2 || b), "rc_rnn_elementwise: a required buffer is null");
    const rc::rnn::ElementwiseOps& e = rc::rnn::kernels().elementwise;
    rc::rnn::ElementwiseOps::Binary binary[] = {e.add, e.sub, e.mul};
    rc::rnn::ElementwiseOps::Unary unary[] = {e.sigmoid, e.tanh, e.relu, e.one_minus, e.relu_mask, e.copy};
    if (op <= 2) binary[op](1, count, a, count, b, count, out, count);
    else unary[op - 3](1, count, a, count, out, count);
  });
}

RC_EXPORT void rc_rnn_release_cached_memory(void) { rc::rnn::release_cached_memory(); }
