// The registration: every cell the library computes, numbered as the managed CellKind (src/Kernels/CellKind.cs),
// whose names, facts and parameter counts NativeCellRegistryTests compares with these through rc_cell_info. A new cell is one
// header under cells/ and one line here. Per ISA, as isa/vector.h says.
#pragma once
#include "cells/elman.h"
#include "cells/gru_reset_after.h"
#include "cells/gru_reset_before.h"
#include "cells/lstm.h"

namespace rc::rnn::RC_RNN_NS {

template <class V>
CellTable cell_table() {
  static const CellOps cells[] = {
      elman::ops<V, false>(),        // 0 RnnTanh
      elman::ops<V, true>(),         // 1 RnnRelu
      lstm::ops<V>(),                // 2 Lstm
      gru_reset_after::ops<V>(),     // 3 GruResetAfter
      gru_reset_before::ops<V>(),    // 4 GruResetBefore
  };
  return {cells, static_cast<int32_t>(sizeof cells / sizeof cells[0])};
}

}  // namespace rc::rnn::RC_RNN_NS
