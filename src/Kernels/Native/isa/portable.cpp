// The pointwise kernels without intrinsics (GCC's generic 4-wide vectors, SSE2 on baseline x86-64):
// the path for CPUs without AVX2 and the one tests force with rc_set_isa(RC_ISA_PORTABLE).
#include <cstdint>
#include "isa/kernels.h"
#include "isa/passes.h"

#define RC_RNN_NS portable
#define RC_RNN_GENERIC4
#include "cells/registry.h"

namespace rc::rnn {
const Kernels& portable_kernels() {
  static const Kernels kernels{portable::elementwise_ops<portable::Generic4>(), portable::cell_table<portable::Generic4>()};
  return kernels;
}
}  // namespace rc::rnn
