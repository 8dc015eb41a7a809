#!/usr/bin/python3
"""Writes the PyTorch reference data of tests/Recurrent.Tests/Data/pytorch and checks files written by Recurrent.

Run with Debian's interpreter, which has python3-torch (PyTorch 1.13):

    /usr/bin/python3 scripts/make_reference_data.py                 # regenerate the data files
    /usr/bin/python3 scripts/make_reference_data.py --check-file F  # F, written by Recurrent's SafeTensors.Write,
        [--expect G]                                                 # loads into nn.LSTM/GRU/RNN (and equals G)

Each case writes two files:
  <case>.params.safetensors  the module's state_dict() under PyTorch's names (weight_ih_l0 ... bias_hh_l1_reverse),
                             exactly what save_file(rnn.state_dict(), path) writes; Recurrent's Load reads it.
  <case>.data.safetensors    x, h0 (c0), the outputs y, hN (cN), the fixed random dy, dhN (dcN) of the loss
                             sum(y·dy) + sum(hN·dhN) + sum(cN·dcN), and after backward dx, dh0 (dc0) and grad.<name>
                             for every parameter.
and named_parameters.json lists named_parameters() (name, shape) of 2-layer bidirectional LSTM, GRU and RNN.
The variable-length cases (LENGTH_CASES) also store lengths [N] in the data file and run through
pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence(total_length=T); see run_packed.

Precision: every input (parameters, x, h0, c0, dy, dhN, dcN) is drawn in float32, so it is stored exactly. The
"f64" cases compute in float64 (module.double()), so their results carry no float32 rounding of PyTorch's own; the
results are then stored as float32 (the files hold F32 only, the one dtype Recurrent reads), so they are exact to
half a float32 ulp. The "f32" case runs PyTorch in float32, as users do, and compares with looser tolerances.

GRU reset-before (the Deep Learning book's form, Keras reset_after=False) does not exist in PyTorch. It is written
out below in torch operations with nn.GRU's parameters and layout (gate blocks r, z, n) and differentiated by
autograd; the same hand-written stack in the reset-after form is checked against nn.GRU first, so the stacking,
direction and state handling of the hand-written code are PyTorch's.

safetensors: Debian has no python3-safetensors (apt-cache policy python3-safetensors shows no candidate) and PyPI
is not reachable here, so this script writes and reads the format itself with struct and json, byte for byte as
the safetensors library's serializer does (tensors sorted by dtype then name, compact JSON with __metadata__ first,
header padded with spaces to a multiple of 8; check_writer compares with that library's bytes for its own test
inputs), and reads with that library's validation rules (header at most 1e8 bytes, UTF-8 starting with '{', no
repeated names, contiguous offsets from 0 covering the whole body, size = shape x dtype). With the real library
installed, safetensors.torch.save_file / load_file would replace save_file / load_file here unchanged.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Recurrent.Tests", "Data", "pytorch")

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8)}


# ---------------------------------------------------------------------------------------------------------------------
# safetensors, as the reference implementation (huggingface/safetensors, safetensors/src/tensor.rs) writes and reads it
# ---------------------------------------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def raw_bytes(t):
    """A tensor's elements as safetensors stores them: little-endian, row-major."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: the same 16 bits as int16.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def save_tensors(tensors, path, metadata=None):
    """Writes {name: tensor} like safetensors.torch.save_file, each tensor in its own dtype (F32, F16, BF16, F64)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name]
        blob = raw_bytes(t)
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * ((8 - len(header_bytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def save_file(tensors, path, metadata=None):
    """Writes {name: tensor} as float32, like safetensors.torch.save_file of float32 tensors."""
    save_tensors({name: t.detach().to(torch.float32) for name, t in tensors.items()}, path, metadata)


def load_file(path):
    """Reads a safetensors file with the reference implementation's checks; returns (tensors, metadata)."""
    with open(path, "rb") as f:
        buffer = f.read()
    if len(buffer) < 8:
        raise ValueError(f"{path}: HeaderTooSmall")
    (n,) = struct.unpack("<Q", buffer[:8])
    if n > 100_000_000:
        raise ValueError(f"{path}: HeaderTooLarge")
    if 8 + n > len(buffer):
        raise ValueError(f"{path}: InvalidHeaderLength")
    text = buffer[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError(f"{path}: InvalidHeaderStart")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"{path}: duplicate key in header")
        return dict(pairs)

    header = json.loads(text, object_pairs_hook=no_duplicates)
    metadata = header.pop("__metadata__", None)   # null is read as no metadata, as serde reads an Option
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__ values must be strings")
    body = buffer[8 + n:]
    start = 0
    tensors = {}
    for name, info in sorted(header.items(), key=lambda item: tuple(item[1]["data_offsets"])):
        begin, end = info["data_offsets"]
        if begin != start or end < begin:
            raise ValueError(f"{path}: InvalidOffset({name})")
        dtype, size = DTYPES[info["dtype"]]
        if end - begin != math.prod(info["shape"]) * size:
            raise ValueError(f"{path}: TensorInvalidInfo({name})")
        tensors[name] = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype).reshape(info["shape"]) \
            if end > begin else torch.zeros(info["shape"], dtype=dtype)
        start = end
    if start != len(body):
        raise ValueError(f"{path}: MetadataIncompleteBuffer")
    return tensors, metadata


# ---------------------------------------------------------------------------------------------------------------------
# GRU written out in torch operations: reset-before (which PyTorch lacks) and reset-after (to check against nn.GRU)
# ---------------------------------------------------------------------------------------------------------------------

def gru_stack(gru, x, h0, reset_after, lengths=None):
    """A multi-layer, optionally bidirectional GRU with nn.GRU's parameters; returns y [T,N,D*H], hN [L*D,N,H].

    With lengths [N] (a tensor), sequence n computes only the steps t < lengths[n]: elsewhere its state is carried
    and its output is zero, which is what pack_padded_sequence -> nn.GRU -> pad_packed_sequence gives (checked below).
    """
    params = dict(gru.named_parameters())
    directions = 2 if gru.bidirectional else 1
    steps = x.shape[0]
    layer_input = x
    final = []
    for layer in range(gru.num_layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = params["weight_ih" + suffix], params["weight_hh" + suffix]
            b_ih, b_hh = params["bias_ih" + suffix], params["bias_hh" + suffix]
            w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
            b_hr, b_hz, b_hn = b_hh.chunk(3, 0)
            h = h0[layer * directions + direction]
            ys = [None] * steps
            for t in (reversed(range(steps)) if direction else range(steps)):
                i_r, i_z, i_n = (layer_input[t] @ w_ih.t() + b_ih).chunk(3, 1)
                r = torch.sigmoid(i_r + h @ w_hr.t() + b_hr)
                z = torch.sigmoid(i_z + h @ w_hz.t() + b_hz)
                if reset_after:
                    n = torch.tanh(i_n + r * (h @ w_hn.t() + b_hn))
                else:
                    n = torch.tanh(i_n + (r * h) @ w_hn.t() + b_hn)
                h_new = (1 - z) * n + z * h
                if lengths is None:
                    h = ys[t] = h_new
                else:
                    running = (t < lengths).unsqueeze(1)
                    h = torch.where(running, h_new, h)
                    ys[t] = torch.where(running, h_new, torch.zeros_like(h_new))
            outputs.append(torch.stack(ys))
            final.append(h)
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, torch.stack(final)


# ---------------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------------

# name: (cell, T, N, I, H, L, bidirectional, compute dtype). Odd sizes, I != H, T=1 or N=1 in every one-layer case.
CASES = {
    "lstm_l2_bi_f64": ("lstm", 3, 2, 5, 3, 2, True, torch.float64),
    "lstm_l1_t1_f64": ("lstm", 1, 3, 4, 7, 1, False, torch.float64),
    "gru_l2_bi_f64": ("gru", 4, 3, 2, 5, 2, True, torch.float64),
    "gru_l1_n1_f64": ("gru", 5, 1, 6, 3, 1, False, torch.float64),
    "gru_reset_before_l2_bi_f64": ("gru_reset_before", 3, 2, 5, 3, 2, True, torch.float64),
    "gru_reset_before_l1_n1_f64": ("gru_reset_before", 4, 1, 3, 5, 1, False, torch.float64),
    "rnn_tanh_l2_bi_f64": ("rnn_tanh", 3, 2, 4, 3, 2, True, torch.float64),
    "rnn_tanh_l1_t1_f64": ("rnn_tanh", 1, 2, 3, 5, 1, False, torch.float64),
    "rnn_relu_l2_bi_f64": ("rnn_relu", 5, 2, 3, 4, 2, True, torch.float64),
    "rnn_relu_l1_n1_f64": ("rnn_relu", 4, 1, 5, 2, 1, False, torch.float64),
    "lstm_l2_bi_f32": ("lstm", 6, 3, 17, 9, 2, True, torch.float32),
}

# Variable-length batches: the same fields, then lengths [N] (unsorted, with 1 and T), run as
# pack_padded_sequence(x, lengths, enforce_sorted=False) -> module -> pad_packed_sequence(total_length=T), padding 0.
# Their data files hold "lengths" too (float32, whole numbers).
LENGTH_CASES = {
    "lstm_l2_bi_lengths_f64": ("lstm", 5, 4, 3, 2, 2, True, torch.float64, [3, 5, 1, 4]),
    "gru_l2_bi_lengths_f64": ("gru", 4, 3, 5, 3, 2, True, torch.float64, [2, 4, 1]),
    "gru_reset_before_l2_bi_lengths_f64": ("gru_reset_before", 4, 3, 2, 3, 2, True, torch.float64, [4, 1, 3]),
    "rnn_tanh_l1_lengths_f64": ("rnn_tanh", 5, 3, 4, 3, 1, False, torch.float64, [1, 5, 2]),
    "rnn_relu_l2_bi_lengths_f64": ("rnn_relu", 3, 4, 3, 2, 2, True, torch.float64, [2, 3, 1, 3]),
}


def make_module(cell, input_size, hidden, layers, bidirectional):
    if cell == "lstm":
        return torch.nn.LSTM(input_size, hidden, layers, bidirectional=bidirectional)
    if cell in ("gru", "gru_reset_before"):
        return torch.nn.GRU(input_size, hidden, layers, bidirectional=bidirectional)
    nonlinearity = {"rnn_tanh": "tanh", "rnn_relu": "relu"}[cell]
    return torch.nn.RNN(input_size, hidden, layers, nonlinearity=nonlinearity, bidirectional=bidirectional)


def uniform(generator, shape, bound):
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * bound


def run_packed(module, x, hx, lengths):
    """module over the sequences x[:lengths[n], n], through PyTorch's packed layout; y padded back to x's T with zeros."""
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    output, state = module(packed, hx)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(output, total_length=x.shape[0])
    return y, state


def run_case(name, seed):
    if name in LENGTH_CASES:
        cell, steps, batch, input_size, hidden, layers, bidirectional, dtype, lengths = LENGTH_CASES[name]
        lengths = torch.tensor(lengths, dtype=torch.int64)
    else:
        cell, steps, batch, input_size, hidden, layers, bidirectional, dtype = CASES[name]
        lengths = None
    torch.manual_seed(seed)
    module = make_module(cell, input_size, hidden, layers, bidirectional)   # PyTorch's init, uniform ±1/√H, float32
    state_dict = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module = module.to(dtype)

    generator = torch.Generator().manual_seed(seed + 1)
    state = (layers * (2 if bidirectional else 1), batch, hidden)
    has_cell = cell == "lstm"
    inputs = {"x": uniform(generator, (steps, batch, input_size), 1.0), "h0": uniform(generator, state, 0.8)}
    if has_cell:
        inputs["c0"] = uniform(generator, state, 0.8)
    seeds = {"dy": uniform(generator, (steps, batch, module.hidden_size * (2 if bidirectional else 1)), 1.0),
             "dhN": uniform(generator, state, 1.0)}
    if has_cell:
        seeds["dcN"] = uniform(generator, state, 1.0)

    leaves = {k: v.to(dtype).requires_grad_() for k, v in inputs.items()}
    if cell == "gru_reset_before":
        y, h_n = gru_stack(module, leaves["x"], leaves["h0"], reset_after=False, lengths=lengths)
    elif lengths is not None:
        y, state = run_packed(module, leaves["x"], (leaves["h0"], leaves["c0"]) if has_cell else leaves["h0"], lengths)
        (h_n, c_n) = state if has_cell else (state, None)
    elif has_cell:
        y, (h_n, c_n) = module(leaves["x"], (leaves["h0"], leaves["c0"]))
    else:
        y, h_n = module(leaves["x"], leaves["h0"])
    loss = (y * seeds["dy"].to(dtype)).sum() + (h_n * seeds["dhN"].to(dtype)).sum()
    if has_cell:
        loss = loss + (c_n * seeds["dcN"].to(dtype)).sum()
    loss.backward()

    data = dict(inputs)
    data.update(seeds)
    if lengths is not None:
        data["lengths"] = lengths.to(torch.float32)
    data["y"], data["hN"] = y.detach(), h_n.detach()
    if has_cell:
        data["cN"] = c_n.detach()
    data["dx"], data["dh0"] = leaves["x"].grad, leaves["h0"].grad
    if has_cell:
        data["dc0"] = leaves["c0"].grad
    for pname, p in module.named_parameters():
        data["grad." + pname] = p.grad

    metadata = {"format": "pt", "case": name, "cell": cell, "compute_dtype": str(dtype).replace("torch.", ""),
                "torch": torch.__version__, "loss": "sum(y*dy)+sum(hN*dhN)+sum(cN*dcN)"}
    save_file(state_dict, os.path.join(DATA_DIR, f"{name}.params.safetensors"), metadata)
    save_file(data, os.path.join(DATA_DIR, f"{name}.data.safetensors"), metadata)


def check_hand_written_gru():
    """The hand-written stack in the reset-after form must equal nn.GRU, values and gradients."""
    torch.manual_seed(7)
    gru = torch.nn.GRU(3, 4, 2, bidirectional=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)
    y1, h1 = gru(x, h0)
    y2, h2 = gru_stack(gru, x, h0, reset_after=True)
    assert torch.allclose(y1, y2, rtol=0, atol=1e-13) and torch.allclose(h1, h2, rtol=0, atol=1e-13)
    g1 = torch.autograd.grad((y1.sum() + h1.square().sum()), [x, h0] + list(gru.parameters()))
    g2 = torch.autograd.grad((y2.sum() + h2.square().sum()), [x, h0] + list(gru.parameters()))
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(g1, g2))
    lengths = torch.tensor([3, 5, 1])
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 3, 4, dtype=torch.float64, requires_grad=True)
    y1, h1 = run_packed(gru, x, h0, lengths)
    y2, h2 = gru_stack(gru, x, h0, reset_after=True, lengths=lengths)
    assert torch.allclose(y1, y2, rtol=0, atol=1e-13) and torch.allclose(h1, h2, rtol=0, atol=1e-13)
    g1 = torch.autograd.grad((y1.sum() + h1.square().sum()), [x, h0] + list(gru.parameters()))
    g2 = torch.autograd.grad((y2.sum() + h2.square().sum()), [x, h0] + list(gru.parameters()))
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(g1, g2))


def check_writer(folder):
    """save_file must give the reference implementation's bytes (SafeTensorsTests checks the C# writer the same way)."""
    values = torch.arange(6, dtype=torch.float32)
    cases = [({"attn.0": values.reshape(1, 2, 3)}, None,
              '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
             ({"attn0": values.reshape(1, 1, 2, 3)}, None,
              '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '),
             ({}, None, "{}      "),
             ({}, {"framework": "pt"}, '{"__metadata__":{"framework":"pt"}}     ')]
    path = os.path.join(folder, ".writer-check.safetensors")
    try:
        for tensors, metadata, header in cases:
            save_file(tensors, path, metadata)
            body = values.numpy().astype("<f4").tobytes() if tensors else b""
            with open(path, "rb") as f:
                assert f.read() == struct.pack("<Q", len(header)) + header.encode() + body, header
    finally:
        os.remove(path)


def write_named_parameters():
    listing = {}
    for cell, module in (("LSTM", torch.nn.LSTM(5, 3, 2, bidirectional=True)),
                         ("GRU", torch.nn.GRU(5, 3, 2, bidirectional=True)),
                         ("RNN", torch.nn.RNN(5, 3, 2, bidirectional=True))):
        listing[cell] = {"input_size": 5, "hidden_size": 3, "num_layers": 2, "bidirectional": True,
                         "named_parameters": [{"name": n, "shape": list(p.shape)} for n, p in module.named_parameters()]}
    with open(os.path.join(DATA_DIR, "named_parameters.json"), "w") as f:
        json.dump(listing, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------------------------------
# --check-file: a file written by Recurrent loads into PyTorch
# ---------------------------------------------------------------------------------------------------------------------

def check_file(path, expect):
    tensors, metadata = load_file(path)
    cell = (metadata or {}).get("recurrent.cell")
    kinds = {"Lstm": ("lstm", 4), "GruResetAfter": ("gru", 3), "GruResetBefore": ("gru", 3),
             "RnnTanh": ("rnn_tanh", 1), "RnnRelu": ("rnn_relu", 1)}
    if cell not in kinds:
        raise ValueError(f"{path}: __metadata__ 'recurrent.cell' is {cell!r}; expected one of {list(kinds)}")
    kind, gates = kinds[cell]
    hidden = tensors["weight_hh_l0"].shape[1]
    input_size = tensors["weight_ih_l0"].shape[1]
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in tensors)
    bidirectional = any(k.endswith("_reverse") for k in tensors)
    assert tensors["weight_hh_l0"].shape[0] == gates * hidden
    module = make_module(kind, input_size, hidden, layers, bidirectional)
    module.load_state_dict(tensors, strict=True)   # raises on a missing, extra or misshaped tensor
    with torch.no_grad():
        module(torch.zeros(2, 1, input_size))
    if expect is not None:
        expected, _ = load_file(expect)
        if set(expected) != set(tensors):
            raise ValueError(f"{path}: tensors {sorted(tensors)} differ from {expect}'s {sorted(expected)}")
        for name, value in expected.items():
            if not torch.equal(value, tensors[name]):
                raise ValueError(f"{path}: tensor {name} differs from {expect}")
    print(f"OK: {path} loads into nn.{type(module).__name__}({input_size}, {hidden}, {layers}, "
          f"bidirectional={bidirectional}) with load_state_dict(strict=True)"
          + (f" and equals {expect} bit for bit" if expect else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-file", help="a safetensors file written by Recurrent's SafeTensors.Write")
    parser.add_argument("--expect", help="with --check-file: a file whose tensors it must equal bit for bit")
    args = parser.parse_args()
    if args.check_file:
        check_file(args.check_file, args.expect)
        return
    torch.use_deterministic_algorithms(True)
    # float32 sums split across threads round differently with the thread count; one thread makes the files repeat.
    torch.set_num_threads(1)
    check_hand_written_gru()
    os.makedirs(DATA_DIR, exist_ok=True)
    check_writer(DATA_DIR)
    for index, name in enumerate(CASES):
        run_case(name, seed=1000 + 10 * index)
    for index, name in enumerate(LENGTH_CASES):
        run_case(name, seed=2000 + 10 * index)
    write_named_parameters()
    total = sum(os.path.getsize(os.path.join(DATA_DIR, f)) for f in os.listdir(DATA_DIR))
    print(f"wrote {len(CASES) + len(LENGTH_CASES)} cases to {os.path.normpath(DATA_DIR)} ({total} bytes in all)")


if __name__ == "__main__":
    sys.exit(main())
