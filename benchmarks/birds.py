"""Synthetic birds: images generated per second, and the quick backbone's training time and accuracy.

Generation is timed at each size asked for (one CPU thread, as the generator runs), in
images/s and as a ratio against the quick backbone's training throughput at the same size
measured in the same run (the generator should never be what the quick profile waits on).
Training goes through ``protolib.core.train.load_or_train("birds")``: a cached backbone is reported
as cached with the time it took when it was trained; ``--retrain`` trains afresh in a temporary
cache.

    PYTHONPATH=. .venv/bin/python benchmarks/birds.py [--sizes 64 96] [--n 50] [--retrain] [--no-train]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from protolib.core import config, train
from protolib.core.data import birds


def generation_rate(size: int, n_per_class: int, num_classes: int = 20) -> tuple[float, int]:
    """Images/s of :func:`birds.generate` for ``n_per_class`` images of each class at ``size`` px."""
    species = birds.make_species(num_classes, 0)
    birds.generate(species, 1, size, seed=1)  # warm-up
    start = time.perf_counter()
    arrays = birds.generate(species, n_per_class, size, seed=0)
    n = len(arrays.labels)
    return n / (time.perf_counter() - start), n


def training_rate(size: int, steps: int = 2, batch: int = 64) -> float:
    """Images/s of SGD steps of the quick backbone on random tensors at ``size`` px (after a warm-up)."""
    from protolib.core.models import build_model

    torch.manual_seed(0)
    model = build_model(config.get_profile().arch, 20).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 20, (batch,))
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--n", type=int, default=50, help="images per class to generate per size")
    parser.add_argument("--retrain", action="store_true", help="train in a temporary cache, ignoring the shared one")
    parser.add_argument("--no-train", action="store_true", help="only time the generator")
    args = parser.parse_args()
    profile = config.show()
    print(f"\n{'size':>6} {'images':>8} {'generated img/s':>16} {'trained img/s':>14} {'ratio':>6}")
    for size in args.sizes:
        rate, n = generation_rate(size, args.n)
        fit_rate = training_rate(size)
        print(f"{size:>6} {n:>8} {rate:>16.0f} {fit_rate:>14.0f} {rate / fit_rate:>6.1f}")
    if args.no_train:
        return
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train.load_or_train("birds", cache_dir=tmp if args.retrain else None, progress=False)
        wall = time.perf_counter() - start
    meta = result.meta
    origin = "loaded from the cache" if result.from_cache else f"trained now ({wall:.0f} s wall, data drawing included)"
    print(f"\nquick backbone ({profile.name} profile, {meta['arch']}, {meta['recipe']['epochs']} epochs, seed {meta['seed']}), {origin}")
    print(f"  data           : {meta['data']}")
    print(f"  training time  : {meta['train_seconds']:.0f} s on {meta['device']}")
    print(f"  test accuracy  : {meta['test_accuracy']:.1f} %")


if __name__ == "__main__":
    main()
