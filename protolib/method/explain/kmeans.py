"""A small torch k-means (Lloyd + greedy k-means++) that runs in chunks on any device.

Why not only scikit-learn: the pixel vectors of the explanation maps (eq. 8) are many
(30 CUB images of 28 x 28 pixels = 23,520 vectors of 896 dims per class) and are produced on the
GPU when there is one; this k-means keeps them there and never builds an (N, K) distance matrix
larger than ``chunk_size`` rows. It follows scikit-learn's ``KMeans`` (``algorithm="lloyd"``) step
by step so that the two agree (tested: same initial centres give the same labels; inertia within
1 % from k-means++):

* the data are centred before clustering (precision of ``|x|^2 - 2 x.c + |c|^2`` in float32);
* greedy k-means++ with ``2 + floor(ln k)`` candidates per step, drawn from a *local*
  ``torch.Generator`` on the CPU (the global RNG is untouched, results do not depend on the device);
* stop when the labels no longer change, or when the squared centre shift is at most
  ``tol * mean(var(X, axis=0))``, or after ``max_iter`` iterations; labels and inertia are then
  recomputed for the final centres;
* an empty cluster is reseeded with the point farthest from its centre (which leaves its old
  cluster), as scikit-learn does;
* ``n_init`` runs, the one with the lowest inertia wins; ties in distance go to the lowest index.

On many points (more than ``FULL_PER_CENTRE * k``) it does about faiss's amount of work and keeps
the inertia of a full fit: the steps above run on a seeded sample of ``sample * k`` rows (faiss's
256 per centre by default), with 2k centres merged down to k by Ward's cost (:func:`ward_merge`),
then ``refine`` Lloyd passes over a larger sample of ``REFINE_PER_CENTRE * k`` rows (all the points
when fewer) and one last pass over all the points for the labels and the inertia, as faiss's search.
Those passes read ``x`` in place (distances from the sample's mean, see :func:`_pass`). The refining
passes cut the sample's error on the centres from about 1/``sample`` of the inertia to about 1/4096.
``benchmarks/kmeans_backends.py``, synthetic pixels: 0.1-1.6 % *below* scikit-learn's and faiss's full
fits at 23,520 x 896 (k=10) and 200,000 x 896 (k=5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from protolib.method.explain.kmeans_ops import add_rows, padded_columns, sq_norms, thin_columns


@dataclass
class KMeansResult:
    """centers: (k, D) in the input dtype; labels: (N,) long (None from the streaming backend, which
    never holds all points); inertia: sum of squared distances to the nearest centre."""

    centers: torch.Tensor
    labels: torch.Tensor | None
    inertia: float
    n_iter: int


SAMPLE_PER_CENTRE = 256  # rows per centre of the sample the many-points fit starts on (faiss's default)
REFINE_PER_CENTRE = 4096  # rows per centre of the larger sample its refining Lloyd passes read (all when fewer)
FULL_PER_CENTRE = 1024  # up to this many rows per centre, Lloyd runs on all of them (faiss FAQ: ~1000 k)
PASS_ROWS = 2048  # rows per chunk of a full pass (7 MiB at 896 dims): it stays in cache between its reads
CHUNK_ELEMENTS = 1 << 24  # default size of a (rows, k) distance block: 64 MiB in float32
STEP_ROWS = 16384  # rows per fused assignment + centre-sum chunk of a Lloyd step (measured fastest on CPU)
FINE_ITER = 5  # Lloyd steps of the sample's 2k-centre fit: a fine partition to merge (same end as 300, measured)


def chunk_rows(k: int, chunk_size: int | None) -> int:
    """Rows per chunk: ``chunk_size`` when given, else as many as keep a (rows, k) block at CHUNK_ELEMENTS."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        return int(chunk_size)
    return max(256, CHUNK_ELEMENTS // max(k, 1))


def pass_rows(k: int, chunk_size: int | None) -> int:
    """Rows per chunk of a pass over many points (a sample's refining passes, the labels pass, a
    stream's batch): :func:`chunk_rows`, at most ``PASS_ROWS``, so the chunk stays in cache."""
    return min(chunk_rows(k, chunk_size), PASS_ROWS)


def _sq_dist(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """|x - c|^2 for x: (n, D), c: (k, D) -> (n, k), clipped at 0 (x_sq: (n,) precomputed |x|^2)."""
    x_sq = sq_norms(x) if x_sq is None else x_sq
    return torch.addmm(c_sq, x, c.T, alpha=-2.0).add_(x_sq.unsqueeze(1)).clamp_min_(0.0)


def _nearest(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor, x_sq: torch.Tensor | None) -> tuple:
    """(squared distance, index) of the nearest row of c for every row of x.

    The argmin runs on |c|^2 - 2 x.c (|x|^2 is the same for every centre), as scikit-learn's Lloyd
    does; |x|^2 is added to the minima only: two (n, k) passes fewer than the full distances. The
    GEMM's columns are padded where that pays (:func:`.kmeans_ops.thin_columns`); the padding's
    products are never read.
    """
    ct, bias = thin_columns(c.T, c_sq)
    best, labels = torch.addmm(bias, x, ct, alpha=-2.0)[:, :len(c)].min(1)
    x_sq = sq_norms(x) if x_sq is None else x_sq
    return best.add_(x_sq).clamp_min_(0.0), labels


def assign(x: torch.Tensor, centers: torch.Tensor, chunk_size: int | None = None,
           x_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of every row of ``x`` (N, D): labels (N,) and squared distances (N,).

    Works in chunks of ``chunk_size`` rows (default: see :func:`chunk_rows`); the lowest index
    wins a tie. ``x_sq`` (N,) are the squared norms of the rows when already known.
    """
    if x.ndim != 2 or centers.ndim != 2 or x.shape[1] != centers.shape[1]:
        raise ValueError(f"x must be (N, D) and centers (k, D), got {tuple(x.shape)} and {tuple(centers.shape)}")
    centers = centers.to(device=x.device, dtype=x.dtype)
    chunk_size = chunk_rows(len(centers), chunk_size)
    c_sq = (centers * centers).sum(1)
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    dists = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for a in range(0, len(x), chunk_size):
        part = None if x_sq is None else x_sq[a:a + chunk_size]
        dists[a:a + chunk_size], labels[a:a + chunk_size] = _nearest(x[a:a + chunk_size], centers, c_sq, part)
    return labels, dists


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator, n_local_trials: int | None = None,
                    x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, scikit-learn's variant): (k, D) rows of ``x``.

    Random draws come from ``generator`` (a CPU generator), so the result does not depend on the device.
    ``x_sq`` (N,) are the squared row norms when already known.
    """
    n = len(x)
    trials = n_local_trials or 2 + int(math.log(k))
    x_sq = sq_norms(x) if x_sq is None else x_sq
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = _sq_dist(x, x[first:first + 1], x_sq[first:first + 1], x_sq).squeeze(1).double()
    potential = closest.sum()
    for _ in range(1, k):
        draws = torch.rand(trials, generator=generator, dtype=torch.float64).to(x.device) * potential
        cand = torch.searchsorted(closest.cumsum(0), draws).clamp_(max=n - 1)
        cx = x[cand]
        d = _sq_dist(x, cx, x_sq[cand], x_sq).T.double()  # (trials, N)
        d = torch.minimum(d, closest)
        pots = d.sum(1)
        best = int(pots.argmin())
        potential, closest = pots[best], d[best]
        centers.append(x[cand[best]])
    return torch.stack(centers)


def _lloyd_step(x, x_sq, centers, chunk_size):
    """One E+M step: labels and distances for ``centers``, then the new (sums, counts) in float64."""
    k = len(centers)
    rows = min(chunk_rows(k, chunk_size), STEP_ROWS)
    c_sq = (centers * centers).sum(1)
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    dists = torch.empty(len(x), dtype=x.dtype, device=x.device)
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)
    for a in range(0, len(x), rows):  # E and M on one chunk while it is fresh in memory
        part = x[a:a + rows]
        dists[a:a + rows], labels[a:a + rows] = _nearest(part, centers, c_sq, x_sq[a:a + rows])
        add_rows(sums, labels[a:a + rows], part)  # per-chunk sums in x's dtype, total in float64
    counts = torch.bincount(labels, minlength=k).double()
    return labels, dists, sums, counts


def _relocate_empty(x, labels, dists, sums, counts) -> None:
    """Give each empty cluster the point farthest from its centre (in place on sums/counts)."""
    empty = (counts == 0).nonzero().flatten()
    if len(empty) == 0:
        return
    far = dists.topk(len(empty)).indices
    for new, idx in zip(empty.tolist(), far.tolist()):
        old = int(labels[idx])
        point = x[idx].to(sums.dtype)
        sums[old] -= point
        counts[old] -= 1
        sums[new] = point
        counts[new] = 1


def mean_variance(x: torch.Tensor, x_sq: torch.Tensor, mean: torch.Tensor | None = None) -> float:
    """mean(var(x, axis=0)) from the squared row norms: (mean |x_i|^2 - |mean x|^2) / D, in float64:
    one pass less than ``x.var(0)`` (also slow on wide CPU tensors); exact for centred x."""
    mean = x.mean(0) if mean is None else mean
    return max((x_sq.double().mean() - mean.double().square().sum()).item(), 0.0) / x.shape[1]


def lloyd(x: torch.Tensor, centers: torch.Tensor, max_iter: int = 300, tol: float = 1e-4,
          chunk_size: int | None = None, x_sq: torch.Tensor | None = None) -> KMeansResult:
    """Lloyd's iterations from ``centers`` (k, D) on ``x`` (N, D); ``tol`` is relative (see module doc).

    ``x_sq`` (N,) are the squared row norms when already known."""
    x_sq = sq_norms(x) if x_sq is None else x_sq
    abs_tol = tol * mean_variance(x, x_sq)
    centers = centers.to(device=x.device, dtype=x.dtype).clone()
    labels_old, it = None, 0
    for it in range(1, max_iter + 1):
        labels, dists, sums, counts = _lloyd_step(x, x_sq, centers, chunk_size)
        _relocate_empty(x, labels, dists, sums, counts)
        new = (sums / counts.clamp_min(1).unsqueeze(1)).to(x.dtype)
        new[counts == 0] = centers[counts == 0]
        shift = ((new - centers) ** 2).sum().item()
        centers = new
        if labels_old is not None and torch.equal(labels, labels_old):
            break
        if shift <= abs_tol:
            break
        labels_old = labels
    labels, dists = assign(x, centers, chunk_size, x_sq)  # labels and inertia of the final centres
    return KMeansResult(centers, labels, float(dists.double().sum()), it)


def generator(seed: int | torch.Generator) -> torch.Generator:
    """``seed`` itself when it is a CPU generator, else a new local generator seeded with it."""
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))


def check_points(x: torch.Tensor, k: int) -> None:
    """Refuse anything but a floating (N, D) tensor with N >= k >= 1 (ValueError)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating (N, D) tensor, got {getattr(x, 'dtype', type(x).__name__)} "
                         f"{tuple(getattr(x, 'shape', ()))}")
    if not 1 <= k <= len(x):
        raise ValueError(f"k={k} clusters need 1 <= k <= N={len(x)} points")


def _finite(mean: torch.Tensor) -> None:
    if not torch.isfinite(mean).all():  # a NaN or infinity anywhere makes the mean non-finite
        raise ValueError("x contains NaN or infinite values (or values too large to sum)")


def centred(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that ``x`` is a finite floating (N, D) tensor with N >= k; return (x - mean, mean (1, D))."""
    check_points(x, k)
    mean = x.mean(0, keepdim=True)
    _finite(mean)
    return x - mean, mean


def _pass(x: torch.Tensor, centers: torch.Tensor, shift: torch.Tensor, rows: int, sums: bool = False,
          dists: bool = False) -> tuple:
    """One pass over ``x`` (N, D) in chunks of ``rows``, against ``centers`` (k, D) given from ``shift`` (1, D).

    No shifted copy of ``x``: the argmin runs on ``|c|^2 + 2 shift.c - 2 x.c``, which is
    ``|x - shift - c|^2 - |x - shift|^2`` (float32 precision as if x were centred, the GEMM on x as
    it is); ``x.shift`` comes from the same GEMM (one more column) for the distances. Returns labels
    (N,), the squared distances (N,) when ``dists`` (else None), and when ``sums`` the float64
    sums (k, D) and counts (k,) of the rows of each centre (else None, None).
    """
    k, c64, s64 = len(centers), centers.double(), shift.double().flatten()
    bias = (c64.square().sum(1) + 2 * (c64 @ s64)).to(x.dtype)
    ct = padded_columns(torch.cat([centers.to(x.dtype), shift.to(x.dtype)]).T)  # (D, >= k + 1), a view as MKL likes it
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    out = torch.empty(len(x), dtype=torch.float64, device=x.device) if dists else None
    total = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device) if sums else None
    for a in range(0, len(x), rows):
        part = x[a:a + rows]
        prod = part @ ct
        best, labels[a:a + rows] = torch.add(bias, prod[:, :k], alpha=-2.0).min(1)
        if dists:  # |x - shift|^2 = |x|^2 - 2 x.shift + |shift|^2, summed in float64
            sq = sq_norms(part).double() - 2 * prod[:, k].double() + s64.square().sum()
            out[a:a + rows] = (sq + best.double()).clamp_min_(0.0)
        if sums:
            add_rows(total, labels[a:a + rows], part)
    counts = torch.bincount(labels, minlength=k).double() if sums else None
    return labels, out, total, counts


def ward_merge(centers: torch.Tensor, counts: torch.Tensor, k: int) -> torch.Tensor:
    """Merge the two centres of least Ward cost ``n_a n_b / (n_a + n_b) |c_a - c_b|^2`` (the rise in
    inertia when their points join) into their weighted mean until ``k`` remain: (k, D) in float64."""
    c, n = centers.double().clone(), counts.double().clamp_min(1).clone()
    while len(c) > k:
        cost = n[:, None] * n[None] / (n[:, None] + n[None]) * torch.cdist(c, c).square()
        cost.fill_diagonal_(float("inf"))
        i, j = sorted(divmod(int(cost.argmin()), len(c)))
        c[i] = (n[i] * c[i] + n[j] * c[j]) / (n[i] + n[j])
        n[i] += n[j]
        keep = torch.arange(len(c), device=c.device) != j
        c, n = c[keep], n[keep]
    return c


def _fit_sample(xs, k, n_init, max_iter, tol, gen, chunk_size) -> KMeansResult:
    """The best of ``n_init`` fits of the sample ``xs``: k-means++ and ``FINE_ITER`` Lloyd steps with 2k
    centres, Ward merges down to k, Lloyd again. Merging a finer partition escapes the local optima
    where k-means++ splits one group and joins two others (measured on synthetic pixels: within 0.1 %
    of the best full fit where k-means++ alone lands 0.5-2.7 % above; the fine fit run to convergence
    instead of 5 steps ends on the same centres at both benchmark shapes, seeds 0-2)."""
    best = None
    for _ in range(n_init):
        fine = kmeans(xs, 2 * k, max_iter=min(FINE_ITER, max_iter), tol=tol, seed=gen, chunk_size=chunk_size,
                      sample=None)
        start = ward_merge(fine.centers, torch.bincount(fine.labels, minlength=2 * k), k).to(xs)
        res = kmeans(xs, k, max_iter=max_iter, tol=tol, init=start, chunk_size=chunk_size, sample=None)
        res.n_iter += fine.n_iter
        if best is None or res.inertia < best.inertia:
            best = res
    return best


def _kmeans_sampled(x, k, n_init, max_iter, tol, gen, chunk_size, sample, refine) -> KMeansResult:
    """The many-points route (module doc): fit on ``sample * k`` seeded rows, ``refine`` Lloyd
    passes over ``REFINE_PER_CENTRE * k`` of them (all of ``x`` when fewer), one pass over all of
    ``x`` for labels and inertia."""
    order = torch.randperm(len(x), generator=gen).to(x.device)
    xs = x[order[: sample * k]]
    shift = xs.mean(0, keepdim=True)
    _finite(shift)
    fit = _fit_sample(xs, k, n_init, max_iter, tol, gen, chunk_size)
    centers, rows = fit.centers - shift, pass_rows(k, chunk_size)
    xr = x if len(x) <= REFINE_PER_CENTRE * k or refine == 0 else x[order[: REFINE_PER_CENTRE * k]]
    for _ in range(refine):
        _, _, sums, counts = _pass(xr, centers, shift, rows, sums=True)
        hit = counts > 0  # a centre no point chose keeps its place
        centers[hit] = (sums[hit] / counts[hit].unsqueeze(1) - shift.double()).to(x.dtype)
    labels, dists, _, _ = _pass(x, centers, shift, rows, dists=True)
    inertia = float(dists.sum())
    if not math.isfinite(inertia):
        raise ValueError("x contains NaN or infinite values (or values too large to sum)")
    return KMeansResult(centers + shift, labels, inertia, fit.n_iter + refine)


def kmeans(x: torch.Tensor, k: int, n_init: int = 1, max_iter: int = 300, tol: float = 1e-4,
           seed: int | torch.Generator = 0, init: torch.Tensor | None = None,
           chunk_size: int | None = None, sample: int | None = SAMPLE_PER_CENTRE, refine: int = 1) -> KMeansResult:
    """k-means of ``x`` (N, D) into ``k`` clusters on ``x``'s device; the best of ``n_init`` runs.

    ``seed`` is an int or a CPU ``torch.Generator`` (consumed in order, so the same seed gives the
    same result). ``init`` (k, D) replaces k-means++ (then one run, Lloyd on all points). Above
    ``FULL_PER_CENTRE * k`` points the fit starts on ``sample * k`` seeded rows, takes ``refine``
    Lloyd passes over ``REFINE_PER_CENTRE * k`` of them and ends with one pass over all points for
    the labels (module doc); ``sample=None`` runs Lloyd on all points whatever N.
    Returns a :class:`KMeansResult` with the centres in ``x``'s coordinates and dtype.
    """
    check_points(x, k)
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample must be a positive int (rows per centre) or None, got {sample!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be a non-negative int, got {refine!r}")
    gen = generator(seed)
    if init is None and sample is not None and len(x) > FULL_PER_CENTRE * k:
        return _kmeans_sampled(x, k, n_init, max_iter, tol, gen, chunk_size, sample, refine)
    xc, mean = centred(x, k)
    x_sq = sq_norms(xc)
    best = None
    for _ in range(1 if init is not None else n_init):
        start = init.to(xc) - mean if init is not None else kmeans_plusplus(xc, k, gen, x_sq=x_sq)
        res = lloyd(xc, start, max_iter=max_iter, tol=tol, chunk_size=chunk_size, x_sq=x_sq)
        if best is None or res.inertia < best.inertia:
            best = res
    best.centers = best.centers + mean
    return best


__all__ = ["KMeansResult", "SAMPLE_PER_CENTRE", "REFINE_PER_CENTRE", "FULL_PER_CENTRE", "FINE_ITER", "chunk_rows",
           "pass_rows", "generator", "check_points", "centred", "assign", "kmeans_plusplus", "mean_variance", "lloyd",
           "ward_merge", "kmeans"]
