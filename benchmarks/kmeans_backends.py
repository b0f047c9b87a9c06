"""Time and inertia of protolib's default k-means against scikit-learn and faiss-cpu, in one run.

Shapes (``--sizes``): ``cub`` = one CUB class (23,520 x 896, k=10), ``200k`` = 200,000 x 896 (k=5),
``1m`` = 1,000,000 x 896 (k=10). The rows are :mod:`protolib.method.explain.synthetic_pixels` (12 part patterns per
block + noise, ReLU'd, normalised as eq. 8; seeded batch by batch). They are made once and kept in
a float32 file (``--data-dir``); in-memory methods load it, ``1m``'s protolib and faiss-default read
it as a stream of 50,176-row batches (a loader: plain file reads, so the file's pages are not the
process's resident memory).

Methods (``--methods``), all on the same threads (torch, OpenMP and BLAS defaults), seed 0:

* ``protolib``: :func:`protolib.method.explain.kmeans.kmeans` with its defaults (``1m``:
  :func:`~protolib.method.explain.kmeans_backends.streaming_kmeans` with its defaults, streamed);
* ``sk-lloyd``, ``sk-elkan``: scikit-learn ``KMeans`` (k-means++, n_init=1, its defaults);
* ``faiss-def``: ``faiss.Kmeans`` with its defaults (random init, 25 iterations, at most 256 sampled
  points per centroid), then one search for the labels (``1m``: its sample drawn from the file,
  the search streamed);
* ``faiss-all``: ``faiss.Kmeans`` on all points, 100 iterations, then the search.

Time: centres *and* labels of every point (min over ``--repeats``, round-robin, each case in its own
process). Inertia: recomputed here for every method's centres on all points (float64 sums),
shown relative to the best full-data fit (sk-lloyd, sk-elkan, faiss-all). Peak RSS: ``ru_maxrss``.

    PYTHONPATH=. .venv/bin/python benchmarks/kmeans_backends.py --sizes cub 200k --repeats 3
    PYTHONPATH=. .venv/bin/python benchmarks/kmeans_backends.py --sizes 1m --methods protolib faiss-def
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from protolib.method.explain.synthetic_pixels import BATCH_ROWS, stream

SIZES = {"cub": (23_520, 10), "200k": (200_000, 5), "1m": (1_000_000, 10)}
METHODS = ("protolib", "sk-lloyd", "sk-elkan", "faiss-def", "faiss-all")
FULL = ("sk-lloyd", "sk-elkan", "faiss-all")
D = 896


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def data_file(size: str, folder: str) -> str:
    """The rows of ``size`` as raw float32 in ``folder``, made once (batch by batch)."""
    path = os.path.join(folder, f"kmeans-bench-{size}.f32")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        with open(path + ".part", "wb") as f:
            for b in stream(SIZES[size][0]):
                f.write(b.numpy().tobytes())
        os.replace(path + ".part", path)
    return path


def loader(path: str):
    """A fresh stream of (50,176, 896) batches read from the file."""
    def batches():
        with open(path, "rb") as f:
            while chunk := f.read(BATCH_ROWS * D * 4):
                yield torch.frombuffer(bytearray(chunk), dtype=torch.float32).view(-1, D)
    return batches


def inertia(batches, centers) -> float:
    """Sum over all rows of the squared distance to the nearest centre, in float64."""
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    total = 0.0
    for b in batches():
        x = b.double()
        d = (x.square().sum(1, keepdim=True) - 2 * x @ c.T + c.square().sum(1)).min(1).values
        total += d.clamp_min(0).sum().item()
    return total


def faiss_fit(x: np.ndarray, k: int, all_points: bool):
    import faiss

    km = faiss.Kmeans(D, k, niter=100 if all_points else 25, seed=1234,
                      **({"max_points_per_centroid": len(x)} if all_points else {}))
    km.train(x)
    return km


def fit(method: str, size: str, path: str):
    """Centres of ``method`` on ``size`` (labels computed too, as part of the timed work)."""
    n, k = SIZES[size]
    streamed = size == "1m" and method in ("protolib", "faiss-def")
    if streamed and method == "protolib":
        from protolib.method.explain.kmeans_backends import streaming_kmeans

        return lambda: streaming_kmeans(loader(path), k, seed=0).centers
    if streamed:
        def faiss_stream():
            rows = np.sort(np.random.default_rng(1234).choice(n, 256 * k, replace=False))
            sample = np.ascontiguousarray(np.memmap(path, np.float32, "r", shape=(n, D))[rows])
            km = faiss_fit(sample, k, False)
            labels = [km.index.search(b.numpy(), 1)[1] for b in loader(path)()]
            return km.centroids if len(labels) else None
        return faiss_stream
    x = np.fromfile(path, np.float32).reshape(n, D)
    if method == "protolib":
        from protolib.method.explain.kmeans import kmeans

        xt = torch.from_numpy(x)
        return lambda: kmeans(xt, k, seed=0).centers
    if method.startswith("sk-"):
        from sklearn.cluster import KMeans

        return lambda: KMeans(k, n_init=1, random_state=0, algorithm=method[3:]).fit(x).cluster_centers_

    def faiss_mem():
        km = faiss_fit(x, k, method == "faiss-all")
        km.index.search(x, 1)
        return km.centroids
    return faiss_mem


def run_case(size: str, method: str, path: str) -> dict:
    work = fit(method, size, path)
    t = time.perf_counter()
    centers = work()
    seconds = time.perf_counter() - t
    peak = rss_gib()
    return {"seconds": seconds, "peak_gib": peak, "inertia": inertia(loader(path), centers)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--repeats", type=int, default=3, help="runs of every case, round-robin; the fastest is shown")
    p.add_argument("--data-dir", default="/tmp/protolib-kmeans-bench")
    p.add_argument("--case", nargs=3, help=argparse.SUPPRESS)  # one subprocess: size method path
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    print(f"torch threads {torch.get_num_threads()}; each case in its own process; time = centres + labels")
    print(f"{'size':>5} {'method':>10} {'time s':>8} {'x sklearn':>9} {'x faiss-def':>11} {'x faiss-all':>11} "
          f"{'peak GiB':>8} {'inertia vs best full %':>22}")
    for size in args.sizes:
        path, rows = data_file(size, args.data_dir), {}
        for _ in range(args.repeats):  # round-robin: a change of load hits every method alike
            for method in args.methods:
                proc = subprocess.run([sys.executable, __file__, "--case", size, method, path],
                                      capture_output=True, text=True)
                if proc.returncode:
                    print(f"{size:>5} {method:>10} failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                r, old = json.loads(proc.stdout.strip().splitlines()[-1]), rows.get(method)
                if old is not None:
                    r["seconds"], r["peak_gib"] = min(r["seconds"], old["seconds"]), max(r["peak_gib"], old["peak_gib"])
                rows[method] = r
        report(size, rows)


def report(size: str, rows: dict) -> None:
    full = [rows[m]["inertia"] for m in FULL if m in rows]
    best = min(full) if full else None
    sk = min((rows[m]["seconds"] for m in ("sk-lloyd", "sk-elkan") if m in rows), default=None)

    def ratio(ref, t):
        return f"{ref / t:.2f}" if ref else "-"
    for method, r in rows.items():
        t = r["seconds"]
        rel = f"{100 * (r['inertia'] / best - 1):+.3f}" if best else "-"
        print(f"{size:>5} {method:>10} {t:8.3f} {ratio(sk, t):>9} "
              f"{ratio(rows.get('faiss-def', {}).get('seconds'), t):>11} "
              f"{ratio(rows.get('faiss-all', {}).get('seconds'), t):>11} {r['peak_gib']:8.2f} {rel:>22}", flush=True)


if __name__ == "__main__":
    main()
