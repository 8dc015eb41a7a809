// Whole-sequence forward and backward of one layer and direction: the input projection of all T
// steps as one matrix product, then per step only the recurrent product(s) and the pointwise work,
// then (backward) the weight gradients as single products over all T·N rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include "rnn_pointwise.h"

namespace rc::rnn {

// A float buffer that is not zeroed on allocation (every element is written before it is read).
// Large buffers (the [T·N, G·H] projections and gradients, the tape) are aligned to 2 MiB and offered
// to transparent huge pages: with 4 KiB pages, faulting in a fresh 50 MB workspace on every call cost
// as much as all the pointwise work of an LSTM at T=100, N=64, H=512. When freed they go to a small
// bounded cache (8 blocks, 512 MiB) for the next call; release_cached_memory empties it.
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

// What a training forward pass keeps for its backward pass; indexed by time t, not by step order.
// Per step and layer-direction it holds (floats): LSTM 6·N·H (gates 4, h, c), GRU reset-after 5·N·H
// (gates 3, h, W_hn h + b_hn), GRU reset-before 4·N·H (gates 3, h), Elman N·H (h); plus h0 (and c0) once.
// The input x is not kept: backward takes it again.
struct Tape {
  Cell cell;
  bool fused, reverse;
  int64_t steps, batch, input_size, hidden;
  Buffer gates;   // [T, N, G·H] activated gates (empty for Elman)
  Buffer states;  // [T+1, N, H]: forward direction h_{t-1} at t (h0 at 0); reverse h_{t+1} at t+1 (h0 at T)
  Buffer cells;   // [T+1, N, H] LSTM, indexed as states
  Buffer hn;      // [T, N, H] GRU reset-after: W_hn h_prev + b_hn

  int64_t bytes() const { return 4 * (gates.size + states.size + cells.size + hn.size); }
};

struct LayerWeights {
  const float* weight_ih;  // [G·H, I]
  const float* weight_hh;  // [G·H, H]
  const float* bias_ih;    // [G·H]
  const float* bias_hh;    // [G·H]
};

// Runs one direction over x [T, N, I]; writes y [T, N, H], h_n and (LSTM) c_n [N, H]. When tape is
// not null it is filled for backward; otherwise only O(N·H) state is kept between steps.
void forward(Cell cell, bool fused, int64_t steps, int64_t batch, int64_t input_size, int64_t hidden, bool reverse,
             const LayerWeights& w, const float* x, const float* h0, const float* c0, float* y, float* h_n, float* c_n,
             Tape* tape);

// Back-propagates through the pass that filled tape. dx, dh0, dc0 are overwritten; the parameter
// gradients are accumulated (+=).
void backward(const Tape& tape, const float* weight_ih, const float* weight_hh, const float* x, const float* dy,
              const float* dh_n, const float* dc_n, float* dx, float* dh0, float* dc0, float* dweight_ih,
              float* dweight_hh, float* dbias_ih, float* dbias_hh);

}  // namespace rc::rnn
