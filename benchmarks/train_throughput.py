"""Training throughput (images/s): float32 against the device's fast path, in one run.

One SGD step of the KMEx recipe on random tensors, for the quick (ResNet18) and paper (ResNet34)
backbones at 64 and 224 px. Each configuration is timed in float32 NCHW and on the fast path of
:mod:`protolib.core.precision` (bfloat16 autocast + channels-last on a CPU with native bfloat16),
round-robin: the two paths alternate step by step, so a change of machine load hits both alike.
The speed-up is the ratio of the median step times.

With ``--compile`` the fast path is also timed under ``torch.compile`` (Inductor): the first step
pays the compilation, reported apart, and the table says how many training steps the compiled
model needs before its saving repays that cost.

    .venv/bin/python benchmarks/train_throughput.py [--steps 5] [--batch 32] [--sizes 64 224] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from protolib.core import config, precision
from protolib.core.models import build_model


def make_step(arch: str, size: int, batch: int, path: precision.TrainingPath, compile_: bool = False):
    """A closure doing one training step of ``arch`` on a fixed random batch along ``path``, and the
    seconds of its first (warm-up, compiling) step."""
    torch.manual_seed(0)
    model = build_model(arch, 10).to(path.device, memory_format=path.memory_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    forward = torch.compile(model) if compile_ else model
    x = path.batch(torch.randn(batch, 3, size, size, device=path.device))
    y = torch.randint(0, 10, (batch,), device=path.device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> float:
        start = time.perf_counter()
        with path.autocast():
            loss = loss_fn(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if path.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = step()  # warm-up: allocations, oneDNN primitive creation, cuDNN autotuning, compilation
    return step, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    args = parser.parse_args()
    device = config.get_device()
    slow = precision.TrainingPath(device, None, False)
    fast = precision.for_training(device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.steps} timed steps per path after a warm-up step; native CPU bfloat16: {precision.cpu_has_bf16()}")
    print(f"paths: {slow.name} against {fast.name}\n")
    compiled = "fast+compile"
    print(f"{'arch':9s} {'size':>4s}   {'float32 img/s':>13s}   {'fast img/s':>10s}   speed-up"
          + (f"   {'compiled img/s':>14s}   compile s   repaid after" if args.compile else ""))
    for arch in (config.get_profile("quick").arch, config.get_profile("paper").arch):
        for size in args.sizes:
            steps = {p.name: make_step(arch, size, args.batch, p)[0] for p in (slow, fast)}
            if args.compile:
                steps[compiled], compile_s = make_step(arch, size, args.batch, fast, compile_=True)
            times = {name: [] for name in steps}
            for _ in range(args.steps):
                for name, step in steps.items():
                    times[name].append(step())
            med = {name: statistics.median(t) for name, t in times.items()}
            line = (f"{arch:9s} {size:4d}   {args.batch / med[slow.name]:13.1f}   {args.batch / med[fast.name]:10.1f}   "
                    f"{med[slow.name] / med[fast.name]:7.2f}x")
            if args.compile:
                saved = med[fast.name] - med[compiled]
                repaid = f"{(compile_s - med[compiled]) / saved:.0f} steps" if saved > 0 else "never (no faster)"
                line += f"   {args.batch / med[compiled]:14.1f}   {compile_s:9.1f}   {repaid}"
            print(line, flush=True)

if __name__ == "__main__":
    main()
