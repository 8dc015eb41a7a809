#!/usr/bin/python3
"""Times a teacher-forced training step in PyTorch (CPU), parallel over time and as a hand-written loop over t.

Context for the report's teacher-forcing section: the same models and shapes as src/Recurrent.Bench/Report/
TeacherForcingSection.cs (vocabulary 256), written the way a PyTorch user writes them. Run with Debian's
python3-torch:  /usr/bin/python3 scripts/teacher_forcing_torch.py [--device cpu|cuda] [--threads 2] [--reps 9]
Prints one line per model and shape: median ms of each schedule and their ratio. Nothing is written. scripts/gpu-check.sh
runs it on CUDA beside the ILGPU sequence models.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

VOCAB = 256


def output_recurrent(steps, batch, inputs, hidden, parallel, g, device):
    """Fig. 10.4 of the Deep Learning book: h_t = tanh(b + W[y_{t-1}] + x_t U), o_t = c + h_t V, cross-entropy."""
    def uniform(*shape, scale=1.0):
        return ((torch.rand(*shape, generator=g) * 2 - 1) * scale).to(device)
    u = uniform(inputs, hidden).requires_grad_() if inputs else None
    w = uniform(VOCAB, hidden).requires_grad_()
    b = torch.zeros(hidden, device=device, requires_grad=True)
    v = uniform(hidden, VOCAB, scale=hidden ** -0.5).requires_grad_()
    c = torch.zeros(VOCAB, device=device, requires_grad=True)
    x = uniform(steps, batch, inputs) if inputs else None
    y = torch.randint(VOCAB, (steps, batch), generator=g).to(device)
    fed = torch.cat([torch.zeros(1, batch, dtype=torch.long, device=device), y[:-1]])

    def step():
        if parallel:
            z = b + w[fed.reshape(-1)]
            if inputs:
                z = z + x.reshape(-1, inputs) @ u
            loss = F.cross_entropy(c + torch.tanh(z) @ v, y.reshape(-1))
        else:
            loss = 0
            for t in range(steps):
                z = b + w[fed[t]]
                if inputs:
                    z = z + x[t] @ u
                loss = loss + F.cross_entropy(c + torch.tanh(z) @ v, y[t], reduction="sum")
            loss = loss / (steps * batch)
        loss.backward()
    return step


def lstm_language_model(steps, batch, inputs, hidden, parallel, g, device):
    """Embedding, one LSTM layer, output layer, cross-entropy: nn.LSTM over the sequence (cuDNN on CUDA), or
    nn.LSTMCell per step."""
    torch.manual_seed(1)
    embedding = torch.nn.Embedding(VOCAB, inputs).to(device)
    lstm = (torch.nn.LSTM(inputs, hidden) if parallel else torch.nn.LSTMCell(inputs, hidden)).to(device)
    out = torch.nn.Linear(hidden, VOCAB).to(device)
    y = torch.randint(VOCAB, (steps, batch), generator=g).to(device)
    fed = torch.cat([torch.zeros(1, batch, dtype=torch.long, device=device), y[:-1]])

    def step():
        if parallel:
            h, _ = lstm(embedding(fed))
            loss = F.cross_entropy(out(h).reshape(-1, VOCAB), y.reshape(-1))
        else:
            h = torch.zeros(batch, hidden, device=device)
            c = torch.zeros(batch, hidden, device=device)
            loss = 0
            for t in range(steps):
                h, c = lstm(embedding(fed[t]), (h, c))
                loss = loss + F.cross_entropy(out(h), y[t], reduction="sum")
            loss = loss / (steps * batch)
        loss.backward()
    return step


def median_ms(step, reps, device):
    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the project's benchmark machine has 2 cores)")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__} on {where}; median of {args.reps} steps")
    models = [("output-recurrent, cross-entropy", output_recurrent, True),
              ("output-recurrent, cross-entropy, no input", output_recurrent, False),
              ("LSTM language model", lstm_language_model, True)]
    for steps, batch, hidden in [(100, 64, 512), (50, 16, 128)]:
        for name, build, with_input in models:
            inputs = hidden if with_input else 0
            times = {}
            for parallel in (False, True):
                times[parallel] = median_ms(build(steps, batch, inputs, hidden, parallel, torch.Generator().manual_seed(1), args.device),
                                          args.reps, args.device)
            print(f"{name:42s} T={steps},N={batch},I={inputs},H={hidden}: step by step {times[False]:8.2f} ms, "
                  f"parallel {times[True]:8.2f} ms, ratio {times[False] / times[True]:5.2f}x")


if __name__ == "__main__":
    main()
