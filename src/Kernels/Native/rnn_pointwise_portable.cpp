// The pointwise kernels without explicit vector instructions: the path for CPUs without AVX2 and the
// one tests force with rc_set_isa(RC_ISA_PORTABLE).
#include <cstdint>
#include "rnn_pointwise.h"

#define RC_RNN_NS portable
#include "rnn_pointwise_impl.h"

namespace rc::rnn {
const Kernels& portable_kernels() {
  static const Kernels kernels = portable::make_kernels<portable::Scalar>();
  return kernels;
}
}  // namespace rc::rnn
