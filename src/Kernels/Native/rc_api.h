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
// owned by the caller, and must not overlap unless stated. Gate order is PyTorch's (CellKind.cs).
//
// cell: 0 Elman tanh, 1 Elman relu, 2 LSTM (i, f, g, o), 3 GRU reset-after (PyTorch/cuDNN), 4 GRU reset-before:
// the managed CellKind's numbers, registered in cells/registry.h and described by rc_cell_info.
// fused: nonzero runs the fused pointwise kernels; zero runs each elementwise operation as its own
// pass over whole buffers (the unfused baseline). The tape remembers the choice for backward.

// The number of cells (valid cell arguments are 0 .. count − 1).
RC_EXPORT int32_t rc_cell_count(void);

// Describes cell number cell: *name receives its managed CellKind name ("Lstm"; static storage, not to be
// freed), *gates its gate blocks G, *has_cell_state 1 where it carries c besides h (LSTM), else 0.
// Lets the managed side check that both sides number the cells alike.
RC_EXPORT rc_status rc_cell_info(int32_t cell, const char** name, int64_t* gates, int32_t* has_cell_state);

// What a training forward pass keeps for backward: per step and layer-direction, in bytes,
// LSTM 24·N·H, GRU reset-after 20·N·H, GRU reset-before 16·N·H, Elman 4·N·H, plus h0 (and c0) once.
// Owned by the caller from rc_rnn_forward until rc_rnn_tape_free.
typedef struct rc_rnn_tape rc_rnn_tape;

// Forward over the input rows [T, N, I] from h0 (and c0 for LSTM) [N, H]; reverse != 0 walks t from T-1 to 0.
// The input is either x [T, N, I] (input_table and input_ids null) or rows of a table (x null): row r of
// the input is input_table[input_ids[r]] ([vocab, I]; an id of -1 gives zeros). A table's rows are
// projected once each, so with vocab < T·N the input projection costs vocab rows, not T·N.
// weight_ih [G·H, I], weight_hh [G·H, H], bias_ih and bias_hh [G·H]: read only.
// y [T, N, H], h_n and c_n [N, H]: overwritten (c0, c_n may be null unless LSTM).
// keep_for_backward != 0: *tape receives a new tape; else *tape (if tape is not null) is set to null and
// nothing per step outlives the call.
RC_EXPORT rc_status rc_rnn_forward(int32_t cell, int32_t fused, int64_t steps, int64_t batch, int64_t input_size,
                                   int64_t hidden_size, int32_t reverse, const float* weight_ih, const float* weight_hh,
                                   const float* bias_ih, const float* bias_hh, const float* x, const float* input_table,
                                   const int32_t* input_ids, int64_t vocab, const float* h0, const float* c0, float* y,
                                   float* h_n, float* c_n, int32_t keep_for_backward, rc_rnn_tape** tape);

// Backward through the forward pass that made tape (which stays valid: backward may run again).
// weight_ih, weight_hh and the input (x, or input_table, input_ids and vocab) must be those of that
// forward pass. dy [T, N, H], dh_n and dc_n [N, H] (dc_n LSTM only) are read. dh0, dc0 [N, H] and, for
// dense input, dx [T, N, I] are overwritten (dinput_table may be null); for table input dinput_table
// [vocab, I] is accumulated into (dx may be null). dweight_ih, dweight_hh, dbias_ih and dbias_hh (shaped
// as the weights) are accumulated into (+=).
RC_EXPORT rc_status rc_rnn_backward(rc_rnn_tape* tape, const float* weight_ih, const float* weight_hh, const float* x,
                                    const float* input_table, const int32_t* input_ids, int64_t vocab, const float* dy,
                                    const float* dh_n, const float* dc_n, float* dx, float* dinput_table, float* dh0,
                                    float* dc0, float* dweight_ih, float* dweight_hh, float* dbias_ih, float* dbias_hh);

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
