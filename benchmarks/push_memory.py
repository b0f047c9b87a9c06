"""Peak memory of ProtoPNet's push boxes on CUB-sized inputs: this tree against another revision.

The box step of push (``protolib.baselines.protopnet.push._describe``) computes each pushed prototype's
similarity map at full image resolution. The inputs have CUB's sizes: 200 classes x 10
prototypes, 224 px images, a ResNet34 backbone (random weights), every prototype pushed onto a
different image of its class (the worst case: ``--images`` images, 2000 by default on CUB,
here fewer). Each variant runs in its own process and reports the growth of its peak resident
memory (``ru_maxrss``) during the box step, so the numbers of two variants are comparable.

    PYTHONPATH=. python benchmarks/push_memory.py [--images 8] [--batch-size 4] [--before main]

``--before REV`` also runs the ``push.py`` of git revision REV (e.g. ``main``) in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(push_source: str | None, images: int, batch_size: int) -> dict:
    """Run the box step of push (from ``push_source``, else this tree) and report its memory."""
    from protolib.baselines.protopnet import build_protopnet
    from protolib.baselines.protopnet import push as push_module

    if push_source is not None:  # another revision's push.py, imported inside the package
        module = types.ModuleType("protolib.baselines.protopnet._push_other")
        module.__package__ = "protolib.baselines.protopnet"
        sys.modules[module.__name__] = module  # dataclasses look their module up there
        exec(compile(Path(push_source).read_text(), push_source, "exec"), module.__dict__)
        push_module = module
    torch.manual_seed(0)
    classes, k_per_class, size = 200, 10, 224
    model = build_protopnet("resnet34", classes, k_per_class, 128).eval()
    P = classes * k_per_class
    x = torch.randn(images, 3, size, size)
    push_set = torch.utils.data.TensorDataset(x, torch.arange(images) % classes)
    # prototype j pushed onto image j % images, at cell (j % 7, j // 7 % 7): every image holds P/images prototypes
    j = torch.arange(P)
    where = torch.stack([j % images, j % 7, (j // 7) % 7], dim=1)
    with torch.no_grad():
        model.latent(x[:1])  # warm the allocator and the weights
    base = rss_mib()
    start = time.perf_counter()
    res = push_module._describe(model, push_set, where, torch.zeros(P), (7, 7), batch_size, torch.device("cpu"), 95.0)
    seconds = time.perf_counter() - start
    return {"peak_growth_mib": rss_mib() - base, "seconds": seconds, "boxes": res.act_box.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images holding the 2000 pushed prototypes")
    parser.add_argument("--batch-size", type=int, default=4, help="push chunk (the recipe's is 75)")
    parser.add_argument("--before", default=None, help="git revision to compare with (e.g. main)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child or None, args.images, args.batch_size)))
        return
    variants = {"this tree": ""}
    if args.before:
        tmp = Path(tempfile.mkdtemp()) / "push.py"
        tmp.write_text(subprocess.run(["git", "show", f"{args.before}:protolib/protopnet/push.py"],
                                      check=True, capture_output=True, text=True).stdout)
        variants = {args.before: str(tmp), **variants}
    results = {}
    for name, source in variants.items():
        out = subprocess.run([sys.executable, __file__, "--images", str(args.images), "--batch-size",
                              str(args.batch_size), "--child", source], check=True, capture_output=True, text=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"push boxes, 200 classes x 10 prototypes, 224 px, ResNet34, {args.images} images, chunk {args.batch_size}:")
    for name, r in results.items():
        print(f"  {name:10s} peak memory growth {r['peak_growth_mib']:8.0f} MiB   {r['seconds']:6.1f} s")
    if len(results) == 2:
        a, b = results.values()
        print(f"  same boxes: {a['boxes'] == b['boxes']}")


if __name__ == "__main__":
    main()
