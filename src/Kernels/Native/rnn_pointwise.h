// The pointwise parts of the recurrent cells: everything in one time step except the
// matrix products. Two families share one calling convention:
//   - fused kernels: bias add, activations and the state update in one pass over a row;
//   - elementwise operations: one operation per pass over a whole buffer, from which
//     rnn_unfused.cpp composes each cell as a framework without fusion runs it (the baseline).
// Each family is compiled once per instruction set (rnn_pointwise_{portable,avx2,avx512}.cpp)
// and chosen at run time by rc::current_isa().
//
// Layouts are row-major, one row per batch element: a gate buffer [N, G·H] holds the gate
// blocks in PyTorch's order (CellKind.cs), a state buffer [N, H] one state per row.
#pragma once
#include <cstdint>
#include "rc_common.h"

namespace rc::rnn {

// The numbers are those of the managed CellKind enum.
enum class Cell : int32_t { RnnTanh = 0, RnnRelu = 1, Lstm = 2, GruResetAfter = 3, GruResetBefore = 4 };

inline int64_t gate_count(Cell cell) {
  switch (cell) {
    case Cell::Lstm: return 4;
    case Cell::GruResetAfter:
    case Cell::GruResetBefore: return 3;
    default: return 1;
  }
}

// One forward time step over rows [row_begin, row_end) of the batch. Which fields a kernel
// reads is listed at the kernel; the rest may be null.
struct StepForward {
  int64_t hidden;           // H
  float* gates;             // [N, G·H]: in, the input projection W_ih x (no bias); out, the activated gates
                            // (always for GRU reset-before's first phase, else only when training)
  const float* bias;        // [G·H] b_ih + b_hh, except the n block of GRU reset-after: b_in alone
  const float* recurrent;   // [N, recurrent_ld]: the recurrent product of this step (no bias unless stated)
  int64_t recurrent_ld;
  const float* bias_hn;     // [H] GRU reset-after: b_hn, which r multiplies and so cannot be folded
  const float* h_prev;      // [N, H]
  const float* c_prev;      // [N, H] LSTM
  float* c_out;             // [N, H] LSTM; may alias c_prev
  float* h_out;             // [N, H]
  float* h_copy;            // [N, H] training: the tape's copy of h_out
  float* hn_out;            // [N, H] GRU reset-after training: W_hn h + b_hn, saved for backward
  float* rh_out;            // [N, H] GRU reset-before first phase: r ⊙ h_prev, the operand of W_hn
};

// One backward time step over rows [row_begin, row_end).
struct StepBackward {
  int64_t hidden;           // H
  const float* gates;       // [N, G·H] saved activated gates
  const float* h_prev;      // [N, H] saved state the step started from
  const float* h_new;       // [N, H] Elman: saved output of the step
  const float* c_prev;      // [N, H] LSTM
  const float* c_new;       // [N, H] LSTM
  const float* hn;          // [N, H] GRU reset-after: saved W_hn h + b_hn
  const float* dy;          // [N, H] gradient of the step's output
  float* dh;                // [N, H] in: gradient from the later step; out (GRU): the direct path dh·z to h_prev,
                            // to which the recurrent product is then added (LSTM, Elman: left as it was)
  float* dc;                // [N, H] LSTM: in, dc of this step; out, dc of the step before
  float* dgates;            // [N, G·H] out: gradient of the gate pre-activations (input side)
  float* dgates_rec;        // [N, 3H] GRU reset-after out: gradient of W_hh h + b_hh (the n block times r)
  const float* drh;         // [N, H] GRU reset-before second phase: gradient of r ⊙ h_prev
};

using ForwardKernel = void (*)(const StepForward&, int64_t row_begin, int64_t row_end);
using BackwardKernel = void (*)(const StepBackward&, int64_t row_begin, int64_t row_end);

// Fused kernels; index [0] inference, [1] training where the two differ.
struct FusedKernels {
  ForwardKernel elman_tanh_forward[2];     // reads gates, bias, recurrent [N,H]; writes h_out (+h_copy)
  ForwardKernel elman_relu_forward[2];
  ForwardKernel lstm_forward[2];           // reads gates, bias, recurrent, c_prev; writes c_out, h_out (+gates, h_copy)
  ForwardKernel gru_after_forward[2];      // reads gates, bias, recurrent, bias_hn, h_prev; writes h_out
                                           // (+gates, h_copy, hn_out)
  ForwardKernel gru_before_gates;          // phase 1: recurrent [N, 2H] (rows r, z); writes activated r, z into gates, rh_out
  ForwardKernel gru_before_forward[2];     // phase 2: recurrent [N, H] = W_hn (r ⊙ h); writes h_out (+n into gates, h_copy)
  BackwardKernel elman_tanh_backward;      // reads h_new, dy, dh; writes dgates
  BackwardKernel elman_relu_backward;
  BackwardKernel lstm_backward;            // reads gates, c_prev, c_new, dy, dh, dc; writes dgates, dc
  BackwardKernel gru_after_backward;       // reads gates, h_prev, hn, dy, dh; writes dgates, dgates_rec, dh
  BackwardKernel gru_before_backward;      // phase 1: reads gates, h_prev, dy, dh; writes dgates (z, n), dh = dh·z
  BackwardKernel gru_before_backward_reset;// phase 2: reads gates, h_prev, drh; writes dgates (r), dh += drh·r
};

// One elementwise operation per call over a [rows, cols] view of each operand (row strides ld*).
// Outputs may alias an input with the same view.
struct ElementwiseOps {
  using Binary = void (*)(int64_t rows, int64_t cols, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* out, int64_t ldo);
  using Unary = void (*)(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out, int64_t ldo);
  Binary add, sub, mul;
  Unary sigmoid, tanh, relu, one_minus, relu_mask, copy;
  // out[r, c] += bias[c]
  void (*add_bias)(int64_t rows, int64_t cols, const float* bias, float* out, int64_t ldo);
  // out[c] += Σ_r a[r, c]: the bias gradients (used by both the fused and the unfused path)
  void (*add_column_sums)(int64_t rows, int64_t cols, const float* a, int64_t lda, float* out);
};

struct Kernels {
  FusedKernels fused;
  ElementwiseOps elementwise;
};

const Kernels& portable_kernels();
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();

// The kernels of the instruction set in use now (rc_set_isa and the CPU).
inline const Kernels& kernels() {
  switch (rc::current_isa()) {
    case RC_ISA_AVX512: return avx512_kernels();
    case RC_ISA_AVX2: return avx2_kernels();
    default: return portable_kernels();
  }
}

}  // namespace rc::rnn
