"""Class-wise k-means beyond one machine, on Dask (``pip install "dask[distributed]"``).

The pixel vectors of a class are a Dask array whose blocks are computed by delayed tasks (the
forward passes of :func:`class_pixels`), and Lloyd's iterations run on the engine
(:func:`dask_kmeans`): each iteration sends the k centres to the workers, every block returns its
per-centre sums and counts, and only those (k x D numbers per block) come back. The points never
leave the workers. From the same initial centres it takes the steps of the exact backend
(:func:`protolib.method.explain.kmeans.lloyd`: same assignment, float64 sums, same stopping rule), so it gives the
same centres; one difference: a centre that loses all its points keeps its place (the exact backend
moves it to the farthest point).

Pointing it at a real cluster: start a scheduler and workers there (``dask scheduler`` on one
machine, ``dask worker tcp://SCHEDULER:8786`` on the others, each with protolib installed and the
data at the same path), then ``client = dask.distributed.Client("tcp://SCHEDULER:8786")`` here and
pass ``client=client`` (or just create it: a new ``Client`` becomes Dask's default scheduler).
On one machine, ``Client(LocalCluster(n_workers=2, threads_per_worker=1))`` does the same.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from protolib.core.extras import require
from protolib.method.explain.kmeans import KMeansResult, assign, generator, kmeans_plusplus


def _import_dask():
    return require("dask", "the Dask k-means engine"), require("dask.array", "the Dask k-means engine")


def _moments(block: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Column sums (float64), the sum of squared norms and the row count of one block."""
    x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    return x.double().sum(0).numpy(), float(torch.linalg.vector_norm(x, dim=1).double().square().sum()), len(x)


def _partials(block: np.ndarray, centers: np.ndarray, mean: np.ndarray, labels: bool = False):
    """One block's share of a Lloyd step: per-centre sums (float64), counts, summed distances
    (and its labels when asked), on rows centred by ``mean``."""
    x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)) - torch.from_numpy(mean)
    lab, dist = assign(x, torch.from_numpy(centers))
    k = len(centers)
    sums = (torch.nn.functional.one_hot(lab, k).to(x.dtype).T @ x).double().numpy()
    out = (sums, torch.bincount(lab, minlength=k).double().numpy(), float(dist.double().sum()))
    return out + (lab.numpy(),) if labels else out


def _sum(parts):
    return tuple(sum(p[i] for p in parts) for i in range(3))


def dask_kmeans(x, k: int, n_init: int = 1, max_iter: int = 300, tol: float = 1e-4,
                seed: int | torch.Generator = 0, init: torch.Tensor | np.ndarray | None = None,
                init_size: int = 65536, client=None) -> KMeansResult:
    """k-means of a Dask array ``x`` (N, D) on a Dask cluster (``client``, or Dask's default scheduler).

    Seeding: k-means++ (:func:`protolib.method.explain.kmeans.kmeans_plusplus`, same local generator) on at most
    ``init_size`` rows drawn with ``seed`` and pulled to this process (all rows when N <= init_size);
    ``init`` (k, D) replaces it. The best of ``n_init`` runs; ``tol`` as in the exact backend.
    Returns centres (float32, CPU), labels (N,) and inertia of the final centres.
    """
    dask, da = _import_dask()
    if not isinstance(x, da.Array) or x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating (N, D) dask array, got {type(x).__name__} {getattr(x, 'shape', '')}")
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k={k} clusters need 1 <= k <= N={n} points")
    compute = client.compute if client is not None else dask.compute
    x = x.rechunk({1: -1})
    x = client.persist(x) if client is not None else x.persist()  # the blocks stay on the workers
    blocks = list(x.to_delayed().ravel())

    def run(tasks):
        out = compute(*tasks) if client is None else client.gather(compute(tasks))
        return list(out)

    total, sq, _ = _sum(run([dask.delayed(_moments)(b) for b in blocks]))
    mean = (total / n).astype(np.float32)
    if not np.isfinite(mean).all():
        raise ValueError("x contains NaN or infinite values (or values too large to sum)")
    abs_tol = tol * max(sq / n - float((total / n) @ (total / n)), 0.0) / d
    gen = generator(seed)
    best = None
    for _ in range(1 if init is not None else n_init):
        if init is not None:
            start = torch.as_tensor(np.asarray(init, dtype=np.float32)) - torch.from_numpy(mean)
        else:
            rows = np.sort(torch.randperm(n, generator=gen)[:init_size].numpy()) if n > init_size else np.arange(n)
            sample = torch.from_numpy(np.asarray(x[rows].compute(), dtype=np.float32)) - torch.from_numpy(mean)
            start = kmeans_plusplus(sample, k, gen)
        centers, it = start.numpy(), 0
        for it in range(1, max_iter + 1):
            sums, counts, _ = _sum(run([dask.delayed(_partials)(b, centers, mean) for b in blocks]))
            new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers).astype(np.float32)
            shift = float(((new - centers).astype(np.float64) ** 2).sum())
            centers = new
            if shift <= abs_tol:
                break
        parts = run([dask.delayed(_partials)(b, centers, mean, True) for b in blocks])
        res = KMeansResult(torch.from_numpy(centers + mean), torch.from_numpy(np.concatenate([p[3] for p in parts])),
                           float(sum(p[2] for p in parts)), it)
        if best is None or res.inertia < best.inertia:
            best = res
    return best


def _pixel_block(ex, dataset, indices: Sequence[int]) -> np.ndarray:
    """Pixel vectors (len(indices) * H' * W', D) of some images of ``dataset`` (one forward pass each batch)."""
    from torch.utils.data import Subset

    out = []
    for x, _ in torch.utils.data.DataLoader(Subset(dataset, list(indices)), batch_size=ex.batch_size):
        h = ex.features(x)
        out.append(h.permute(0, 2, 3, 1).reshape(-1, h.shape[1]).float().cpu())
    return torch.cat(out).numpy()


def class_pixels(ex, dataset, indices: Sequence[int], images_per_task: int = 16):
    """The pixel vectors of the images ``indices`` as a lazy Dask array: feature extraction by
    ``ex`` (an :class:`~protolib.method.explain.maps.ExplanationMaps`) runs as one delayed task per
    ``images_per_task`` images, on the workers (which need ``dataset`` readable at the same paths)."""
    dask, da = _import_dask()
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices is empty: no image to take pixels from")
    h = ex.features(dataset[indices[0]][0].unsqueeze(0))  # one image here, for the block shapes
    r, dim = h.shape[-2] * h.shape[-1], h.shape[1]
    ex_d, data_d = dask.delayed(ex, pure=True), dask.delayed(dataset, pure=True)
    parts = [indices[a:a + images_per_task] for a in range(0, len(indices), images_per_task)]
    return da.concatenate([da.from_delayed(dask.delayed(_pixel_block)(ex_d, data_d, p), (len(p) * r, dim), np.float32)
                           for p in parts])


__all__ = ["dask_kmeans", "class_pixels"]
