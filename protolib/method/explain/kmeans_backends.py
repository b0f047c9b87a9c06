"""k-means backends chosen by name, for the class-wise prototypes of the explanation maps.

* ``"exact"``: :func:`protolib.method.explain.kmeans.kmeans`, the torch Lloyd that follows scikit-learn (default;
  CPU or GPU, needs the class's pixel vectors in memory).
* ``"faiss"``: Lloyd's iterations of ``faiss`` (``pip install faiss-cpu``), on the CPU. faiss
  subsamples to ``max_points_per_centroid`` points per centre by default; here it does not unless
  asked (``max_points_per_centroid=...``).
* ``"streaming"``: :func:`streaming_kmeans`, k-means over a *stream* of batches of pixel vectors
  (e.g. one batch per forward pass): a fit on the head of the stream, optional mini-batch epochs and
  Lloyd passes, one pass for the inertia; on the device of the batches; memory is two batches (the
  one clustered, the next one read ahead) plus the head, whatever the number of points.

All backends share the seeding (greedy k-means++ of :mod:`protolib.method.explain.kmeans` on a local generator,
so the same seed gives the same initial centres), ``n_init`` (the run with the lowest inertia
wins), ``tol`` (squared centre shift at most ``tol * mean(var(X, axis=0))``), ``max_iter`` and the
result type :class:`~protolib.method.explain.kmeans.KMeansResult`. The engine beyond one machine (Dask) is in
:mod:`protolib.method.explain.kmeans_dask`.
"""

from __future__ import annotations

import queue
import threading
from contextlib import ExitStack, closing, contextmanager
from typing import Callable, Iterable

import numpy as np
import torch

from protolib.core.extras import require
from protolib.method.explain.kmeans import (
    PASS_ROWS,
    KMeansResult,
    _pass,
    centred,
    generator,
    kmeans,
    kmeans_plusplus,
    mean_variance,
    pass_rows,
)
from protolib.method.explain.kmeans_ops import sq_norms

BACKENDS = ("exact", "faiss", "streaming")


def cluster(x: torch.Tensor, k: int, backend: str = "exact", n_init: int = 1, max_iter: int = 300,
            tol: float = 1e-4, seed: int | torch.Generator = 0, init: torch.Tensor | None = None,
            chunk_size: int | None = None, **options) -> KMeansResult:
    """k-means of the points ``x`` (N, D) with the backend named ``backend`` (see the module doc).

    ``options`` go to the backend: ``max_points_per_centroid`` for faiss; ``batch_rows``,
    ``init_size``, ``init_runs``, ``max_epochs`` and ``refine`` for streaming (``x`` is then
    streamed in batches of ``batch_rows``).
    """
    if backend == "exact":
        _no_options(backend, options)
        return kmeans(x, k, n_init=n_init, max_iter=max_iter, tol=tol, seed=seed, init=init, chunk_size=chunk_size)
    if backend == "faiss":
        return faiss_kmeans(x, k, n_init=n_init, max_iter=max_iter, tol=tol, seed=seed, init=init, **options)
    if backend == "streaming":
        centred(x, k)  # the same input checks as the other backends
        rows = int(options.pop("batch_rows", 65536))
        return streaming_kmeans(lambda: x.split(rows), k, n_init=n_init, max_iter=max_iter, tol=tol, seed=seed,
                                init=init, chunk_size=chunk_size, read_ahead=False, **options)
    raise ValueError(f"unknown k-means backend {backend!r}; choose one of {BACKENDS}")


def _no_options(backend: str, options: dict) -> None:
    if options:
        raise TypeError(f"the {backend} backend takes no options {sorted(options)}")


def _import_faiss():
    return require("faiss", "the faiss k-means backend")


def faiss_kmeans(x: torch.Tensor, k: int, n_init: int = 1, max_iter: int = 300, tol: float = 1e-4,
                 seed: int | torch.Generator = 0, init: torch.Tensor | None = None,
                 max_points_per_centroid: int | None = None) -> KMeansResult:
    """k-means with faiss's Lloyd iterations from our k-means++ seeding (one faiss iteration per step,
    so that ``tol`` stops it as it stops the exact backend). Runs on the CPU in float32; the
    result is returned on ``x``'s device and dtype. ``max_points_per_centroid`` turns faiss's
    subsampling on (each iteration then sees at most that many points per centre)."""
    faiss = _import_faiss()
    xc, mean = centred(x, k)
    xc = xc.detach().to("cpu", torch.float32).contiguous()
    gen = generator(seed)
    x_sq = sq_norms(xc)
    abs_tol = tol * mean_variance(xc, x_sq, torch.zeros(xc.shape[1]))
    xn, (n, d) = xc.numpy(), xc.shape
    best = None
    for _ in range(1 if init is not None else n_init):
        start = (init.to(xc) - mean.to(xc)) if init is not None else kmeans_plusplus(xc, k, gen, x_sq=x_sq)
        centers, it = start.numpy().astype(np.float32), 0
        for it in range(1, max_iter + 1):
            clus = faiss.Clustering(d, k)
            clus.niter, clus.seed = 1, it  # faiss draws only when it subsamples or splits an empty centre
            clus.max_points_per_centroid = max_points_per_centroid or n  # no subsampling unless asked
            clus.min_points_per_centroid = 1
            faiss.copy_array_to_vector(centers.ravel(), clus.centroids)
            clus.train(xn, faiss.IndexFlatL2(d))
            new = faiss.vector_to_array(clus.centroids).reshape(k, d)
            shift = float(((new.astype(np.float64) - centers) ** 2).sum())
            centers = new
            if shift <= abs_tol:
                break
        index = faiss.IndexFlatL2(d)
        index.add(centers)
        dist, lab = index.search(xn, 1)
        res = KMeansResult(torch.from_numpy(centers), torch.from_numpy(lab[:, 0]).long(),
                           float(np.maximum(dist, 0).sum(dtype=np.float64)), it)
        if best is None or res.inertia < best.inertia:
            best = res
    best.centers = (best.centers + mean.to(best.centers)).to(device=x.device, dtype=x.dtype)
    best.labels = best.labels.to(x.device)
    return best


def _read_ahead(items: Iterable):
    """The items of ``items``, each next one read by a background thread while the caller works on the
    last, so that reading (a file, a generator) overlaps the pass's GEMMs. Two items are alive at a time:
    the caller's and the one being read. An error of the reader is raised here, at the item it failed
    on; closing early stops the reader."""
    ready, slots, stop, end = queue.Queue(), threading.Semaphore(2), threading.Event(), object()

    def read() -> None:
        try:
            source = iter(items)
            while True:
                while not slots.acquire(timeout=0.05):  # a slot first, then the read
                    if stop.is_set():
                        return
                item = next(source, end)
                ready.put((item, None))
                if item is end:
                    return
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            ready.put((end, err))

    reader = threading.Thread(target=read, name="protolib-stream-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item, err = ready.get()
            if err is not None:
                raise err
            if item is end:
                return
            yield item
            item = None
            slots.release()  # the caller is done with this item: the reader may start the one after next
    finally:
        stop.set()
        reader.join()


@contextmanager
def _a_core_for_the_reader(reading: bool):
    """Torch's threads less one (at least one) while a reader thread reads ahead: on our 2 cores the
    1M-row file of ``benchmarks/kmeans_backends.py`` took 3.8-4.0 s so, 4.6-4.8 s with both threads
    computing beside the reader (about as long as reading the file alone)."""
    before = torch.get_num_threads()
    if reading and before > 1:
        torch.set_num_threads(before - 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _head_then_rest(read: list, stream):
    """The batches read for the head (each let go once given), then the rest of the stream."""
    while read:
        yield read.pop(0)
    yield from stream


def _checked(batches: Callable[[], Iterable[torch.Tensor]], desc: str, progress: bool, ahead: bool = False):
    """The non-empty batches of a fresh pass over the stream, each checked to be a floating (m, D) tensor
    (``ahead``: the next batch read while this one is used, see :func:`_read_ahead`)."""
    from tqdm.auto import tqdm

    stream = _read_ahead(batches()) if ahead else batches()
    for i, b in enumerate(tqdm(stream, desc=desc, disable=not progress, leave=False)):
        if not isinstance(b, torch.Tensor) or b.ndim != 2 or not b.is_floating_point():
            raise ValueError(f"batch {i} of the stream is not a floating (m, D) tensor: "
                             f"{getattr(b, 'dtype', type(b).__name__)} {tuple(getattr(b, 'shape', ()))}")
        if len(b):
            yield b


def _head(stream, init_size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The first ``init_size`` rows of ``stream`` in float32, and the whole batches read for them (the
    stream is left open: the first pass goes on from there)."""
    head, read, kept = [], [], 0
    for b in stream:
        read.append(b)
        head.append(b[: init_size - kept])
        kept += len(head[-1])
        if kept >= init_size:
            break
    if not read:
        raise ValueError("the stream yielded no points")
    return torch.cat(head).float(), read


def _head_fit(sample: torch.Tensor, k: int, runs: int, max_iter: int, tol: float, seed, chunk_size) -> torch.Tensor:
    """Centres of the head: :func:`protolib.method.explain.kmeans.kmeans`, then the float64 means of the head's own
    rows under its labels (exact means, without the rounding of the centred coordinates)."""
    fit = kmeans(sample, k, n_init=runs, max_iter=max_iter, tol=tol, seed=seed, chunk_size=chunk_size)
    sums = torch.zeros(k, sample.shape[1], dtype=torch.float64, device=sample.device)
    for rows, labels in zip(sample.split(PASS_ROWS), fit.labels.split(PASS_ROWS)):  # no float64 copy of the head
        sums.index_add_(0, labels, rows.double())
    counts = torch.bincount(fit.labels, minlength=k).double().unsqueeze(1)
    return torch.where(counts > 0, sums / counts.clamp_min(1), fit.centers.double()).float()


def _minibatch_epoch(prepared, centers: torch.Tensor, counts: torch.Tensor, shift, chunk_size) -> None:
    """One epoch of Sculley's mini-batch update, in place: each batch moves every centre towards the mean of
    its points in the batch with the rate (its points in the batch) / (its points so far)."""
    for b in prepared:
        _, _, sums, n_b = _pass(b, centers - shift, shift, pass_rows(len(centers), chunk_size), sums=True)
        counts += n_b
        hit = n_b > 0
        rate = (n_b[hit] / counts[hit]).unsqueeze(1)
        mean_b = sums[hit] / n_b[hit].unsqueeze(1)
        centers[hit] = (centers[hit] + rate * (mean_b - centers[hit])).float()


def _stream_pass(prepared, centers: torch.Tensor, shift, chunk_size, sums: bool) -> tuple:
    """One exact pass over the stream: (inertia of ``centers``, float64 sums (k, D) and counts, or None)."""
    inertia, total, counts, rows = 0.0, None, None, pass_rows(len(centers), chunk_size)
    for b in prepared:
        _, dists, part, n_b = _pass(b, centers - shift, shift, rows, sums=sums, dists=True)
        inertia += dists.sum().item()
        if sums:
            total, counts = (part, n_b) if total is None else (total + part, counts + n_b)
    return inertia, total, counts


def streaming_kmeans(batches: Callable[[], Iterable[torch.Tensor]], k: int, n_init: int = 1, max_iter: int = 300,
                     tol: float = 1e-4, seed: int | torch.Generator = 0, init: torch.Tensor | None = None,
                     init_size: int = 32768, init_runs: int | None = None, max_epochs: int = 0, refine: int = 0,
                     chunk_size: int | None = None, progress: bool = False, read_ahead: bool = True) -> KMeansResult:
    """k-means over a stream, holding ``init_size`` rows and two batches (the one clustered, the next one read).

    ``batches()`` returns a fresh iterable of (m, D) float tensors, the same ones each time (e.g.
    the pixel vectors of one class, one forward pass per batch). Steps:

    1. the first ``init_size`` rows of the stream (the head) are clustered by
       :func:`protolib.method.explain.kmeans.kmeans` with ``init_runs`` runs (default ``n_init``);
       ``init`` (k, D) replaces this step. The head should not be ordered by cluster;
    2. ``max_epochs`` epochs of mini-batch updates (Sculley's, as scikit-learn's ``MiniBatchKMeans``),
       stopped early when an epoch moves the centres by at most ``tol * mean(var)`` of the head;
    3. ``refine`` exact Lloyd passes (sums and counts accumulated batch by batch);
    4. one pass for the inertia of the final centres (the last Lloyd pass's own distances are those
       of the centres before its update). ``labels`` is None.

    The first pass goes on with the batches read for the head, so the default (steps 1 and 4) reads
    the stream once, as faiss's sampled fit plus its search: on 1,000,000 synthetic pixels the head of
    32,768 rows puts the centres within 0.1 % of the full fit's inertia. With ``read_ahead`` a thread
    reads each next batch while the pass clusters the last one, on one torch thread fewer (reading a
    file costs a core); without it, the stream is read in the caller's thread (a stream of views of a
    tensor in memory has nothing to read). Works on the device of the first batch; distances from the
    head's mean (as :func:`protolib.method.explain.kmeans.kmeans` on many points).
    """
    with ExitStack() as opened:  # every pass's stream is closed on the way out: after an error, its reader stops now
        def open_pass(desc):
            return opened.enter_context(closing(_checked(batches, desc, progress, ahead=read_ahead)))

        stream = open_pass("k-means head and first pass")
        sample, read = _head(stream, init_size)
        first = _head_then_rest(read, stream)  # the first pass goes on with the same read
        if init is None and len(sample) < k:
            raise ValueError(f"k={k} clusters need at least k points in the first init_size={init_size} rows")
        device, shift = sample.device, sample.mean(0, keepdim=True)
        centers = init.to(sample).clone() if init is not None else _head_fit(sample, k, init_runs or n_init, max_iter,
                                                                              tol, seed, chunk_size)
        if max_epochs > 0:  # the mini-batch epochs' stopping rule
            abs_tol = tol * mean_variance(sample - shift, sq_norms(sample - shift), torch.zeros_like(shift[0]))
        del sample

        def prepared(desc):
            nonlocal first
            source, first = first or open_pass(desc), None
            return (b.to(device=device, dtype=torch.float32) for b in source)

        counts, epoch = torch.zeros(k, dtype=torch.float64, device=device), 0
        with _a_core_for_the_reader(read_ahead and device.type == "cpu"):
            for epoch in range(1, max_epochs + 1):
                before = centers.clone()
                _minibatch_epoch(prepared(f"mini-batch epoch {epoch}"), centers, counts, shift, chunk_size)
                if ((centers - before).double() ** 2).sum().item() <= abs_tol:
                    break
            for r in range(refine):
                _, sums, n = _stream_pass(prepared(f"Lloyd pass {r + 1}"), centers, shift, chunk_size, sums=True)
                hit = n > 0
                centers[hit] = (sums[hit] / n[hit].unsqueeze(1)).float()
            inertia = _stream_pass(prepared("inertia pass"), centers, shift, chunk_size, sums=False)[0]
    return KMeansResult(centers, None, inertia, epoch + refine)


__all__ = ["BACKENDS", "cluster", "faiss_kmeans", "streaming_kmeans"]
