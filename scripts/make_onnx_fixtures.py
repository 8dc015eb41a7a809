#!/usr/bin/python3
"""Writes the torch.onnx.export fixtures of tests/Recurrent.Tests/Data/onnx, which OnnxImport must read.

Run with Debian's interpreter, which has python3-torch (PyTorch 1.13; its exporter needs no onnx package):

    /usr/bin/python3 scripts/make_onnx_fixtures.py

Each case writes two files:
  <case>.onnx               torch.onnx.export of the module (float32 weights, PyTorch's default opset 14 unless the
                            case names another), with the graph inputs and outputs named as below and T, N dynamic
                            unless the case says static.
  <case>.data.safetensors   the inputs and the expected outputs:
                            stacks: x, h0 (c0) when the graph takes them, y, hn (cn); x and y are [N, T, ·] for a
                            batch_first module, as it takes and gives them;
                            the language model: targets [T, N] (as float, exact for these small ids) and outputs
                            [T, N, O], the model run under teacher forcing as RecurrentSequenceModel.TeacherForcedOutputs
                            runs it: step t reads the embedding of targets[t - 1], step 0 a zero row (no start token).

The expected outputs are computed in float64 (a double copy of the module, from the same float32 weights and float32
inputs), so they carry no float32 rounding of PyTorch's own and the stacks compare with the tight float64 tolerance.

The cases cover what torch writes around the recurrent nodes: initial states as graph inputs sliced per layer, or
zeros made by Shape/Gather/Unsqueeze/Concat/ConstantOfShape (dynamic shapes) or by Expand of a zero constant (static
shapes); Squeeze between one-way layers and Transpose/Reshape between bidirectional ones; B absent (bias=False);
batch_first=True (Transpose of x and y around the stack); opset 9 (Slice, Squeeze, Unsqueeze with attributes instead
of inputs); GRU (linear_before_reset=1), RNN tanh and relu, LSTM; the language model's Gather, MatMul and Add.
"""

import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference_data import save_file  # noqa: E402  the safetensors writer the other fixtures use

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Recurrent.Tests", "Data", "onnx")

# name: (module, T, N, takes initial states, dynamic T and N, opset)
STACKS = {
    "lstm_l2_bi": (lambda: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True), 5, 2, True, True, 14),
    "gru_l2": (lambda: torch.nn.GRU(3, 5, num_layers=2), 4, 3, False, True, 14),
    "gru_l2_nobias_static": (lambda: torch.nn.GRU(4, 3, num_layers=2, bias=False), 3, 2, False, False, 14),
    "rnn_relu_l1_bi": (lambda: torch.nn.RNN(4, 3, nonlinearity="relu", bidirectional=True), 6, 2, True, True, 14),
    "rnn_tanh_l3": (lambda: torch.nn.RNN(2, 3, num_layers=3), 4, 1, True, True, 14),
    "lstm_l2_batch_first": (lambda: torch.nn.LSTM(3, 2, num_layers=2, batch_first=True), 4, 3, True, True, 14),
    "gru_l2_bi_opset9": (lambda: torch.nn.GRU(2, 3, num_layers=2, bidirectional=True), 3, 2, True, True, 9),
}


class LanguageModel(torch.nn.Module):
    """Embedding -> LSTM -> Linear over fed-back token ids [T, N]: the shape of RecurrentSequenceModel."""

    def __init__(self, vocabulary, embedding, hidden, layers):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary, embedding)
        self.rnn = torch.nn.LSTM(embedding, hidden, num_layers=layers)
        self.output = torch.nn.Linear(hidden, vocabulary)

    def forward(self, tokens):
        y, _ = self.rnn(self.embedding(tokens))
        return self.output(y)

    def teacher_forced(self, targets):
        """Step t reads targets[t - 1]'s embedding, step 0 zeros (RecurrentSequenceModel without a start token)."""
        x = self.embedding(targets[:-1])
        x = torch.cat([torch.zeros_like(x[:1]), x], dim=0)
        y, _ = self.rnn(x)
        return self.output(y)


def export_stack(name, make, steps, batch, with_states, dynamic, opset, seed):
    torch.manual_seed(seed)
    module = make().eval()
    lstm = isinstance(module, torch.nn.LSTM)
    states = module.num_layers * (2 if module.bidirectional else 1)
    x = torch.randn(batch, steps, module.input_size) if module.batch_first else torch.randn(steps, batch, module.input_size)
    inputs, names = (x,), ["x"]
    tensors = {"x": x}
    if with_states:
        h0 = torch.randn(states, batch, module.hidden_size)
        tensors["h0"] = h0
        if lstm:
            c0 = torch.randn(states, batch, module.hidden_size)
            tensors["c0"] = c0
            inputs, names = (x, (h0, c0)), ["x", "h0", "c0"]
        else:
            inputs, names = (x, h0), ["x", "h0"]
    outputs = ["y", "hn", "cn"] if lstm else ["y", "hn"]
    axes = None
    if dynamic:
        sequence = {0: "N", 1: "T"} if module.batch_first else {0: "T", 1: "N"}
        axes = {"x": sequence, "y": sequence, "hn": {1: "N"}}
        for state in names[1:] + outputs[2:]:
            axes[state] = {1: "N"}
    path = os.path.join(DATA_DIR, f"{name}.onnx")
    torch.onnx.export(module, inputs, path, input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=opset)

    double = copy.deepcopy(module).double()
    with torch.no_grad():
        if not with_states:
            y, state = double(x.double())
        elif lstm:
            y, state = double(x.double(), (tensors["h0"].double(), tensors["c0"].double()))
        else:
            y, state = double(x.double(), tensors["h0"].double())
    tensors["y"] = y
    if lstm:
        tensors["hn"], tensors["cn"] = state
    else:
        tensors["hn"] = state
    save_file(tensors, os.path.join(DATA_DIR, f"{name}.data.safetensors"))


def export_language_model(seed):
    torch.manual_seed(seed)
    vocabulary, steps, batch = 7, 5, 3
    model = LanguageModel(vocabulary, embedding=4, hidden=6, layers=2).eval()
    tokens = torch.randint(0, vocabulary, (steps, batch))
    torch.onnx.export(model, (tokens,), os.path.join(DATA_DIR, "lm_lstm_l2.onnx"), input_names=["tokens"], output_names=["outputs"],
                      dynamic_axes={"tokens": {0: "T", 1: "N"}, "outputs": {0: "T", 1: "N"}}, opset_version=14)
    targets = torch.randint(0, vocabulary, (steps, batch))
    with torch.no_grad():
        outputs = copy.deepcopy(model).double().teacher_forced(targets)
    save_file({"targets": targets.double(), "outputs": outputs}, os.path.join(DATA_DIR, "lm_lstm_l2.data.safetensors"))


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(DATA_DIR, exist_ok=True)
    for index, (name, (make, steps, batch, with_states, dynamic, opset)) in enumerate(STACKS.items()):
        export_stack(name, make, steps, batch, with_states, dynamic, opset, seed=3000 + 10 * index)
    export_language_model(seed=3900)
    total = sum(os.path.getsize(os.path.join(DATA_DIR, f)) for f in os.listdir(DATA_DIR))
    print(f"wrote {len(STACKS) + 1} cases to {os.path.normpath(DATA_DIR)} ({total} bytes in all)")


if __name__ == "__main__":
    sys.exit(main())
