"""Training and explanation-map throughput at 224 px for the narrow ResNets of the 224 px testbed.

For each width (ResNet18 depths; fp32, NCHW, the default thread count) it times SGD steps of the
training recipe on random tensors and the forward pass plus eq. 9-10 assignment of fitted B4 and
B234 maps (k-means prototypes on random features, so only the cost is real), and prints images/s
with the machine and the torch version. Numbers on a CPU shared with other work are rough.

    PYTHONPATH=. .venv/bin/python benchmarks/geometry_224.py [--widths 16 32] [--batch 32] [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from protolib.core.models import build_model
from protolib.method.explain.maps import ExplanationMaps
from protolib.method.explain.maps_multi import explain_all
from protolib.reproduce.records import machine


def best_rate(step, batch: int, steps: int) -> float:
    """Images/s of the fastest of ``steps`` calls of ``step`` (after one warm-up call)."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch / min(times)


def training_rate(arch: str, batch: int, steps: int, size: int = 224, classes: int = 10) -> float:
    """Images/s of SGD steps (forward, cross-entropy, backward, update) at ``size`` px."""
    torch.manual_seed(0)
    model = build_model(arch, classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return best_rate(step, batch, steps)


def maps_rate(arch: str, batch: int, steps: int, size: int = 224, classes: int = 10, k: int = 5) -> float:
    """Images/s of one forward pass and the B4 and B234 segment assignment (eq. 9-10) at ``size`` px."""
    torch.manual_seed(0)
    model = build_model(arch, classes).eval()
    x = torch.randn(batch, 3, size, size)
    explainers = {}
    for blocks in ("B4", "B234"):
        ex = ExplanationMaps(model, blocks, k_per_class=k, progress=False)
        d = ex.features(x[:1]).shape[1]
        explainers[blocks] = ex.fit_features([torch.randn(4 * k, d) for _ in range(classes)])
        explainers[blocks].input_size_ = (size, size)

    def step():
        with torch.no_grad():
            explain_all(explainers, x)

    return best_rate(step, batch, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
          f"fp32, batch {args.batch}, 224 px")
    print("| model | training images/s | maps (B4 + B234) images/s |")
    print("|---|---|---|")
    for w in args.widths:
        arch = f"resnet18_w{w}"
        train = training_rate(arch, args.batch, args.steps)
        maps = maps_rate(arch, args.batch, args.steps)
        print(f"| {arch} | {train:.1f} | {maps:.1f} |", flush=True)


if __name__ == "__main__":
    main()
