// What a recurrent cell is to the sequence driver (rnn_sequence.cpp): its facts and its pointwise work,
// everything in one time step except the matrix products. Each cell is one header (cells/<cell>.h) that
// fills a CellOps, written once over a vector type and instantiated per instruction set; cells/registry.h
// lists them, so adding a cell is one header and one line there. The driver never asks which cell it
// runs, only what the CellOps says (its structural flags, split_recurrent_product and scales_recurrent_block,
// are today exactly the two GRU forms).
//
// Two forms of the same step share one calling convention:
//   - fused kernels: bias add, activations and the state update in one pass over a row;
//   - unfused steps: one elementwise operation per pass over whole buffers (isa/passes.h), as a
//     framework without fusion runs the cell (the baseline).
//
// Layouts are row-major, one row per batch element: a gate buffer [N, G·H] holds the gate blocks in
// PyTorch's order (the cell's definition, src/Kernels/Cells/<Cell>Cell.cs), a state buffer [N, H] one state per row.
//
// Parameters: every cell has PyTorch's four, weight_ih, weight_hh, bias_ih, bias_hh, which the driver applies (the matrix
// products and the biases). A cell may have more of its own (peepholes, layer-norm gains), after those four in the
// order of its managed CellDefinition.Parameters: the driver passes them to the kernels as own (values) and d_own
// (their gradients, accumulated into), so a cell's own parameters need no edit of the driver.
#pragma once
#include <cstdint>

namespace rc::rnn {

// One forward time step. Which fields a cell reads is listed at its kernels; the rest may be null.
struct StepForward {
  int64_t hidden;           // H
  float* gates;             // [N, G·H]: in, the input projection W_ih x (fused: no bias; unfused: + b_ih); out, the
                            // activated gates (always for the first phase of a split step, else only when training)
  const float* bias;        // fused: [G·H] b_ih + b_hh, except a scaled recurrent block (scales_recurrent_block): b_ih alone
  const float* recurrent;   // [N, recurrent_ld]: the recurrent product of this step (fused: no bias; unfused: + b_hh)
  int64_t recurrent_ld;
  const float* bias_hn;     // [H] fused, scales_recurrent_block: the recurrent bias of the scaled block (GRU's b_hn)
  const float* h_prev;      // N rows of H, row stride h_prev_ld (the output's stride when it is the step before's output)
  int64_t h_prev_ld;
  const float* c_prev;      // [N, H] has_cell_state
  float* c_out;             // [N, H] has_cell_state; may alias c_prev
  float* h_out;             // N rows of H, row stride h_out_ld: a bidirectional stack's direction writes its half of each row
  int64_t h_out_ld;
  float* h_copy;            // [N, H] fused training: the tape's copy of h_out (unfused: the driver copies it)
  float* hn_out;            // [N, H] scales_recurrent_block training: the scaled block's recurrent product + bias
  float* rh_out;            // [N, H] split_recurrent_product, first phase: the second product's operand (GRU's r ⊙ h)
  float* scratch[2];        // [N, H] each, unfused: intermediate results
  const float* const* own;  // the cell's own parameters (CellOps::parameters − 4 of them), in spec order
};

// One backward time step.
struct StepBackward {
  int64_t hidden;           // H
  const float* gates;       // [N, G·H] saved activated gates (keeps_gates)
  const float* h_prev;      // [N, H] saved state the step started from
  const float* h_new;       // [N, H] saved output of the step
  const float* c_prev;      // [N, H] has_cell_state
  const float* c_new;       // [N, H] has_cell_state
  const float* hn;          // [N, H] scales_recurrent_block: saved recurrent product + bias of the scaled block
  const float* dy;          // N rows of H, row stride dy_ld: gradient of the step's output
  int64_t dy_ld;
  float* dh;                // [N, H] in: gradient from the later step; out (direct_state_path): the gradient through
                            // that path, to which the recurrent product is then added (else left as it was)
  float* dc;                // [N, H] has_cell_state: in, dc of this step; out, dc of the step before
  float* dgates;            // [N, G·H] out: gradient of the gate pre-activations (input side)
  float* dgates_rec;        // [N, G·H] scales_recurrent_block out: gradient of W_hh h + b_hh
  const float* drh;         // [N, H] split_recurrent_product, second phase: gradient of the second product's operand
  float* scratch[4];        // [N, H] each, unfused: intermediate results
  const float* const* own;  // the cell's own parameters, as StepForward's
  float* const* d_own;      // their gradients, same order and shapes, accumulated into (+=)
};

// A fused kernel runs batch rows [row_begin, row_end), so the driver may split them among threads; an
// unfused step runs all N rows, one pass per operation, each pass split among threads by itself.
template <class Step>
using RowKernel = void (*)(const Step&, int64_t row_begin, int64_t row_end);
template <class Step>
using BatchKernel = void (*)(const Step&, int64_t rows);

// PyTorch's four parameters every cell has (weight_ih, weight_hh, bias_ih, bias_hh): the driver's own.
constexpr int64_t kBaseParameters = 4;

struct CellOps {
  const char* name;              // the managed CellKind's name (NativeCellRegistryTests compares them)
  int64_t gates;                 // G
  // Parameters per layer and direction, the four base ones included: the managed CellDefinition.Parameters.Count
  // (NativeCellRegistryTests compares them). A cell with its own raises it and sets own_floats.
  int64_t parameters = kBaseParameters;
  // The floats of own parameter k (position kBaseParameters + k) for a layer's sizes; a step handle copies them.
  int64_t (*own_floats)(int64_t k, int64_t input, int64_t hidden) = nullptr;
  bool has_cell_state;           // a state c besides h (LSTM): the tape keeps it, forward takes c0, backward dc
  bool keeps_gates;              // the tape keeps the activated gates (Elman's backward needs only h')
  // The last gate block's recurrent product takes r ⊙ h (GRU reset-before), known only once the other
  // blocks are activated: W_hh is packed as two products, and the step runs in two phases with the second
  // product between them (forward_operand before it, forward after; backward before it, backward_operand after).
  bool split_recurrent_product;
  // The last gate block's recurrent product enters scaled, r ⊙ (W_hn h + b_hn) (GRU reset-after): its bias
  // cannot be folded into the input's, the tape keeps the product (hn), and its gradient differs from the
  // gate's, so backward writes dgates_rec apart and sums the two bias gradients separately.
  bool scales_recurrent_block;
  // h' depends on h besides through the recurrent product (GRU: z ⊙ h): the backward kernel writes that
  // gradient into dh, and the recurrent product adds to it.
  bool direct_state_path;

  RowKernel<StepForward> forward[2];          // fused, [training]
  RowKernel<StepForward> forward_operand;     // fused, split_recurrent_product: first phase
  RowKernel<StepBackward> backward;           // fused
  RowKernel<StepBackward> backward_operand;   // fused, split_recurrent_product: second phase
  BatchKernel<StepForward> unfused_forward[2];
  BatchKernel<StepForward> unfused_forward_operand;
  BatchKernel<StepBackward> unfused_backward;
  BatchKernel<StepBackward> unfused_backward_operand;
  // split_recurrent_product: the second product's operand again, for rows rows of saved gates [rows, G·H] and
  // the states the steps started from [rows, H], into out [rows, H]; for the gradient of the last block of W_hh.
  void (*recompute_operand)(int64_t rows, int64_t hidden, const float* gates, const float* h_prev, float* out);
};

// The cells of one instruction set, numbered as the managed CellKind.
struct CellTable {
  const CellOps* cells;
  int32_t count;
};

}  // namespace rc::rnn
