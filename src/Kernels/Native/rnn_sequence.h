// Whole-sequence forward and backward of one layer and direction: the input projection of all T
// steps as one matrix product, then per step only the recurrent product(s) and the pointwise work,
// then (backward) the weight gradients as single products over all T·N rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "gemm.h"
#include "isa/kernels.h"
#include "isa/passes.h"
#include "rc_api.h"

namespace rc::rnn {

// A float buffer that is not zeroed on allocation (every element is written before it is read).
// Large buffers (the [T·N, G·H] projections and gradients, the tape) are aligned to 2 MiB and offered
// to transparent huge pages: with 4 KiB pages, faulting in a fresh 50 MB workspace on every call cost
// as much as all the pointwise work of an LSTM at T=100, N=64, H=512. When freed they go to a small
// bounded cache (16 blocks, 512 MiB) for the next call; release_cached_memory empties it.
struct BufferFree {
  size_t capacity = 0;  // bytes
  void operator()(float* p) const;
};

struct Buffer {
  std::unique_ptr<float[], BufferFree> data;
  int64_t size = 0;
  static Buffer allocate(int64_t count);
  float* get() const { return data.get(); }
};

void release_cached_memory();

// Which rows of a pass each step computes: cuDNN's packed layout (PyTorch's PackedSequence). Step t runs batch rows
// [0, b_t) (the sequences sorted longest first, so those still running are a prefix; b non-increasing, b_0 = N), and its
// rows of every per-row buffer (x, y, dy, dx, the input projection, the gate gradients, the tape's gates) are the b_t
// rows from offsets[t] = Σ_{s<t} b_s: a pass costs its real tokens, rows() of them. Dense: every b_t = N.
//
// The tape's states and cells are slots of consecutive rows: slot 0 holds N rows, slot s ≥ 1 holds b_{s−1}, from row
// slot(s) = N + offsets[s − 1] (dense: s·N, a [T+1, N, H] block). The forward direction's step t reads slot t and
// writes slot t+1; the reverse one reads slot t+1 and writes slot t: each reads b_t rows of a slot with room for them.
// Forward, slot 0 is h0; reverse, rows [b_{t+1}, b_t) of slot t+1 are h0's (the sequences that start at step t, their
// own last), so a step reads one contiguous block whichever way it runs.
struct RowLayout {
  int64_t steps = 0, batch = 0;
  bool dense = true;              // every b_t = N: the T·N rows of a dense batch
  std::vector<int64_t> offsets;  // [T + 1]

  // batch_sizes: b [T], checked by the caller; null for dense.
  static RowLayout of(int64_t steps, int64_t batch, const int32_t* batch_sizes);
  int64_t rows() const { return offsets[steps]; }
  // b_t; 0 past either end, so b_{t+1} at t = T−1 says every sequence ends there.
  int64_t size(int64_t t) const { return t < 0 || t >= steps ? 0 : offsets[t + 1] - offsets[t]; }
  int64_t slot(int64_t s) const { return s == 0 ? 0 : batch + offsets[s - 1]; }
  // The first row of part `part` of `parts` row ranges holding about equal shares of the tokens (each row weighs the
  // steps it runs), for splitting a batch among threads; at least one row each. Dense: N·part/parts.
  int64_t balanced_bound(int64_t part, int64_t parts) const;
};

// What a training forward pass keeps for its backward pass; indexed by time t, not by step order.
// Per row (token) and layer-direction it holds (floats): LSTM 6·H (gates 4, h, c), GRU reset-after 5·H (gates 3, h,
// W_hn h + b_hn), GRU reset-before 4·H (gates 3, h), Elman H (h); plus h0 (and c0) once.
// The input x is not kept: backward takes it again.
struct Tape {
  int32_t cell;  // the managed CellKind's number (cells/registry.h)
  bool fused, reverse;
  int64_t steps, batch, input_size, hidden;
  RowLayout layout;
  Buffer gates;   // [rows, G·H] activated gates (empty for Elman)
  Buffer states;  // [N + rows, H] in layout's slots: step t starts from slot t (forward) or t+1 (reverse)
  Buffer cells;   // [N + rows, H] LSTM, in slots as states
  Buffer hn;      // [rows, H] GRU reset-after: W_hn h + b_hn

  int64_t bytes() const { return 4 * (gates.size + states.size + cells.size + hn.size); }
};

// A layer's input rows (T·N, or the packed rows of a RowLayout): dense, x [rows of I, row stride x_ld]; or rows of a
// table (an embedding lookup), row r being table[ids[r]] and zeros where ids[r] < 0, table [V, I]. With a table each of its V rows
// is projected once however often it is used ([V, I]·W_ih^T, then a gather), and backward sums the gate
// gradients per table row before the products: with V < T·N (a language model's vocabulary against T·N
// tokens) the input projection, dW_ih and the input gradient cost V rows instead of T·N.
struct LayerInput {
  const float* x = nullptr;       // the rows, or null with a table
  int64_t x_ld = 0;               // I when dense
  const float* table = nullptr;   // [V, I]
  const int32_t* ids = nullptr;   // [rows], each in [-1, V)
  int64_t vocab = 0;              // V
  bool from_table() const { return ids != nullptr; }
};

// W_hh packed for the per-step products (forward: transposed, pack_recurrent; backward: as it is,
// pack_recurrent_backward), and the recurrent bias the unfused forward steps add. A cell whose last block's product
// takes another operand (split_recurrent_product) has that block packed apart. Holds a pointer to bias_hh: the owner
// keeps it alive (the sequence driver for one call, a step handle for its life).
struct RecurrentWeights {
  std::unique_ptr<PackedB> packed;    // the first first_rows rows of W_hh: [H, first_rows] transposed, [first_rows, H] for backward
  std::unique_ptr<PackedB> packed_n;  // split_recurrent_product: the last block, [H, H]
  int64_t first_rows = 0;             // G·H, or (G−1)·H when split
  const float* bias_hh = nullptr;     // [G·H]
};

RecurrentWeights pack_recurrent(const CellOps& c, int64_t hidden, const float* weight_hh, const float* bias_hh);

// What backward's per-step products read: W_hh itself, untransposed (dh_prev = dGates · W_hh), split as pack_recurrent
// splits it; bias_hh is null.
RecurrentWeights pack_recurrent_backward(const CellOps& c, int64_t hidden, const float* weight_hh);

// Runs rows_body(row0, row1) over a step's N batch rows as the sequence driver runs its steps: split among the workers
// where the fused step is worth it and W_hh fits a core's L2 (one fork-join per step instead of two), else all N rows
// on the caller (the unfused baseline always takes whole batches).
void over_step_batch(bool fused, int64_t N, int64_t H, int64_t GH, const std::function<void(int64_t, int64_t)>& rows_body);

// The body of one forward time step for batch rows [row0, row1), shared by the sequence driver and the step handle
// (rc_rnn_step_forward): the recurrent product(s) from step.h_prev, the unfused passes' recurrent bias, and the cell's
// pointwise kernel (fused: over those rows; unfused: over all N rows, so only whole batches). step.gates holds this
// step's input projection (fused: without bias); recurrent [N, first_rows] and (split) recurrent_n [N, H] are
// workspaces this function sets step.recurrent to. train selects the kernels that fill the tape's fields.
void forward_step(const CellOps& c, bool fused, bool train, const RecurrentWeights& w, const Passes& passes, int64_t N,
                  StepForward& step, float* recurrent, float* recurrent_n, int64_t row0, int64_t row1);

// The body of one backward time step for batch rows [row0, row1), shared by the sequence driver and the step handle
// (rc_rnn_step_backward): the cell's pointwise backward (fused: over those rows; unfused: over all N rows), for a split
// product the gradient of its operand (drh [N, H], a workspace this sets step.drh to) and the second phase, then the
// recurrent product into step.dh: dh_prev = dGates · W_hh (w from pack_recurrent_backward), added to the direct path
// where the cell has one. step.dh holds the gradient of h_out on entry (from the later step; the caller's dy is apart).
void backward_step(const CellOps& c, bool fused, const RecurrentWeights& w, int64_t N, StepBackward& step, float* drh,
                   int64_t row0, int64_t row1);

// The gradients of W_hh and both biases from rows rows of one direction (accumulated, +=): gates [rows, G·H] as the
// tape keeps them (read by a split product's operand), dgates [rows, G·H] and (scales_recurrent_block) dgates_rec
// [rows, G·H] as backward_step left them, h_prevs [rows, H] the states those rows started from.
void add_recurrent_gradients(const CellOps& c, int64_t hidden, int64_t rows, const float* gates, const float* dgates,
                             const float* dgates_rec, const float* h_prevs, float* dweight_hh, float* dbias_ih, float* dbias_hh);

// The C ABI's checks, shared by its sources: require throws std::invalid_argument (RC_INVALID_ARGUMENT) with message
// unless condition holds; check_pass checks what both passes check (the cell, the sizes, the parameter table against the
// cell's count, batch_sizes), function naming the export in the message.
void require(bool condition, const std::string& message);
void check_pass(const std::string& function, const rc_rnn_direction& pass, bool backward);

// The fused kernels' bias [G·H]: b_ih + b_hh, except a scaled recurrent block's (b_ih alone; b_hn enters scaled).
std::vector<float> fused_bias(const CellOps& c, int64_t hidden, const float* bias_ih, const float* bias_hh);

// Runs one direction of pass (checked by the C ABI: sizes, batch_sizes, buffers, strides ≥ widths, ids in range; strides
// 0 resolved to the widths) over its input rows; writes y, h_n and (LSTM) c_n. When tape is not null it is
// filled for backward; otherwise only O(N·H) state is kept between steps.
void forward(const rc_rnn_direction& pass, const LayerInput& input, Tape* tape);

// Back-propagates through the pass that filled tape, given the same input. dh0, dc0 and (dense input) dx are
// overwritten (dx added to with accumulate_dx); the parameter gradients and (table input) dtable [V, I] are
// accumulated (+=).
void backward(const Tape& tape, const rc_rnn_direction& pass, const LayerInput& input);

}  // namespace rc::rnn
