// The C ABI of the Recurrent native library. Every export has the rc_ prefix,
// takes blittable arguments and returns an rc_status; on failure the message is
// kept per thread and read with rc_last_error. No C++ exception crosses it.
#pragma once
#include <stdint.h>

#define RC_EXPORT extern "C" __attribute__((visibility("default")))

enum rc_status : int32_t {
  RC_OK = 0,
  RC_INVALID_ARGUMENT = 1,
  RC_OUT_OF_MEMORY = 2,
  RC_INTERNAL = 3,
};

// Bit flags of rc_cpu_features.
enum rc_cpu_feature : uint32_t {
  RC_CPU_AVX2_FMA = 1u << 0,
  RC_CPU_AVX512F = 1u << 1,
};

// Instruction-set levels the kernels may be restricted to (tests force the
// narrower paths on a wide machine through rc_set_isa).
enum rc_isa : int32_t {
  RC_ISA_AUTO = 0,
  RC_ISA_PORTABLE = 1,
  RC_ISA_AVX2 = 2,
  RC_ISA_AVX512 = 3,
};

RC_EXPORT int32_t rc_version(void);
RC_EXPORT uint32_t rc_cpu_features(void);
RC_EXPORT const char* rc_last_error(void);
RC_EXPORT rc_status rc_set_isa(int32_t isa);
RC_EXPORT int32_t rc_active_isa(void);

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major (see gemm.h).
RC_EXPORT rc_status rc_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// op(B)[K,N] packed once for repeated products with the same right-hand side (see gemm.h).
// Free with rc_packed_b_free; a packed matrix may be shared by threads for reading.
typedef struct rc_packed_b rc_packed_b;
RC_EXPORT rc_status rc_pack_b(int32_t trans_b, int64_t k, int64_t n, const float* b, int64_t ldb, rc_packed_b** packed);
RC_EXPORT void rc_packed_b_free(rc_packed_b* packed);
// C[M,N] = alpha * op(A)[M,K] * B + beta * C with B from rc_pack_b.
RC_EXPORT rc_status rc_sgemm_packed(int32_t trans_a, int64_t m, float alpha, const float* a, int64_t lda,
                                    const rc_packed_b* packed, float beta, float* c, int64_t ldc);

// Threads the native kernels use (the calling thread included); 0 restores the default,
// the CPUs this process may run on.
RC_EXPORT rc_status rc_set_num_threads(int32_t count);
RC_EXPORT int32_t rc_get_num_threads(void);

// ---- Recurrent layers (rnn_sequence.cpp) ----------------------------------------------------------
// One layer and one direction over a whole sequence. Letters: T steps, N batch, I input features,
// H hidden features, G gate blocks (Elman 1, GRU 3, LSTM 4). All buffers are row-major float32,
// owned by the caller, and must not overlap unless stated. Gate order is PyTorch's (each cell's definition,
// src/Kernels/Cells/<Cell>Cell.cs).
//
// cell: the managed CellKind's number; cells/registry.h lists them and rc_cell_info describes each.
// fused: nonzero runs the fused pointwise kernels; zero runs each elementwise operation as its own
// pass over whole buffers (the unfused baseline). The tape remembers the choice for backward.

// The number of cells (valid cell arguments are 0 .. count − 1).
RC_EXPORT int32_t rc_cell_count(void);

// Describes cell number cell: *name receives its managed CellKind name ("Lstm"; static storage, not to be
// freed), *gates its gate blocks G, *has_cell_state 1 where it carries c besides h (LSTM), else 0, *parameters
// its parameter count per layer and direction (the parameter_count a pass gives).
// Lets the managed side check that both sides number and describe the cells alike.
RC_EXPORT rc_status rc_cell_info(int32_t cell, const char** name, int64_t* gates, int32_t* has_cell_state, int64_t* parameters);

// What a training forward pass keeps for backward: per row (token) and layer-direction, in bytes,
// LSTM 24·H, GRU reset-after 20·H, GRU reset-before 16·H, Elman 4·H, plus h0 (and c0) once.
// Owned by the caller from rc_rnn_forward until rc_rnn_tape_free.
typedef struct rc_rnn_tape rc_rnn_tape;

// One pass of one layer and direction: every argument of rc_rnn_forward and rc_rnn_backward in one
// blittable struct, mirrored once on the managed side (NativeRnnDirection.cs; a test compares
// its size and offsets with rc_rnn_direction_layout). A new argument is a new field here. Zero-initialise it,
// then fill what the pass reads: fields a pass does not read may hold anything.
//
// Rows: every [T, N, ·] buffer is T·N rows in time-major order; row r (r = t·N + n when dense; packed with
// batch_sizes: see below) starts at r·stride
// elements, and stride ≥ the row's width. A stride above the width lets a bidirectional stack write each
// direction straight into its half of the [T, N, 2H] output (y at offset 0 or H, stride 2H) and read its
// half of dy, with no scratch copy; 0 means the width (dense).
//
// Variable-length batches (cuDNN's packed layout, PyTorch's PackedSequence): with batch_sizes b [T], step t runs only
// the first b_t of the N sequences, sorted longest first (b non-increasing, b[0] = N, b[T−1] ≥ 1), and the per-row
// buffers (x, input_ids, y, dy, dx) hold Σ b rows instead of T·N, step t's b_t rows starting at row Σ_{s<t} b_s, so a
// pass costs its real tokens. The states (h0, c0, h_n, c_n and their gradients) stay [N, H], in the sorted order. The
// forward direction runs sequence n over steps 0 … len_n − 1 and leaves its state at step len_n − 1 in h_n (c_n); the
// reverse direction starts it from h0 (c0) at its own last step len_n − 1 and runs down to step 0. Backward takes the
// same batch_sizes as its forward pass.
#define RC_RNN_MAX_PARAMETERS 8

typedef struct rc_rnn_direction {
  int32_t cell;         // the managed CellKind's number (see above)
  int32_t fused;        // nonzero: fused pointwise kernels; zero: the unfused baseline (forward only; backward follows the tape)
  int64_t steps;        // T ≥ 1
  int64_t batch;        // N ≥ 1
  int64_t input_size;   // I ≥ 1
  int64_t hidden_size;  // H ≥ 1
  int32_t reverse;      // nonzero walks t from T−1 to 0
  // Backward: nonzero adds the input gradient into dx (dx += ...) instead of overwriting it, so the two
  // directions of a layer sum their input gradients into one buffer with no managed loop.
  int32_t accumulate_dx;
  // Parameters by their position in the cell's CellDefinition.Parameters: every cell's first four are 0 weight_ih
  // [G·H, I], 1 weight_hh [G·H, H], 2 bias_ih [G·H], 3 bias_hh [G·H]; a cell with more (peepholes, layer-norm gains)
  // lists its own after them. Read only. parameter_count: the entries given, which must be the cell's count
  // (rc_cell_info's parameters).
  const float* parameters[RC_RNN_MAX_PARAMETERS];
  // Backward: their gradients, same positions and shapes, accumulated into (+=). Backward reads every parameter
  // but the biases (2 and 3), which may be null there.
  float* gradients[RC_RNN_MAX_PARAMETERS];
  int64_t parameter_count;
  // The input rows (T·N, or Σ batch_sizes): either x [rows of I, row stride x_stride] (input_table and input_ids null)
  // or rows of a table (x null): row r is input_table[input_ids[r]] ([vocab, I]; an id of -1 gives zeros). A
  // table's rows are projected once each, so with vocab < T·N the input projection costs vocab rows, not T·N.
  // Backward must see the input of its forward pass again (the tape does not keep it).
  const float* x;
  int64_t x_stride;
  const float* input_table;
  const int32_t* input_ids;  // [rows]
  int64_t vocab;
  // [T]: the running sequences per step of a packed batch (above); null for a dense batch (every b_t = N).
  const int32_t* batch_sizes;
  // Forward.
  const float* h0;  // [N, H]
  const float* c0;  // [N, H], LSTM only (else may be null)
  float* y;         // rows of H, row stride y_stride: overwritten; must not overlap an input
  int64_t y_stride;
  float* h_n;       // [N, H], overwritten
  float* c_n;       // [N, H], LSTM only, overwritten
  // Backward.
  const float* dy;    // rows of H, row stride dy_stride
  int64_t dy_stride;
  const float* dh_n;  // [N, H]
  const float* dc_n;  // [N, H], LSTM only
  float* dx;          // dense input: rows of I, row stride dx_stride; overwritten, or added to with accumulate_dx
  int64_t dx_stride;
  float* dinput_table;  // table input: [vocab, I], accumulated into
  float* dh0;           // [N, H], overwritten
  float* dc0;           // [N, H], LSTM only, overwritten
} rc_rnn_direction;

// Forward over pass's input rows from h0 (and c0). keep_for_backward != 0: *tape receives a new tape;
// else *tape (if tape is not null) is set to null and nothing per step outlives the call.
RC_EXPORT rc_status rc_rnn_forward(const rc_rnn_direction* pass, int32_t keep_for_backward, rc_rnn_tape** tape);

// Backward through the forward pass that made tape (which stays valid: backward may run again). pass
// describes the same pass (cell, sizes, reverse and batch_sizes must match the tape's; parameters and input must be
// those of the forward pass) plus the backward buffers: dy, dh_n (and dc_n) are read; dh0 (and dc0) are
// overwritten; for dense input dx is written (see accumulate_dx); for table input dinput_table is
// accumulated into; the gradients are accumulated into (+=).
RC_EXPORT rc_status rc_rnn_backward(rc_rnn_tape* tape, const rc_rnn_direction* pass);

// sizeof(rc_rnn_direction) and offsetof of each of its fields, in declaration order (the arrays as one
// field each), into offsets[0 .. capacity); returns the number of fields, or -1 if capacity is too small.
// For the test that the managed mirror lays the struct out alike.
RC_EXPORT int32_t rc_rnn_direction_layout(int64_t* size, int64_t* offsets, int32_t capacity);

// ---- One step with resident weights (haste's "iterate"; rnn_step.cpp) -----------------------------------------------
// A handle for one layer and one (forward) direction: created once, it packs W_ih and W_hh and copies the biases, so
// each step pays only its products and the cell's pointwise kernel — the same step bodies the sequence driver runs
// (forward_step and backward_step in rnn_sequence.cpp), not copies of them. Autoregressive generation, step-by-step
// training schedules and scheduled sampling step through it. A stack is one handle per layer; the caller chains them.
// The handle never reads the caller's parameters again: a later change to them is not seen (make a new handle).
// Read-only once created: several threads may step one handle at once (workspaces are per call).
//
// Training: rc_rnn_step_forward with a tape keeps what rc_rnn_step_backward needs in that caller-owned buffer; backward
// then runs from it and the step's input x, with the handle's resident weights. Steps are back-propagated in reverse
// order by the caller, which carries dh (and dc) from each step's backward to the step before's.
typedef struct rc_rnn_step rc_rnn_step;

// Reads pass's cell, fused, input_size, hidden_size, parameters and parameter_count (checked as rc_rnn_forward checks
// them; all are copied or packed); reverse must be 0; steps, batch and every buffer are ignored. training != 0 also packs what rc_rnn_step_backward
// reads (W_ih and W_hh untransposed: twice the weights' memory); a handle made without it refuses backward.
// *step receives the handle (null on failure).
RC_EXPORT rc_status rc_rnn_step_create(const rc_rnn_direction* pass, int32_t training, rc_rnn_step** step);

// One step of batch rows: x [N, I], h [N, H] (and c [N, H], LSTM) → h_out [N, H] (and c_out [N, H], LSTM), all dense
// row-major and owned by the caller. h_out must not overlap h or x (so x may not alias h_out: a stack's next layer reads
// this layer's h_out as its x and writes its own h_out elsewhere); c_out may be c (updated in place), else must not
// overlap it. c and c_out are ignored (may be null) for cells without a cell state.
// tape: null for inference; else rc_rnn_step_tape_floats(step, batch) floats, owned by the caller and overwritten,
// overlapping no other argument: what backward needs (copies of h and c, h_out, c_out, the activated gates, GRU
// reset-after's W_hn h + b_hn). Its first N·H floats are a copy of h, the next N·H a copy of h_out (a stack's backward
// reads the latter as the next layer's x); the rest is the handle's own layout. The tape does not hold x.
RC_EXPORT rc_status rc_rnn_step_forward(const rc_rnn_step* step, int64_t batch, const float* x, const float* h, const float* c,
                                        float* h_out, float* c_out, float* tape);

// Floats a training step of batch rows keeps in its tape: per N·H, LSTM 8 (h, h_out, c, c_out, gates 4), GRU
// reset-after 6 (h, h_out, gates 3, W_hn h + b_hn), GRU reset-before 5, Elman 2. 0 for a null handle or batch < 1.
RC_EXPORT int64_t rc_rnn_step_tape_floats(const rc_rnn_step* step, int64_t batch);

// Back-propagates one step that rc_rnn_step_forward ran with tape on this handle (or one made from the same
// parameters), for the same batch rows and given the same x [N, I] again. The tape is only read (backward may run
// again). Reads dy [N, H], the gradient of h_out through the step's output (the layer above, or the loss), and dh_out
// [N, H] (and dc_out [N, H], LSTM), the gradients of h_out and c_out through the step after (zeros for the last step).
// Writes dx [N, I] and dh [N, H] (and dc [N, H], LSTM): the gradients of x, h and c. dh may be dh_out and dc may be
// dc_out (updated in place, so a chain of steps carries one buffer); otherwise no output overlaps an input or another
// output. Adds (+=) into gradients[0 .. gradient_count): the cell's parameters in spec order, weight_ih [G·H, I],
// weight_hh [G·H, H], bias_ih [G·H], bias_hh [G·H], then the cell's own; gradient_count must be the cell's parameter
// count (as parameter_count). All buffers are the
// caller's; workspaces are per call. The handle must have been created with training.
RC_EXPORT rc_status rc_rnn_step_backward(const rc_rnn_step* step, int64_t batch, const float* x, const float* tape,
                                         const float* dy, const float* dh_out, const float* dc_out, float* dx, float* dh,
                                         float* dc, float* const* gradients, int64_t gradient_count);

// Bytes the handle's packed weights and biases hold, about (0 for null).
RC_EXPORT int64_t rc_rnn_step_bytes(const rc_rnn_step* step);

// Frees a handle; null is ignored.
RC_EXPORT void rc_rnn_step_free(rc_rnn_step* step);

// Bytes the tape holds (0 for null).
RC_EXPORT int64_t rc_rnn_tape_bytes(const rc_rnn_tape* tape);

// Frees a tape; null is ignored.
RC_EXPORT void rc_rnn_tape_free(rc_rnn_tape* tape);

// Large workspaces and tapes, once freed, are kept (at most 16 blocks, 512 MiB in all) so the next call
// reuses them instead of having the kernel zero fresh pages. This frees every kept block.
RC_EXPORT void rc_rnn_release_cached_memory(void);

// One elementwise operation of the pointwise kernels over count floats, on the instruction set in use:
// op 0 add, 1 sub, 2 mul (out = a op b), 3 sigmoid, 4 tanh, 5 relu, 6 one_minus (1 − a), 7 relu_mask
// (0 where a ≤ 0, else 1, NaN included), 8 copy (out = f(a); b unused, may be null). Exposed so the vector
// approximations of exp, sigmoid and tanh are tested against double precision on every path.
RC_EXPORT rc_status rc_rnn_elementwise(int32_t op, int64_t count, const float* a, const float* b, float* out);
