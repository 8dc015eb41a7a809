// One step of one layer and (forward) direction with its weights resident (haste's "iterate"): the handle behind
// rc_rnn_step_*. Each step runs the sequence driver's own step bodies (forward_step, backward_step in rnn_sequence.cpp)
// with weights packed once, when the handle is made, instead of once per whole-sequence call: autoregressive
// generation and step-by-step training pay only their products and the cell's pointwise kernels per step.
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include "gemm.h"
#include "isa/passes.h"
#include "rc_common.h"
#include "rnn_sequence.h"

namespace rc::rnn {

namespace {

// What one layer-direction needs for stepping: W_ih^T and W_hh^T packed, the biases copied, so a step reads nothing of
// the caller's parameters (managed arrays may move) and pays no packing; with training, W_ih and W_hh packed again
// untransposed for backward's products (dx = dGates · W_ih, dh = dGates · W_hh). Read-only once built.
struct StepWeights {
  StepWeights(const rc_rnn_direction& pass, bool training);  // reads cell, fused, input_size, hidden_size, parameters
  int32_t cell;
  bool fused, training;
  int64_t input_size, hidden;
  std::unique_ptr<PackedB> packed_ih;           // W_ih^T [I, G·H]
  std::vector<float> bias_ih, bias_hh, bias;    // [G·H] each; bias as fused_bias gives it
  RecurrentWeights recurrent;                   // its bias_hh points into this bias_hh
  std::unique_ptr<PackedB> packed_ih_backward;  // training: W_ih [G·H, I]
  RecurrentWeights recurrent_backward;          // training: W_hh [G·H, H] as pack_recurrent_backward packs it
  std::vector<std::vector<float>> own;          // the cell's own parameters (cell.h), copied
  std::vector<const float*> own_pointers;       // into own, as the step structs take them
  int64_t bytes() const;                        // what the packed weights and biases take, about
};

StepWeights::StepWeights(const rc_rnn_direction& pass, bool training)
    : cell(pass.cell), fused(pass.fused != 0), training(training), input_size(pass.input_size), hidden(pass.hidden_size) {
  const CellOps& c = cell_ops(cell);
  const int64_t GH = c.gates * hidden;
  const float* bias_ih_in = pass.parameters[2];
  const float* bias_hh_in = pass.parameters[3];
  bias_ih.assign(bias_ih_in, bias_ih_in + GH);
  bias_hh.assign(bias_hh_in, bias_hh_in + GH);
  bias = fused_bias(c, hidden, bias_ih.data(), bias_hh.data());
  packed_ih = pack_b(true, input_size, GH, pass.parameters[0], input_size);
  recurrent = pack_recurrent(c, hidden, pass.parameters[1], bias_hh.data());
  if (training) {
    packed_ih_backward = pack_b(false, GH, input_size, pass.parameters[0], input_size);
    recurrent_backward = pack_recurrent_backward(c, hidden, pass.parameters[1]);
  }
  for (int64_t k = 0; k + kBaseParameters < c.parameters; k++) {
    require(c.own_floats != nullptr, std::string("cell ") + c.name + " has its own parameters but no own_floats");
    const float* value = pass.parameters[kBaseParameters + k];
    own.emplace_back(value, value + c.own_floats(k, input_size, hidden));
    own_pointers.push_back(own.back().data());
  }
}

int64_t StepWeights::bytes() const {
  const int64_t GH = cell_ops(cell).gates * hidden;
  int64_t own_floats = 0;
  for (const auto& values : own) own_floats += static_cast<int64_t>(values.size());
  return 4 * ((training ? 2 : 1) * (GH * input_size + GH * hidden) + 3 * GH + own_floats);
}

// Where a training step keeps its tape's fields in the caller's buffer of tape_floats(c, N, H) floats. h and h_out
// come first so the C ABI can promise where h_out is (a stack's next layer reads it as its input x in backward); the
// rest is as the sequence driver's Tape holds it per step.
struct TapeSlots {
  float* h;      // [N, H] the state the step started from
  float* h_out;  // [N, H]
  float* c;      // [N, H] has_cell_state
  float* c_out;  // [N, H] has_cell_state
  float* gates;  // [N, G·H] keeps_gates: activated gates
  float* hn;     // [N, H] scales_recurrent_block: W_hn h + b_hn
};

int64_t tape_floats(const CellOps& c, int64_t N, int64_t H) {
  const int64_t NH = N * H;
  return 2 * NH + (c.has_cell_state ? 2 * NH : 0) + (c.keeps_gates ? N * c.gates * H : 0) + (c.scales_recurrent_block ? NH : 0);
}

TapeSlots tape_slots(const CellOps& c, int64_t N, int64_t H, float* tape) {
  const int64_t NH = N * H;
  TapeSlots s{};
  float* next = tape;
  auto take = [&](bool present, int64_t count) {
    float* p = present ? next : nullptr;
    if (present) next += count;
    return p;
  };
  s.h = take(true, NH);
  s.h_out = take(true, NH);
  s.c = take(c.has_cell_state, NH);
  s.c_out = take(c.has_cell_state, NH);
  s.gates = take(c.keeps_gates, N * c.gates * H);
  s.hn = take(c.scales_recurrent_block, NH);
  return s;
}

// One step of N rows: x [N, I], h (and c) [N, H] → h_out (and c_out) [N, H]. h_out must not overlap h; c_out may be c.
// The input projection, then forward_step: the same step the sequence driver runs. With a tape [tape_floats] the step
// keeps what step_backward needs (copies of h and c first, so the caller may then reuse or change them).
void step_forward(const StepWeights& w, int64_t N, const float* x, const float* h, const float* c_in, float* h_out, float* c_out,
                  float* tape) {
  const Kernels& k = kernels();
  const CellOps& c = k.cells.cells[w.cell];
  const int64_t H = w.hidden, I = w.input_size, GH = c.gates * H, NH = N * H;
  const bool split_n = c.split_recurrent_product, fused = w.fused, train = tape != nullptr, has_c = c.has_cell_state;
  const TapeSlots kept = train ? tape_slots(c, N, H, tape) : TapeSlots{};
  if (train) {
    std::memcpy(kept.h, h, sizeof(float) * NH);
    if (has_c) std::memcpy(kept.c, c_in, sizeof(float) * NH);
  }
  // Per call, not in the handle: the handle stays read-only, so threads may step it at once. A tape that keeps the gates
  // takes the input projection, which the kernels then overwrite with the activated gates, as in the sequence driver.
  Buffer gates_workspace = train && c.keeps_gates ? Buffer{} : Buffer::allocate(N * GH);
  float* gates = train && c.keeps_gates ? kept.gates : gates_workspace.get();
  Buffer recurrent = Buffer::allocate(N * w.recurrent.first_rows);
  Buffer rh = split_n ? Buffer::allocate(NH) : Buffer{};
  Buffer recurrent_n = split_n ? Buffer::allocate(NH) : Buffer{};
  Buffer temp1 = fused ? Buffer{} : Buffer::allocate(NH);
  Buffer temp2 = fused ? Buffer{} : Buffer::allocate(NH);
  Passes passes(k.elementwise, N);
  sgemm_packed(false, N, 1.0f, x, I, *w.packed_ih, 0.0f, gates, GH);
  if (!fused) passes.add_bias(GH, w.bias_ih.data(), {gates, GH});

  StepForward step{};
  step.hidden = H;
  step.gates = gates;
  step.bias = w.bias.data();
  step.bias_hn = w.bias_hh.data() + (GH - H);
  step.h_prev = train ? kept.h : h;
  step.h_prev_ld = H;
  step.c_prev = has_c ? (train ? kept.c : c_in) : nullptr;
  step.c_out = has_c ? (train ? kept.c_out : c_out) : nullptr;
  step.h_out = h_out;
  step.h_out_ld = H;
  step.h_copy = kept.h_out;
  step.hn_out = kept.hn;
  step.rh_out = rh.get();
  step.scratch[0] = temp1.get(), step.scratch[1] = temp2.get();
  step.own = w.own_pointers.data();
  // As the sequence driver splits a batch through all its steps, so one step: one fork-join instead of two.
  over_step_batch(fused, N, H, GH, [&](int64_t row0, int64_t row1) {
    StepForward rows_step = step;
    forward_step(c, fused, train, w.recurrent, passes, N, rows_step, recurrent.get(), recurrent_n.get(), row0, row1);
  });
  if (train && has_c) std::memcpy(c_out, kept.c_out, sizeof(float) * NH);
}

// Back-propagates one step that step_forward ran with tape, given its input x again: dy and dh_out (and dc_out) are the
// gradients of h_out (through the step's output and through the later step) and of c_out; writes dx [N, I], dh and
// dc [N, H] (the gradients of h and c; dh may be dh_out, dc may be dc_out) and adds the parameter gradients into
// gradients (the cell's parameters in spec order: weight_ih, weight_hh, bias_ih, bias_hh, then its own). The per-step part is the sequence driver's backward_step;
// the weight gradients are its products over N rows instead of T·N.
void step_backward(const StepWeights& w, int64_t N, const float* x, const float* tape, const float* dy, const float* dh_out,
                   const float* dc_out, float* dx, float* dh, float* dc, float* const* gradients) {
  const Kernels& k = kernels();
  const CellOps& c = k.cells.cells[w.cell];
  const int64_t H = w.hidden, I = w.input_size, GH = c.gates * H, NH = N * H;
  const bool fused = w.fused, has_c = c.has_cell_state, after = c.scales_recurrent_block;
  // The step only reads the tape; TapeSlots is one type for both directions.
  const TapeSlots kept = tape_slots(c, N, H, const_cast<float*>(tape));
  Buffer dgates = Buffer::allocate(N * GH);
  Buffer dgates_rec = after ? Buffer::allocate(N * GH) : Buffer{};
  Buffer drh = c.split_recurrent_product ? Buffer::allocate(NH) : Buffer{};
  Buffer temps[4];
  if (!fused)
    for (auto& temp : temps) temp = Buffer::allocate(NH);
  // backward_step reads the later step's gradient from dh (and dc) and leaves this step's there.
  if (dh != dh_out) std::memcpy(dh, dh_out, sizeof(float) * NH);
  if (has_c && dc != dc_out) std::memcpy(dc, dc_out, sizeof(float) * NH);

  StepBackward step{};
  step.hidden = H;
  step.gates = kept.gates;
  step.h_prev = kept.h;
  step.h_new = kept.h_out;
  step.c_prev = kept.c;
  step.c_new = kept.c_out;
  step.hn = kept.hn;
  step.dy = dy;
  step.dy_ld = H;
  step.dh = dh;
  step.dc = has_c ? dc : nullptr;
  step.dgates = dgates.get();
  step.dgates_rec = dgates_rec.get();
  for (int i = 0; i < 4; i++) step.scratch[i] = temps[i].get();
  step.own = w.own_pointers.data();
  step.d_own = gradients + kBaseParameters;
  over_step_batch(fused, N, H, GH, [&](int64_t row0, int64_t row1) {
    StepBackward rows_step = step;
    backward_step(c, fused, w.recurrent_backward, N, rows_step, drh.get(), row0, row1);
  });

  sgemm(true, false, GH, I, N, 1.0f, dgates.get(), GH, x, I, 1.0f, gradients[0], I);
  add_recurrent_gradients(c, H, N, kept.gates, dgates.get(), dgates_rec.get(), kept.h, gradients[1], gradients[2], gradients[3]);
  sgemm_packed(false, N, 1.0f, dgates.get(), GH, *w.packed_ih_backward, 0.0f, dx, I);
}

}  // namespace

}  // namespace rc::rnn

// ---- C ABI -----------------------------------------------------------------------------------------

struct rc_rnn_step {
  rc::rnn::StepWeights weights;
  rc_rnn_step(const rc_rnn_direction& pass, bool training) : weights(pass, training) {}
};

using rc::rnn::check_pass;
using rc::rnn::require;

RC_EXPORT rc_status rc_rnn_step_create(const rc_rnn_direction* pass_in, int32_t training, rc_rnn_step** step) {
  return rc::guard([&] {
    require(step != nullptr, "rc_rnn_step_create: step is null");
    *step = nullptr;
    require(pass_in != nullptr, "rc_rnn_step_create: pass is null");
    rc_rnn_direction pass = *pass_in;
    // A step handle has no T or N of its own: check the rest as a one-step, one-row pass would be checked.
    pass.steps = 1, pass.batch = 1;
    check_pass("rc_rnn_step_create", pass, false);
    require(pass.reverse == 0, "rc_rnn_step_create: reverse: a step runs forward in time; expected 0");
    *step = new rc_rnn_step(pass, training != 0);
  });
}

RC_EXPORT rc_status rc_rnn_step_forward(const rc_rnn_step* step, int64_t batch, const float* x, const float* h, const float* c,
                                        float* h_out, float* c_out, float* tape) {
  return rc::guard([&] {
    require(step != nullptr, "rc_rnn_step_forward: step is null");
    require(batch >= 1, "rc_rnn_step_forward: batch: expected ≥ 1, got " + std::to_string(batch));
    require(x && h && h_out, "rc_rnn_step_forward: a required buffer (x, h, h_out) is null");
    const bool has_c = rc::rnn::cell_ops(step->weights.cell).has_cell_state;
    require(!has_c || (c && c_out), "rc_rnn_step_forward: a cell with a cell state (LSTM) needs c and c_out");
    require(h_out != h, "rc_rnn_step_forward: h_out must not be h (the step reads h after writing rows of h_out)");
    rc::rnn::step_forward(step->weights, batch, x, h, c, h_out, c_out, tape);
  });
}

RC_EXPORT int64_t rc_rnn_step_tape_floats(const rc_rnn_step* step, int64_t batch) {
  if (!step || batch < 1) return 0;
  return rc::rnn::tape_floats(rc::rnn::cell_ops(step->weights.cell), batch, step->weights.hidden);
}

RC_EXPORT rc_status rc_rnn_step_backward(const rc_rnn_step* step, int64_t batch, const float* x, const float* tape,
                                         const float* dy, const float* dh_out, const float* dc_out, float* dx, float* dh,
                                         float* dc, float* const* gradients, int64_t gradient_count) {
  return rc::guard([&] {
    require(step != nullptr, "rc_rnn_step_backward: step is null");
    require(step->weights.training,
            "rc_rnn_step_backward: the handle was created without training (rc_rnn_step_create's training = 0), so it "
            "holds no weights packed for backward; create it with training = 1");
    require(batch >= 1, "rc_rnn_step_backward: batch: expected ≥ 1, got " + std::to_string(batch));
    require(x && tape && dy && dh_out && dx && dh, "rc_rnn_step_backward: a required buffer (x, tape, dy, dh_out, dx, dh) is null");
    const bool has_c = rc::rnn::cell_ops(step->weights.cell).has_cell_state;
    require(!has_c || (dc_out && dc), "rc_rnn_step_backward: a cell with a cell state (LSTM) needs dc_out and dc");
    const int64_t count = rc::rnn::cell_ops(step->weights.cell).parameters;  // as rc_rnn_step_create's parameter_count
    require(gradients != nullptr && gradient_count == count,
            "rc_rnn_step_backward: gradients: expected " + std::to_string(count) + " entries, got " +
                std::to_string(gradients ? gradient_count : 0));
    for (int64_t p = 0; p < count; p++)
      require(gradients[p] != nullptr, "rc_rnn_step_backward: gradients[" + std::to_string(p) + "] is null");
    require(dy != dh, "rc_rnn_step_backward: dh must not be dy (dh is written while dy is read)");
    rc::rnn::step_backward(step->weights, batch, x, tape, dy, dh_out, has_c ? dc_out : nullptr, dx, dh, has_c ? dc : nullptr,
                           gradients);
  });
}

RC_EXPORT int64_t rc_rnn_step_bytes(const rc_rnn_step* step) { return step ? step->weights.bytes() : 0; }

RC_EXPORT void rc_rnn_step_free(rc_rnn_step* step) { delete step; }
