#!/usr/bin/env python3
"""PyTorch's nn.LSTM / nn.GRU (cuDNN on a GPU) on the shapes of the ILGPU check, timed the same way.

Writes rows impl,cell,shape,pass,ms (cell names as Recurrent's CellKind: nn.GRU is GruResetAfter) to --csv and
prints them. Inputs live on the device already; forward+backward computes dx and every weight gradient, as
Recurrent's backward does.
"""
import argparse
import statistics
import sys
import time

import torch

SHAPES = {"standard": (100, 64, 512), "small": (50, 16, 128), "tiny": (5, 2, 8)}


def time_once(module, x, dy, training, device):
    if training:
        module.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = module(x)
        y.backward(dy)
    else:
        with torch.no_grad():
            module(x)
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", default="standard,small")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch: CUDA is not available", file=sys.stderr)
        return 2
    impl = "torch-cudnn" if device.type == "cuda" else "torch-cpu"
    details = f"torch {torch.__version__}"
    if device.type == "cuda":
        details += f", cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name(device)}"
    print(details)

    rows = []
    torch.manual_seed(0)
    for shape_name in args.shapes.split(","):
        steps, batch, size = SHAPES[shape_name]
        for cell, factory in (("Lstm", torch.nn.LSTM), ("GruResetAfter", torch.nn.GRU)):
            module = factory(size, size).to(device)
            x = torch.randn(steps, batch, size, device=device, requires_grad=True)
            dy = torch.randn(steps, batch, size, device=device)
            for training in (False, True):
                for _ in range(3):  # cuDNN plan selection and allocator warm-up stay out of the timings
                    time_once(module, x, dy, training, device)
                times = []
                for _ in range(args.reps):
                    start = time.perf_counter()
                    time_once(module, x, dy, training, device)
                    times.append((time.perf_counter() - start) * 1000)
                row = f"{impl},{cell},{shape_name},{'fwd+bwd' if training else 'forward'},{statistics.median(times):.4f}"
                rows.append(row)
                print(row)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
