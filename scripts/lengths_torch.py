#!/usr/bin/python3
"""Times PyTorch (CPU) on a variable-length batch: pack_padded_sequence -> nn.LSTM/nn.GRU -> pad_packed_sequence against
the same batch padded to T.

Context for the bench's lengths command (src/Recurrent.Bench/Cli/LengthsCommand.cs): the same batch, lengths spread evenly
over [ceil(T/2), T] as Workload.UniformLengths gives them, one layer, one direction, dy = 1, dhN = 0. Run with Debian's
python3-torch:  /usr/bin/python3 scripts/lengths_torch.py [--threads 2] [--reps 9] [--shapes 100,64,256,256;50,16,128,128]
Prints one line per cell, shape and mode: median ms padded and packed, their ratio, and the packed time over the padded
time scaled by the real tokens' share (1 = exactly proportional to the real tokens). Nothing is written.
"""
import argparse
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def uniform_lengths(steps, batch):
    """Workload.UniformLengths: spread evenly over [ceil(T/2), T], ascending (so the sort into the packed layout reverses it)."""
    shortest = (steps + 1) // 2
    span = steps - shortest + 1
    return [shortest + n * span // batch for n in range(batch)]


def build(cell, steps, batch, inputs, hidden, lengths, training):
    torch.manual_seed(1)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(inputs, hidden)
    x = torch.rand(steps, batch, inputs) * 2 - 1
    lengths = None if lengths is None else torch.tensor(lengths)

    def forward():
        if lengths is None:
            y, _ = rnn(x)
            return y
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        y, _ = rnn(packed)
        return pad_packed_sequence(y, total_length=steps)[0]

    def step():
        if training:
            rnn.zero_grad(set_to_none=True)
            y = forward()
            y.backward(torch.ones_like(y))
        else:
            with torch.no_grad():
                forward()
    return step


def median_ms(step, reps):
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the project's benchmark machine has 2 cores)")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--shapes", default="100,64,256,256", help="T,N,I,H;... (default the lengths command's shape)")
    parser.add_argument("--modes", default="training", help="inference, training or both, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} on {torch.get_num_threads()} CPU threads; median of {args.reps} steps; lengths spread evenly over [T/2, T]")
    for shape in args.shapes.split(";"):
        steps, batch, inputs, hidden = (int(v) for v in shape.split(","))
        lengths = uniform_lengths(steps, batch)
        share = sum(lengths) / (steps * batch)
        for cell in ("lstm", "gru"):
            for mode in args.modes.split(","):
                training = mode == "training"
                padded = median_ms(build(cell, steps, batch, inputs, hidden, None, training), args.reps)
                packed = median_ms(build(cell, steps, batch, inputs, hidden, lengths, training), args.reps)
                print(f"{cell:4s} T={steps},N={batch},I={inputs},H={hidden} {mode:9s} real tokens {100 * share:.1f}%: "
                      f"padded {padded:8.2f} ms, packed {packed:8.2f} ms, packed/padded {packed / padded:.3f}, "
                      f"packed/(padded x share) {packed / (padded * share):.3f}")


if __name__ == "__main__":
    main()
