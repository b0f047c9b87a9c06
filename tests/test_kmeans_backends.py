"""The k-means backends (exact, faiss, streaming, Dask) against scikit-learn and against each other."""

import threading
import time

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from tiny_nets import TinyImages, TinyNet

from protolib.method.explain import maps, maps_cache
from protolib.method.explain.kmeans import kmeans
from protolib.method.explain.kmeans_backends import BACKENDS, _read_ahead, cluster, streaming_kmeans


@pytest.fixture(scope="module")
def blobs():
    """Five far-apart blobs: the optimum puts every centre on the mean of one blob."""
    x, y = make_blobs(4000, n_features=16, centers=5, cluster_std=0.5, center_box=(-50, 50), random_state=0)
    means = np.stack([x[y == c].mean(0) for c in range(5)])
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y), means


def _matched(centers, means):
    """Rows of ``centers`` reordered to follow ``means`` (nearest centre of each mean)."""
    c = np.asarray(centers, dtype=np.float64)
    order = ((means[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    assert len(set(order.tolist())) == len(means), "two blobs share one centre"
    return c[order]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_finds_the_blob_means_as_scikit_learn_does(blobs, backend):
    x, y, means = blobs
    ref = KMeans(5, n_init=3, random_state=0).fit(x.numpy())
    np.testing.assert_allclose(_matched(ref.cluster_centers_, means), means, atol=1e-4)
    # streaming: a fit on the first 1,000 rows, then one Lloyd pass over the stream gives the exact means
    opts = {"batch_rows": 500, "init_size": 1000, "refine": 1} if backend == "streaming" else {}
    res = cluster(x, 5, backend, n_init=3, seed=0, **opts)
    np.testing.assert_allclose(_matched(res.centers.numpy(), means), means, atol=1e-4)
    known = float(((x.double().numpy() - means[y.numpy()]) ** 2).sum())  # the blobs' own inertia
    # float32 distances as |x|^2 - 2 x.c + |c|^2 (all backends and scikit-learn) lose ~1e-5 here
    assert ref.inertia_ == pytest.approx(known, rel=1e-4)
    assert res.inertia == pytest.approx(known, rel=1e-4)
    if res.labels is not None:  # the same partition as the blobs
        assert len(set(zip(res.labels.tolist(), y.tolist()))) == 5


def test_same_seed_same_start_in_every_backend():
    x = torch.from_numpy(np.maximum(np.random.default_rng(0).normal(size=(1500, 20)), 0).astype(np.float32))
    exact = cluster(x, 6, "exact", seed=7, n_init=2)
    faiss = cluster(x, 6, "faiss", seed=7, n_init=2)
    # same k-means++ centres, same Lloyd steps: the same labels and iterations, float-close centres
    assert torch.equal(exact.labels, faiss.labels) and exact.n_iter == faiss.n_iter
    torch.testing.assert_close(exact.centers, faiss.centers, rtol=0, atol=1e-4)
    for backend in BACKENDS:
        a, b = cluster(x, 6, backend, seed=3), cluster(x, 6, backend, seed=3)
        assert torch.equal(a.centers, b.centers) and a.inertia == b.inertia
        assert not torch.equal(a.centers, cluster(x, 6, backend, seed=4, max_iter=1).centers)


def test_faiss_subsampling_is_off_unless_asked():
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(3000, 8)).astype(np.float32))
    init = x[:4].clone()
    full, exact = cluster(x, 4, "faiss", init=init), kmeans(x, 4, init=init)
    torch.testing.assert_close(full.centers, exact.centers, rtol=0, atol=1e-4)
    sub = cluster(x, 4, "faiss", init=init, max_iter=1, max_points_per_centroid=50)  # 200 of 3000 points
    assert not torch.allclose(sub.centers, kmeans(x, 4, init=init, max_iter=1).centers, atol=1e-3)


def test_streaming_reads_the_stream_batch_by_batch_within_tolerance_of_exact():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=4, size=(8, 12))

    def batches():  # 20 batches of 500 points, generated again on every pass
        for i in range(20):
            g = np.random.default_rng([2, i])
            yield torch.from_numpy((centres[g.integers(8, size=500)] + g.normal(size=(500, 12))).astype(np.float32))

    full = torch.cat(list(batches()))
    exact = kmeans(full, 8, n_init=2, seed=0)
    stream = streaming_kmeans(batches, 8, n_init=2, seed=0, init_size=2000)
    assert stream.labels is None and abs(stream.inertia / exact.inertia - 1) < 0.01
    # its inertia is the exact one of its centres
    dist = ((full[:, None] - stream.centers[None]) ** 2).sum(-1).min(1).values
    assert stream.inertia == pytest.approx(dist.double().sum().item(), rel=1e-5)
    with pytest.raises(ValueError, match="no points"):
        streaming_kmeans(lambda: iter(()), 2)
    with pytest.raises(ValueError, match="batch 0"):
        streaming_kmeans(lambda: iter([torch.zeros(3, 2, dtype=torch.long)]), 2)


def test_read_ahead_gives_every_item_in_order_raises_the_readers_error_and_stops_when_closed():
    pulled = []

    def items(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise OSError(f"disk gone at item {i}")
            pulled.append(i)
            yield i

    assert list(_read_ahead(items(50))) == list(range(50))
    failing = _read_ahead(items(10, fail_at=3))
    assert [next(failing) for _ in range(3)] == [0, 1, 2]   # the items before the failure,
    with pytest.raises(OSError, match="item 3"):             # then the reader's own error
        next(failing)
    pulled.clear()
    ahead = _read_ahead(items(1000))
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()   # the reader stops: at most the item after the caller's was read
    assert len(pulled) <= 4
    finished, lead = [0], []

    def watched():  # how far the reader is ahead of the caller when it reads item i
        for i in range(30):
            lead.append(i - finished[0])
            yield i

    for i in _read_ahead(watched()):
        deadline = time.monotonic() + 2
        while len(lead) < min(i + 2, 30) and time.monotonic() < deadline:  # the reader reads i + 1 meanwhile
            time.sleep(0.001)
        finished[0] = i + 1
    assert lead == [0] + [1] * 29   # two items alive: the caller's and the next one, read ahead
    assert not any(t.name == "protolib-stream-read-ahead" for t in threading.enumerate())


def test_the_default_stream_fit_reads_the_stream_once_ahead_of_the_pass():
    """The head's batches start the inertia pass (one read of the stream), each read by the reader thread;
    with a Lloyd pass, that pass goes on from the head and the inertia pass reads the stream again."""
    reads, x = [], torch.from_numpy(np.random.default_rng(3).normal(size=(4000, 6)).astype(np.float32))

    def batches():
        for i, b in enumerate(x.split(500)):
            reads.append((i, threading.current_thread() is threading.main_thread()))
            yield b

    once = streaming_kmeans(batches, 3, seed=0, init_size=1000)
    assert reads == [(i, False) for i in range(8)]
    dist = ((x[:, None] - once.centers[None]) ** 2).sum(-1).min(1).values
    assert once.inertia == pytest.approx(dist.double().sum().item(), rel=1e-5)
    reads.clear()
    refined = streaming_kmeans(batches, 3, seed=0, init_size=1000, refine=1)
    assert reads == [(i, False) for i in range(8)] * 2
    lloyd = kmeans(x, 3, init=once.centers, max_iter=1)   # one Lloyd step from the head's centres
    torch.testing.assert_close(refined.centers, lloyd.centers, rtol=0, atol=1e-5)


def test_an_error_after_the_head_stops_the_reader_at_once():
    """The stream is open when the head turns out too small: its reader thread stops with the error, not
    when the traceback that holds the stream (a notebook keeps the last one) is let go."""
    def batches():
        yield from torch.randn(5000, 4).split(2)

    with pytest.raises(ValueError, match="k=3 clusters need at least k points") as failure:
        streaming_kmeans(batches, 3, seed=0, init_size=2)
    assert failure.traceback   # still held here, with the function's frame
    assert not any(t.name == "protolib-stream-read-ahead" for t in threading.enumerate())


def test_bad_backend_and_options_are_refused():
    x = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="unknown k-means backend 'gpu'"):
        cluster(x, 2, "gpu")
    with pytest.raises(TypeError, match="no options"):
        cluster(x, 2, "exact", batch_rows=3)
    with pytest.raises(ValueError, match="kmeans_backend"):
        maps.ExplanationMaps(TinyNet(), kmeans_backend="gpu").fit(TinyImages())


@pytest.mark.parametrize("backend", ["faiss", "streaming"])
def test_explanation_maps_with_a_backend_find_the_hand_known_prototypes(backend):
    kw = dict(blocks=["layer2"], k_per_class=2, progress=False)
    exact = maps.ExplanationMaps(TinyNet(), **kw).fit(TinyImages())
    other = maps.ExplanationMaps(TinyNet(), kmeans_backend=backend, **kw).fit(TinyImages())
    # the pixels of each class take two values (its two parts): both backends find them
    torch.testing.assert_close(other.prototypes_, exact.prototypes_, rtol=0, atol=1e-6)
    assert "kmeans_backend" not in maps_cache.settings(exact)  # caches fitted before backends stay valid
    assert maps_cache.settings(other)["kmeans_backend"] == backend


# --- Dask: one local cluster of two single-threaded worker processes for the module ---------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with distributed.Client(lc) as c:
            yield c


def test_dask_engine_gives_the_exact_backends_centres_from_the_same_start(client):
    import dask.array as da

    from protolib.method.explain.kmeans_dask import dask_kmeans

    x = torch.from_numpy(np.maximum(np.random.default_rng(3).normal(size=(3000, 24)), 0).astype(np.float32))
    init = x[[5, 500, 1000, 2000, 2999]].clone()
    exact = kmeans(x, 5, init=init)
    dist = dask_kmeans(da.from_array(x.numpy(), chunks=(700, 24)), 5, init=init, client=client)
    assert torch.equal(dist.labels, exact.labels) and dist.n_iter == exact.n_iter
    torch.testing.assert_close(dist.centers, exact.centers, rtol=0, atol=1e-5)
    assert dist.inertia == pytest.approx(exact.inertia, rel=1e-6)
    # its own seeding: k-means++ with the same generator on all rows (N <= init_size)
    seeded = dask_kmeans(da.from_array(x.numpy(), chunks=(700, 24)), 5, seed=1, client=client)
    assert seeded.inertia == pytest.approx(kmeans(x, 5, seed=1).inertia, rel=1e-5)


def test_dask_feature_extraction_runs_the_forward_passes_as_tasks(client):
    from protolib.method.explain.kmeans_dask import class_pixels

    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2", "layer4"], progress=False)
    data = TinyImages()
    arr = class_pixels(ex, data, [0, 2, 4], images_per_task=2)
    assert arr.shape == (3 * 64, 5) and arr.numblocks == (2, 1)
    h = ex.features(data.images[[0, 2, 4]])
    expected = h.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    np.testing.assert_allclose(client.compute(arr).result(), expected, atol=1e-7)
