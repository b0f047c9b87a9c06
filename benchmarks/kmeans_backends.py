"""Speed, memory and inertia of the k-means backends on B234-like pixel vectors (896 dims).

Sizes (``--sizes``): ``cub`` = one CUB class (30 images x 28 x 28 = 23,520 rows, k=10),
``200k`` = 200,000 rows (k=5), ``1m`` = a 1M-row class (1,276 images, k=10) generated on the fly.
The rows are :mod:`protolib.synthetic_pixels`, made batch by batch (64 images a batch, seeded by
the batch number). Methods (``--methods``):

* ``sklearn``: scikit-learn ``KMeans(algorithm="lloyd")``; ``minibatch``: ``MiniBatchKMeans``
  (batch_size 4096); ``faiss``, ``exact``, ``streaming``: :mod:`protolib.explain.kmeans_backends`;
* ``dask``: :func:`protolib.explain.kmeans_dask.dask_kmeans` on a ``LocalCluster`` of 2 single-threaded
  workers, the rows made by delayed tasks on the workers.

Every (size, method) runs in its own subprocess, ``--repeats`` times round-robin over the methods
(the shortest time and the largest peak are shown; on a shared machine the load changes). Time: the clustering alone, after the rows are
made (streaming: every pass over the stream, which makes the rows again each pass; the time of
one pass of making them is printed apart). Memory: the peak resident set (``ru_maxrss``) of the
subprocess, including the rows it holds and ~0.4 GiB of Python + torch; for Dask, the sum of the
two workers' peaks plus this process's. All methods: n_init=1, k-means++ (sklearn's own draws
for sklearn), tol=1e-4, max_iter=300 (MiniBatchKMeans: its defaults), seed 0, and the same threads
(2 on the 2-core machine: torch, OpenMP and BLAS defaults).

    .venv/bin/python benchmarks/kmeans_backends.py                          # everything
    .venv/bin/python benchmarks/kmeans_backends.py --sizes cub 200k --methods sklearn faiss exact
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from protolib.synthetic_pixels import BLOCKS, BATCH_ROWS, batch as make_batch, stream as batches

SIZES = {"cub": (23_520, 10), "200k": (200_000, 5), "1m": (1_000_384, 10)}  # 1,276 images x 784
METHODS = ("sklearn", "minibatch", "faiss", "exact", "streaming", "dask")
def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_case(size: str, method: str) -> dict:
    """One method on one size, in this process; returns seconds, GiB and inertia."""
    n, k = SIZES[size]
    out = {"size": size, "method": method}
    if method == "streaming":
        from protolib.explain.kmeans_backends import streaming_kmeans

        t = time.perf_counter()
        for _ in batches(n):
            pass
        out["make_s"] = time.perf_counter() - t
        t = time.perf_counter()
        res = streaming_kmeans(lambda: batches(n), k, seed=0)
        out.update(seconds=time.perf_counter() - t, inertia=res.inertia, n_iter=res.n_iter)
    elif method == "dask":
        out.update(run_dask(n, k))
    else:
        x = torch.cat(list(batches(n)))
        out["data_gib"] = rss_gib()
        t = time.perf_counter()
        if method in ("sklearn", "minibatch"):
            from sklearn.cluster import KMeans, MiniBatchKMeans

            est = (KMeans(k, n_init=1, random_state=0, algorithm="lloyd") if method == "sklearn"
                   else MiniBatchKMeans(k, n_init=1, random_state=0, batch_size=4096))
            est.fit(x.numpy())
            out.update(seconds=time.perf_counter() - t, inertia=float(est.inertia_), n_iter=int(est.n_iter_))
            if method == "minibatch":  # its inertia_ is that of its last labels: recompute for its centres
                from protolib.explain.kmeans import assign

                out["inertia"] = float(assign(x, torch.from_numpy(est.cluster_centers_))[1].double().sum())
        else:
            from protolib.explain.kmeans_backends import cluster

            res = cluster(x, k, method, seed=0)
            out.update(seconds=time.perf_counter() - t, inertia=res.inertia, n_iter=res.n_iter)
    out.setdefault("peak_gib", rss_gib())
    return out


def run_dask(n: int, k: int) -> dict:
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from protolib.explain.kmeans_dask import dask_kmeans

    per = BATCH_ROWS
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as lc, Client(lc) as client:
        parts = [da.from_delayed(dask.delayed(lambda i, r: make_batch(i, r).numpy())(i, min(per, n - a)),
                                 (min(per, n - a), sum(BLOCKS)), np.float32) for i, a in enumerate(range(0, n, per))]
        x = client.persist(da.concatenate(parts))
        dask.distributed.wait(x)
        t = time.perf_counter()
        res = dask_kmeans(x, k, seed=0, client=client)
        seconds = time.perf_counter() - t
        workers = sum(client.run(rss_gib).values())
    return {"seconds": seconds, "inertia": res.inertia, "n_iter": res.n_iter, "peak_gib": workers + rss_gib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--repeats", type=int, default=2, help="runs of every case, round-robin; the fastest is shown")
    p.add_argument("--case", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)  # one subprocess
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    print(f"torch threads {torch.get_num_threads()}; each case in its own process")
    print(f"{'size':>5} {'method':>10} {'time s':>8} {'x sklearn':>9} {'peak GiB':>8} {'inertia':>14} "
          f"{'vs sklearn %':>12} {'vs exact %':>10} {'iters':>5}")
    for size in args.sizes:
        rows = {}
        for rep in range(args.repeats):  # round-robin: a change of load hits every method alike
            for method in args.methods:
                proc = subprocess.run([sys.executable, __file__, "--case", size, method], capture_output=True, text=True)
                if proc.returncode:
                    print(f"{size:>5} {method:>10} failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                old = rows.get(method)
                if old is not None:
                    r["peak_gib"] = max(r["peak_gib"], old["peak_gib"])
                    r["seconds"] = min(r["seconds"], old["seconds"])
                rows[method] = r
        ref, exact = rows.get("sklearn"), rows.get("exact")
        for method, r in rows.items():
            speed = f"{ref['seconds'] / r['seconds']:9.2f}" if ref else f"{'-':>9}"
            d_ref = f"{100 * (r['inertia'] / ref['inertia'] - 1):12.3f}" if ref else f"{'-':>12}"
            d_ex = f"{100 * (r['inertia'] / exact['inertia'] - 1):10.3f}" if exact else f"{'-':>10}"
            extra = f"  (one pass of making the rows: {r['make_s']:.1f} s)" if "make_s" in r else ""
            print(f"{size:>5} {method:>10} {r['seconds']:8.2f} {speed} {r['peak_gib']:8.2f} {r['inertia']:14.6g} "
                  f"{d_ref} {d_ex} {r['n_iter']:5d}{extra}", flush=True)

if __name__ == "__main__":
    main()
