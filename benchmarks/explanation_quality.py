"""Cost of each explanation-quality metric of protolib.evaluation, in milliseconds per image.

On the cached quick-profile birds backbone and its explanation maps (the setup of the
explanation-maps chapter; trained and fitted first if the cache is cold), for a batch of
``--images`` test birds: the maps of every compared method (one call), then each metric on one
map (ours B234): a deletion curve and an insertion curve of ``--steps`` steps, the localisation
scores (part shares, pointing game), one stage of the randomisation check (all methods), and
the part scores of DFF segments, beside one bare forward pass for scale. Each is timed ``--repeat`` times; the median and the minimum
are printed (on a shared machine the minimum is the steadier figure), with the machine's load.

    PROTOLIB_PROFILE=quick .venv/bin/python benchmarks/explanation_quality.py
    .venv/bin/python benchmarks/explanation_quality.py --images 16 --steps 8 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from protolib.core import config, data, train
from protolib.evaluation import faithfulness as fa
from protolib.evaluation import localisation as lo
from protolib.evaluation import methods, sanity
from protolib.method.explain import part_scores
from protolib.reproduce.table2_maps import budget, fit_maps


def timed(fn, repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    profile = config.show()
    result = train.load_or_train("birds", seed=0)
    train_set, test_set = data.load("birds", "train"), data.load("birds", "test")
    explainers, _ = fit_maps(result, train_set, profile.k_per_class("birds"), budget(profile.name)[0], seed=0,
                             progress=False)
    model, device = result.model, config.get_device()
    n = args.images
    x = torch.stack([test_set[i][0] for i in range(n)]).to(device)
    with torch.no_grad():
        targets = model(x).argmax(1)
    maps = methods.compare(explainers, x, targets)
    up = fa.to_size(maps["ours B234"], tuple(x.shape[-2:]))
    masks = test_set.masks[:n]
    head = methods.head_name(model)

    def one_stage():
        net = sanity.randomised(model, [head], seed=0)
        new = methods.compare(explainers, x, targets, net=net)
        for k in maps:
            sanity.spearman(maps[k], new[k]), sanity.ssim(maps[k], new[k])

    def forward():
        with torch.no_grad():
            model(x)

    jobs = {
        "reference: one forward pass of the CNN": forward,
        "maps of all methods (methods.compare)": lambda: methods.compare(explainers, x, targets),
        f"deletion curve, {args.steps} steps, one method": lambda: fa.curve(model, x, up, targets, "deletion", args.steps),
        f"insertion curve, {args.steps} steps, one method": lambda: fa.curve(model, x, up, targets, "insertion", args.steps),
        "localisation (shares, pointing game), one method": lambda: (
            lo.shares(maps["ours B234"], masks, len(test_set.part_names)), lo.pointing_game(maps["ours B234"], masks > 0)),
        "randomisation, one stage, all methods": one_stage,
        "DFF segments (layer4, layer2) + part scores": lambda: [
            part_scores.part_alignment(s, masks) for s in methods.segments(explainers, x).values()],
    }
    print(f"\n{n} test birds ({test_set.title}), batch of {n}, device {device}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {args.repeat} repeats")
    print(f"{'metric':52s} {'median ms/image':>16s} {'min ms/image':>13s}")
    for name, fn in jobs.items():
        fn()  # warm-up
        t = timed(fn, args.repeat)
        print(f"{name:52s} {1000 * statistics.median(t) / n:16.2f} {1000 * min(t) / n:13.2f}")


if __name__ == "__main__":
    main()
