"""Figures: per-class subsampling, the Figure 2 panels and the gallery draw without error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from protolib.core import data
from protolib.method.kmex import KMExClassifier, inspect_prototypes
from protolib.viz import (
    SMALL_DATA,
    PrototypeUMAP,
    euclidean_distances,
    plot_prototype_umap,
    prototype_gallery,
    prototype_umap,
    subsample_per_class,
)


def test_subsample_per_class_is_seeded_and_capped():
    y = np.array([0] * 10 + [1] * 3 + [2] * 5)
    idx = subsample_per_class(y, 4, classes=[0, 1], seed=0)
    assert np.bincount(y[idx], minlength=3).tolist() == [4, 3, 0]
    np.testing.assert_array_equal(idx, subsample_per_class(y, 4, classes=[0, 1], seed=0))
    np.testing.assert_array_equal(subsample_per_class(y, None, classes=[2]), np.arange(13, 18))


def test_plot_prototype_umap_draws_both_panels():
    rng = np.random.default_rng(0)
    res = PrototypeUMAP(rng.normal(size=(20, 2)), np.arange(20) % 2, rng.normal(size=(6, 2)), np.arange(6) % 2,
                        np.array([0, 1]), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)),
                        rng.normal(size=(4, 2)), np.array([0, 0, 1, 1]), None)
    fig = plot_prototype_umap(res, class_names=["a", "b"], title="t")
    left, right = fig.axes[:2]
    assert len(left.collections) == 2 + 2 * 2 and len(right.collections) == 2 + 4


def test_gallery_shows_nearest_images_of_the_class():
    ds = data.load("digits", "test")
    X = ds.images.flatten(1).numpy().astype(float)
    clf = KMExClassifier(2, n_init=1, random_state=0).fit(X, ds.targets.numpy())
    ins = inspect_prototypes(clf, X, ds.targets.numpy(), n_neighbours=3)
    fig = prototype_gallery(ds, ins, clf.prototype_labels_, rows=[0, 1, 2])
    assert len(fig.axes) == 9
    assert all(ds.targets[i] == clf.prototype_labels_[k] for k in (0, 1, 2) for i in ins.neighbours[k])


@pytest.mark.slow
def test_prototype_umap_is_seeded_and_places_prototypes():
    g = torch.Generator().manual_seed(0)
    centres = 8 * torch.randn(3, 16, generator=g)
    z = centres.repeat_interleave(40, 0) + torch.randn(120, 16, generator=g)
    y = torch.arange(3).repeat_interleave(40)
    clf = KMExClassifier(2, n_init=2, random_state=0).fit(z.numpy(), y.numpy())
    args = (z[::2], y[::2], z[1::2], y[1::2], centres, clf.prototypes_, clf.prototype_labels_)
    a, b = prototype_umap(*args, random_state=0), prototype_umap(*args, random_state=0)
    np.testing.assert_array_equal(a.train_xy, b.train_xy)
    np.testing.assert_array_equal(a.kmex_xy, b.kmex_xy)
    assert a.kmex_xy.shape == (6, 2) and a.cnn_raw_xy.shape == a.cnn_scaled_xy.shape == (3, 2)
    # a KMEx prototype lands closer to its own class's points than to any other class's, in 2-d
    for xy, c in zip(a.kmex_xy, a.kmex_labels):
        d = [np.linalg.norm(a.train_xy[a.y_train == k] - xy, axis=1).min() for k in range(3)]
        assert np.argmin(d) == c


def test_euclidean_distances_match_scipy_with_exact_zeros_on_the_diagonal():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    a, b = 10 + rng.normal(size=(50, 32)).astype(np.float32), rng.normal(size=(7, 32)).astype(np.float32)
    np.testing.assert_allclose(euclidean_distances(a), cdist(a.astype(float), a.astype(float)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(euclidean_distances(b, a), cdist(b.astype(float), a.astype(float)), rtol=1e-10)
    assert (np.diag(euclidean_distances(a)) == 0).all() and euclidean_distances(b, a).dtype == np.float64
    # In float64 the matrix product leaves up to 1e-6 on the diagonal (17 of these 50 rows): set to 0.
    c = 10 + rng.normal(size=(50, 32))
    np.testing.assert_allclose(euclidean_distances(c), cdist(c, c), rtol=1e-10, atol=1e-10)
    assert (np.diag(euclidean_distances(c)) == 0).all()


@pytest.mark.slow
def test_prototype_umap_builds_the_graph_umap_builds_from_the_points(monkeypatch):
    """Below SMALL_DATA points the UMAP gets the distances precomputed: the same neighbour graph, in
    the same fuzzy memberships (to float32 rounding), as umap's own Euclidean path on the points. From
    SMALL_DATA points on, umap gets the points themselves."""
    import protolib.viz as viz
    from protolib.viz.umap_kernels import load_umap

    g = torch.Generator().manual_seed(1)
    z = (4 * torch.randn(4, 16, generator=g)).repeat_interleave(50, 0) + torch.randn(200, 16, generator=g)
    y = torch.arange(4).repeat_interleave(50)
    clf = KMExClassifier(1, n_init=1, random_state=0).fit(z.numpy(), y.numpy())
    res = prototype_umap(z, y, z[:0], y[:0], torch.eye(4, 16), clf.prototypes_, clf.prototype_labels_)
    assert res.reducer.metric == "precomputed" and len(res.train_xy) < SMALL_DATA
    own = load_umap().UMAP(random_state=0).fit(z.numpy())
    mine, theirs = res.reducer.graph_.tocsr(), own.graph_.tocsr()
    np.testing.assert_array_equal((mine != 0).toarray(), (theirs != 0).toarray())
    np.testing.assert_allclose(mine.toarray(), theirs.toarray(), atol=1e-4)
    monkeypatch.setattr(viz, "SMALL_DATA", len(z))  # as if these 200 points were many
    large = prototype_umap(z, y, z[:0], y[:0], torch.eye(4, 16), clf.prototypes_, clf.prototype_labels_)
    assert large.reducer.metric == "euclidean"
    np.testing.assert_array_equal(large.reducer.graph_.toarray(), theirs.toarray())
    np.testing.assert_array_equal(large.train_xy, own.embedding_)


def _smooth_knn_dist_run() -> dict:
    """Run one umap kernel through load_umap: its cache counts and its output."""
    from protolib.viz.umap_kernels import load_umap

    umap = load_umap()
    d = np.sort(np.random.default_rng(0).random((50, 5)).astype(np.float32), axis=1)
    sigma, _ = umap.umap_.smooth_knn_dist(d, 5.0)
    s = umap.umap_.smooth_knn_dist.stats
    return {"hits": sum(s.cache_hits.values()), "misses": sum(s.cache_misses.values()), "sigma": sigma.tolist()}


def test_umap_kernels_compiled_once_are_loaded_by_the_next_process():
    """load_umap turns on numba's disk cache: a new process loads the kernel that this one compiled (or
    loaded, when an earlier process of this environment compiled it), and computes the same numbers."""
    here = _smooth_knn_dist_run()
    script = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_viz; " \
             "print(json.dumps(test_viz._smooth_knn_dist_run()))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert here["hits"] + here["misses"] >= 1          # this process compiled or loaded it, with the cache on
    assert (there["misses"], there["hits"]) == (0, 1)   # read from disk, not compiled again
    assert there["sigma"] == here["sigma"]
