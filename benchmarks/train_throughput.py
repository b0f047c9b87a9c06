"""Training throughput (images/s) of the quick and paper backbones on the machine at hand.

Later chapters budget their time from these figures. One SGD step of the KMEx recipe on random
tensors, at each dataset's image size; ratios are against the quick backbone at 32 px measured
in the same run.

    .venv/bin/python benchmarks/train_throughput.py [--steps 5] [--batch 128] [--sizes 32 96 224]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from protolib.core import config
from protolib.core.models import build_model


def images_per_second(arch: str, size: int, batch: int, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(arch, 10).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    step()  # warm-up (allocations, cuDNN autotuning)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 224])
    args = parser.parse_args()
    device = config.get_device()
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"batch {args.batch}, {args.steps} timed steps after one warm-up step")
    rows = []
    for arch in (config.get_profile("quick").arch, config.get_profile("paper").arch):
        for size in args.sizes:
            rows.append((arch, size, images_per_second(arch, size, args.batch, args.steps, device)))
            print(f"  {arch:9s} {size:4d} px  {rows[-1][2]:9.1f} images/s", flush=True)
    base = rows[0][2]
    print("\narch       size   images/s   ratio to quick@%dpx   seconds per 10k images" % rows[0][1])
    for arch, size, ips in rows:
        print(f"{arch:9s} {size:4d}   {ips:9.1f}   {ips / base:18.3f}   {1e4 / ips:12.1f}")


if __name__ == "__main__":
    main()
