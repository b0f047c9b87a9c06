"""Images per second of the CUB training loader (JPEG decode, crop, resize, augmentation) by worker count.

Writes ``--images`` random JPEGs of CUB's typical size (500 x 375) in the official CUB_200_2011
layout to a temporary folder, then times one pass of ``config.make_loader`` over the augmented
training split for each worker count (0 = main's loaders, which had no workers). The first
batch is not timed (worker start-up).

    PYTHONPATH=. python benchmarks/loader_throughput.py [--images 400] [--workers 0 2 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from protolib.core import config, data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_cub  # noqa: E402  (the real-format writer the tests use)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=80)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    per_class = max(1, args.images // 200)
    make_cub(root, train_per_class=per_class, test_classes=1, size=(500, 375))
    ds = data.load("cub200", "train", augment=True, root=root)
    print(f"CUB-sized JPEGs (500 x 375 -> box crop -> 224 px, flip + affine): {len(ds)} images, "
          f"batch {args.batch_size}, {config.os.cpu_count()} CPUs")
    for workers in args.workers:
        config.os.environ[config.WORKERS_ENV] = str(workers)
        loader = config.make_loader(ds, args.batch_size, "cpu", shuffle=True, seed=0)
        it = iter(loader)
        next(it)
        start, n = time.perf_counter(), 0
        for x, _ in it:
            n += len(x)
        print(f"  {workers} workers: {n / (time.perf_counter() - start):7.1f} images/s")


if __name__ == "__main__":
    main()
