#!/usr/bin/python3
"""Writes the PyTorch fixtures of tests/Recurrent.Tests/Data/pytorch/loading (the load_state_dict-like loading).

    /usr/bin/python3 scripts/make_loading_fixtures.py

Files (an nn.LSTM(3, 4) throughout, its parameters drawn in float32 with a few edge values in bias_ih_l0):
  lstm.f32.safetensors           the state_dict() in float32: the source of the others
  lstm.f16.safetensors           state_dict() after .half(); lstm.f16.expected.safetensors: .half().float()
  lstm.bf16.safetensors          after .bfloat16();           lstm.bf16.expected.safetensors: .bfloat16().float()
  lstm.f64.safetensors           parameters drawn in float64 (not float32 values, so loading rounds);
                                 lstm.f64.expected.safetensors: .float() of them
  whole_model.safetensors        a whole model's state_dict(): embedding.weight, rnn.<the LSTM's names>, fc.weight, fc.bias
                                 (the LSTM is the one of lstm.f32)
  whole_model.module.safetensors the same model wrapped in nn.DataParallel: every name under "module."
The *.expected files are float32, so the tests compare the loaded values with PyTorch's own conversion bit for bit.

The format is written by hand (Debian has no python3-safetensors), as make_reference_data.py does: 8-byte
little-endian header length, compact JSON header (names sorted, __metadata__ first) padded with spaces to a
multiple of 8, then the raw little-endian data.
"""

import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Recurrent.Tests", "Data", "pytorch", "loading")

# One safetensors writer for every fixture script.
from make_reference_data import save_tensors as save_file  # noqa: E402


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(5, 3)
        self.rnn = torch.nn.LSTM(3, 4)
        self.fc = torch.nn.Linear(4, 5)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1600)
    model = Model()
    lstm = model.rnn
    with torch.no_grad():
        # Edge values: F16's largest finite value and its smallest subnormal, a tie between two F16 neighbours, a large
        # value that F16 and BF16 round, a third (rounds in every dtype), a negative zero, one F16 flushes to zero.
        edges = torch.tensor([65504.0, -65504.0, 2.0 ** -24, 1.0 + 2.0 ** -11, 3.3895313892515355e38 / 1e34, 1.0 / 3.0, -0.0, 1e-8])
        lstm.bias_ih_l0[: len(edges)] = edges
    state = {k: v.detach().clone() for k, v in lstm.state_dict().items()}
    save_file(state, os.path.join(OUT, "lstm.f32.safetensors"), {"format": "pt"})

    for dtype, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        converted = {k: v.to(dtype) for k, v in state.items()}
        save_file(converted, os.path.join(OUT, f"lstm.{tag}.safetensors"), {"format": "pt"})
        save_file({k: v.float() for k, v in converted.items()}, os.path.join(OUT, f"lstm.{tag}.expected.safetensors"))

    generator = torch.Generator().manual_seed(1601)
    doubles = {k: torch.rand(v.shape, dtype=torch.float64, generator=generator) * 2 - 1 for k, v in state.items()}
    # float32's range edges, still finite as float32: the largest double that rounds to FLT_MAX (the next one up,
    # 3.4028235677973366e38, is the tie that rounds to infinity), one that underflows to zero, one that becomes a
    # float32 subnormal.
    doubles["bias_hh_l0"][:3] = torch.tensor([math.nextafter(3.4028235677973366e38, 0), 1e-50, 1e-40], dtype=torch.float64)
    save_file(doubles, os.path.join(OUT, "lstm.f64.safetensors"), {"format": "pt"})
    save_file({k: v.float() for k, v in doubles.items()}, os.path.join(OUT, "lstm.f64.expected.safetensors"))

    whole = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert all(whole["rnn." + k].equal(v) for k, v in state.items())
    save_file(whole, os.path.join(OUT, "whole_model.safetensors"), {"format": "pt"})
    wrapped = {k: v.detach().clone() for k, v in torch.nn.DataParallel(model).state_dict().items()}
    assert sorted(wrapped) == sorted("module." + k for k in whole)
    save_file(wrapped, os.path.join(OUT, "whole_model.module.safetensors"), {"format": "pt"})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files to {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
