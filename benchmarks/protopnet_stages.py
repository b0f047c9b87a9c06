"""Throughput of the ProtoPNet stages, and what reusing frozen features saves.

Prints images per second for one epoch of each stage on a slice of the synthetic birds
(64 px, ResNet18 backbone, random weights), with and without ``reuse_features`` for the two
stages that read only frozen parts (warm-up: the backbone; last layer: everything but the last
layer). The ratio is measured in the same run, so it holds whatever the machine's speed.

    PYTHONPATH=. python benchmarks/protopnet_stages.py [--images 600] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import Subset

from protolib.baselines import protopnet
from protolib.core import config, data


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = config.get_device(args.device)
    ds = Subset(data.load("birds", "train"), range(args.images))
    recipe = protopnet.recipe_for("quick", "birds")
    model = protopnet.build_protopnet("resnet18", 20, recipe.k_per_class, recipe.dim).to(device)
    n = len(ds)
    stages = {
        "warm-up": lambda e, r: protopnet.warm_up(model, ds, recipe, epochs=e, device=device, progress=False,
                                                  reuse_features=r),
        "last layer": lambda e, r: protopnet.last_layer(model, ds, recipe, epochs=e, device=device, progress=False,
                                                        reuse_features=r),
    }
    print(f"{n} birds images (64 px), ResNet18, M={recipe.k_per_class}, D={recipe.dim}, device {device}, "
          f"{torch.get_num_threads()} threads")
    for name, fn in {"joint": lambda: protopnet.joint(model, ds, recipe, epochs=1, device=device, progress=False),
                     "push": lambda: protopnet.push_prototypes(model, ds, recipe.push_batch_size, device,
                                                               progress=False)}.items():
        t = timed(fn)
        print(f"{name:<12} one pass {t:7.2f} s  ({n / t:7.1f} images/s)")
    for name, run in stages.items():
        full = run(1, False).seconds                   # StageResult.seconds: the epochs alone
        start = time.perf_counter()
        reused = run(3, True)
        first_pass = time.perf_counter() - start - reused.seconds
        per_epoch = reused.seconds / 3
        print(f"{name:<12} one epoch recomputing the frozen parts {full:7.2f} s; reusing them: one pass "
              f"{first_pass:6.2f} s, then {per_epoch:6.3f} s per epoch ({full / per_epoch:6.1f}x faster per epoch)")

if __name__ == "__main__":
    main()
