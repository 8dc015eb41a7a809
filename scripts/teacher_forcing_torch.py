#!/usr/bin/python3
"""Times a teacher-forced training step in PyTorch (CPU), parallel over time and as a hand-written loop over t.

Context for the report's teacher-forcing section: the same models and shapes as src/Recurrent.Bench/Report/
TeacherForcingSection.cs (vocabulary 256), written the way a PyTorch user writes them. Run with Debian's
python3-torch:  /usr/bin/python3 scripts/teacher_forcing_torch.py [--threads 2] [--reps 9]
Prints one line per model and shape: median ms of each schedule and their ratio. Nothing is written.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

VOCAB = 256


def output_recurrent(steps, batch, inputs, hidden, parallel, g):
    """Fig. 10.4 of the Deep Learning book: h_t = tanh(b + W[y_{t-1}] + x_t U), o_t = c + h_t V, cross-entropy."""
    u = (torch.rand(inputs, hidden, generator=g) * 2 - 1).requires_grad_() if inputs else None
    w = (torch.rand(VOCAB, hidden, generator=g) * 2 - 1).requires_grad_()
    b = torch.zeros(hidden, requires_grad=True)
    v = (torch.rand(hidden, VOCAB, generator=g) * 2 - 1).div_(hidden ** 0.5).requires_grad_()
    c = torch.zeros(VOCAB, requires_grad=True)
    x = torch.rand(steps, batch, inputs, generator=g) * 2 - 1 if inputs else None
    y = torch.randint(VOCAB, (steps, batch), generator=g)
    fed = torch.cat([torch.zeros(1, batch, dtype=torch.long), y[:-1]])

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


def lstm_language_model(steps, batch, inputs, hidden, parallel, g):
    """Embedding, one LSTM layer, output layer, cross-entropy: nn.LSTM over the sequence, or nn.LSTMCell per step."""
    torch.manual_seed(1)
    embedding = torch.nn.Embedding(VOCAB, inputs)
    lstm = torch.nn.LSTM(inputs, hidden) if parallel else torch.nn.LSTMCell(inputs, hidden)
    out = torch.nn.Linear(hidden, VOCAB)
    y = torch.randint(VOCAB, (steps, batch), generator=g)
    fed = torch.cat([torch.zeros(1, batch, dtype=torch.long), y[:-1]])

    def step():
        if parallel:
            h, _ = lstm(embedding(fed))
            loss = F.cross_entropy(out(h).reshape(-1, VOCAB), y.reshape(-1))
        else:
            h = torch.zeros(batch, hidden)
            c = torch.zeros(batch, hidden)
            loss = 0
            for t in range(steps):
                h, c = lstm(embedding(fed[t]), (h, c))
                loss = loss + F.cross_entropy(out(h), y[t], reduction="sum")
            loss = loss / (steps * batch)
        loss.backward()
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.reps} steps")
    models = [("output-recurrent, cross-entropy", output_recurrent, True),
              ("output-recurrent, cross-entropy, no input", output_recurrent, False),
              ("LSTM language model", lstm_language_model, True)]
    for steps, batch, hidden in [(100, 64, 512), (50, 16, 128)]:
        for name, build, with_input in models:
            inputs = hidden if with_input else 0
            times = {}
            for parallel in (False, True):
                times[parallel] = median_ms(build(steps, batch, inputs, hidden, parallel, torch.Generator().manual_seed(1)), args.reps)
            print(f"{name:42s} T={steps},N={batch},I={inputs},H={hidden}: step by step {times[False]:8.2f} ms, "
                  f"parallel {times[True]:8.2f} ms, ratio {times[False] / times[True]:5.2f}x")


if __name__ == "__main__":
    main()
