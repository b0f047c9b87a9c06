"""The torch k-means against scikit-learn's KMeans, and its edge cases."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import make_blobs

from protolib.method.explain import kmeans as kmeans_module
from protolib.method.explain.kmeans import (
    FULL_PER_CENTRE,
    _pass,
    assign,
    chunk_rows,
    kmeans,
    ward_merge,
)
from protolib.method.explain.kmeans_ops import GEMM_COLUMNS, add_rows, padded_columns, thin_columns


@pytest.fixture(scope="module")
def blobs():
    x, _ = make_blobs(1500, n_features=12, centers=6, cluster_std=4.0, random_state=0)
    return x.astype(np.float32)


def test_same_initial_centres_give_scikit_learns_answer(blobs):
    init, _ = kmeans_plusplus(blobs, 6, random_state=1)
    ref = KMeans(6, init=init, n_init=1, random_state=0).fit(blobs)
    ours = kmeans(torch.from_numpy(blobs), 6, init=torch.from_numpy(init))
    assert np.array_equal(ours.labels.numpy(), ref.labels_)
    assert ours.n_iter == ref.n_iter_
    np.testing.assert_allclose(ours.centers.numpy(), ref.cluster_centers_, atol=1e-4)
    assert abs(ours.inertia / ref.inertia_ - 1) < 1e-5


@pytest.mark.parametrize("seed", [0, 1])
def test_inertia_within_one_percent_of_scikit_learn(seed):
    x = np.maximum(np.random.default_rng(seed).normal(size=(1200, 24)), 0).astype(np.float32)  # ReLU-like
    ref = KMeans(5, n_init=4, random_state=seed).fit(x)
    ours = kmeans(torch.from_numpy(x), 5, n_init=4, seed=seed)
    assert abs(ours.inertia / ref.inertia_ - 1) < 0.01
    # the inertia reported is that of the centres and labels returned
    recomputed = ((torch.from_numpy(x) - ours.centers[ours.labels]) ** 2).sum().item()
    assert ours.inertia == pytest.approx(recomputed, rel=1e-4)


def test_same_seed_same_numbers_and_global_rng_untouched(blobs):
    x = torch.from_numpy(blobs)
    state = torch.get_rng_state()
    a, b = kmeans(x, 6, n_init=2, seed=3), kmeans(x, 6, n_init=2, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.centers, b.centers) and torch.equal(a.labels, b.labels)
    c = kmeans(x, 6, n_init=1, seed=4, max_iter=1)
    d = kmeans(x, 6, n_init=1, seed=5, max_iter=1)
    assert not torch.equal(c.centers, d.centers)  # different seeds, different k-means++ draws


def test_empty_cluster_takes_the_farthest_point():
    x = torch.tensor([[0.0], [1.0], [10.0], [13.0]])
    init = torch.tensor([[0.5], [100.0], [11.0]])  # the middle centre attracts nobody
    ours = kmeans(x, 3, init=init)
    # step 1: labels (0, 0, 2, 2); 13 is farthest from its centre (distance^2 4), so it founds cluster 1
    assert ours.centers.flatten().tolist() == [0.5, 13.0, 10.0]
    assert ours.labels.tolist() == [0, 0, 2, 1] and ours.inertia == pytest.approx(0.5)
    ref = KMeans(3, init=init.numpy(), n_init=1).fit(x.numpy())
    np.testing.assert_allclose(ref.cluster_centers_.flatten(), [0.5, 13.0, 10.0])


def test_chunked_equals_unchunked(blobs):
    x = torch.from_numpy(blobs)
    whole = kmeans(x, 6, seed=0)
    parts = kmeans(x, 6, seed=0, chunk_size=97)
    assert torch.equal(whole.labels, parts.labels)
    torch.testing.assert_close(whole.centers, parts.centers, rtol=1e-5, atol=1e-5)
    lab, dist = assign(x, whole.centers, chunk_size=10)
    assert torch.equal(lab, whole.labels)
    assert dist.sum().item() == pytest.approx(whole.inertia, rel=1e-5)


def test_assign_breaks_ties_towards_the_lowest_index_and_keeps_dtype():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    centers = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    labels, dists = assign(x, centers)
    assert labels.tolist() == [0, 0] and dists.tolist() == [1.0, 1.0] and dists.dtype == torch.float64
    assert chunk_rows(2000, None) == (1 << 24) // 2000 and chunk_rows(5, 7) == 7


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="k=5"):
        kmeans(torch.zeros(3, 2), 5)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(torch.tensor([[0.0], [float("nan")]]), 1)
    with pytest.raises(ValueError, match="floating"):
        kmeans(torch.zeros(4, dtype=torch.long).view(2, 2), 1)
    with pytest.raises(ValueError, match="chunk_size"):
        assign(torch.zeros(2, 2), torch.zeros(1, 2), chunk_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(blobs):
    x = torch.from_numpy(blobs)
    cpu, gpu = kmeans(x, 6, seed=0), kmeans(x.cuda(), 6, seed=0)
    assert gpu.centers.device.type == "cuda" and torch.equal(cpu.labels, gpu.labels.cpu())


# --- many points: a fit on a seeded sample, then passes over all points ---------------------------
@pytest.fixture(scope="module")
def many_blobs():
    """8,000 points in 5 far-apart blobs (more than FULL_PER_CENTRE * 5 = 5,120: the sampled route)."""
    x, y = make_blobs(8000, n_features=16, centers=5, cluster_std=0.5, center_box=(-50, 50), random_state=0)
    x = x.astype(np.float32)
    means = np.stack([x[y == c].astype(np.float64).mean(0) for c in range(5)])
    return torch.from_numpy(x), torch.from_numpy(y), means


def test_many_points_recover_the_known_optimum(many_blobs):
    x, y, means = many_blobs
    assert len(x) > FULL_PER_CENTRE * 5
    res = kmeans(x, 5, seed=0)
    order = ((means[:, None] - res.centers.double().numpy()[None]) ** 2).sum(-1).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]
    # the full Lloyd pass makes every centre the mean of its blob, to float32 precision
    np.testing.assert_allclose(res.centers.double().numpy()[order], means, rtol=1e-6, atol=1e-6)
    assert len(set(zip(res.labels.tolist(), y.tolist()))) == 5  # the blobs' partition
    known = float(((x.double().numpy() - means[y.numpy()]) ** 2).sum())
    ref = KMeans(5, n_init=1, random_state=0).fit(x.numpy())
    # float32 distances |x - s|^2 + |c|^2 - 2 x.c lose ~1e-5 of the inertia here, as scikit-learn's do
    assert res.inertia == pytest.approx(known, rel=1e-4) and ref.inertia_ == pytest.approx(known, rel=1e-4)


def test_many_points_same_seed_same_numbers(many_blobs):
    x = many_blobs[0]
    a, b = kmeans(x, 5, seed=3, refine=0), kmeans(x, 5, seed=3, refine=0)
    assert torch.equal(a.centers, b.centers) and torch.equal(a.labels, b.labels) and a.inertia == b.inertia
    c = kmeans(x, 7, seed=4, refine=0, max_iter=1)
    assert not torch.equal(c.centers, kmeans(x, 7, seed=5, refine=0, max_iter=1).centers)


def test_full_pass_chunked_equals_unchunked_exactly(many_blobs):
    x = many_blobs[0]
    centers, shift = x[[1, 500, 4000]] - x[:100].mean(0), x[:100].mean(0, keepdim=True)
    whole = _pass(x, centers, shift, len(x), sums=True, dists=True)
    parts = _pass(x, centers, shift, 97, sums=True, dists=True)
    assert torch.equal(whole[0], parts[0]) and torch.equal(whole[1], parts[1]) and torch.equal(whole[3], parts[3])
    # the sums: float32 within a chunk, float64 across chunks: a few float32 roundings apart
    torch.testing.assert_close(whole[2], parts[2], rtol=1e-5, atol=0)
    # distances are |x - c|^2, labels the nearest centre
    d = ((x[:, None].double() - (centers + shift)[None].double()) ** 2).sum(-1)
    assert torch.equal(whole[0], d.argmin(1))
    # float32 on |x - s|^2 of about 1e4 here: absolute errors up to ~1e-6 of that
    torch.testing.assert_close(whole[1], d.min(1).values, rtol=1e-5, atol=1e-2)


def test_ward_merge_joins_the_cheapest_pair():
    centers = torch.tensor([[0.0], [1.0], [10.0], [30.0]])
    counts = torch.tensor([1, 3, 2, 5])
    # costs: (0,1) 3/4*1, (1,2) 6/5*81, ... : 0 and 1 merge into (0 + 3) / 4, then that and 10
    assert ward_merge(centers, counts, 3).flatten().tolist() == [0.75, 10.0, 30.0]
    assert ward_merge(centers, counts, 2).flatten().tolist() == [(3 + 20) / 6, 30.0]


def test_many_points_bad_input_is_refused(many_blobs):
    x = many_blobs[0]
    with pytest.raises(ValueError, match="sample"):
        kmeans(x, 5, sample=0)
    with pytest.raises(ValueError, match="refine"):
        kmeans(x, 5, refine=-1)
    bad = x.clone()
    bad[7000, 3] = float("nan")  # outside most samples: found by the full passes
    with pytest.raises(ValueError, match="NaN"):
        kmeans(bad, 5, seed=0)


def test_refining_on_a_larger_sample_keeps_the_blobs_and_labels_every_point(many_blobs, monkeypatch):
    """With fewer refining rows than points (here 2,000 of 8,000), the centres are the means of the
    refining sample's rows of each blob (within sampling error of the blob means), while the labels
    and the inertia are those of all points under these centres."""
    x, y, means = many_blobs
    monkeypatch.setattr(kmeans_module, "REFINE_PER_CENTRE", 400)
    res = kmeans(x, 5, seed=0)
    order = ((means[:, None] - res.centers.double().numpy()[None]) ** 2).sum(-1).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4] and len(res.labels) == len(x)
    assert len(set(zip(res.labels.tolist(), y.tolist()))) == 5
    err = np.abs(res.centers.double().numpy()[order] - means).max()
    assert 1e-6 < err < 0.1  # not the full means (std 0.5 over ~400 rows: ~0.025), but close to them
    d = ((x[:, None].double() - res.centers[None].double()) ** 2).sum(-1)  # every point, in float64
    assert torch.equal(d.argmin(1), res.labels)
    # float32 |x - s|^2 + |c|^2 - 2 x.c far from the origin, as in the test above: ~1e-5 of the inertia
    assert res.inertia == pytest.approx(float(d.min(1).values.sum()), rel=1e-4)
    known = float(((x.double().numpy() - means[y.numpy()]) ** 2).sum())
    assert known < res.inertia < known * (1 + 5 / 400)  # about 1/400 of the inertia per centre at most


def test_padded_columns_adds_zero_columns_up_to_a_register_width():
    w = torch.randn(7, 11)
    wide = padded_columns(w)
    assert wide.shape == (7, GEMM_COLUMNS) and wide.T.is_contiguous()
    assert torch.equal(wide[:, :11], w) and not wide[:, 11:].any()
    exact = torch.randn(7, 2 * GEMM_COLUMNS)
    assert padded_columns(exact) is exact  # already a multiple: untouched
    x = torch.randn(50, 7)
    torch.testing.assert_close((x @ wide)[:, :11], x @ w)


def test_thin_columns_pads_a_lloyd_steps_gemm_only_where_it_pays():
    for m, wide in ((10, 16), (25, 32), (4, 4), (20, 20), (40, 40)):
        w, bias = torch.randn(7, m), torch.randn(m)
        w2, b2 = thin_columns(w, bias)
        assert w2.shape == (7, wide) and b2.shape == (wide,)
        assert torch.equal(w2[:, :m], w) and torch.equal(b2[:m], bias) and not w2[:, m:].any() and not b2[m:].any()
        if wide == m:
            assert w2 is w and b2 is bias


def test_add_rows_sums_each_labels_rows_in_float64():
    rows = torch.arange(12.0).view(6, 2)
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    sums = torch.ones(3, 2, dtype=torch.float64)
    add_rows(sums, labels, rows)
    expected = 1 + torch.stack([rows[labels == j].sum(0) for j in range(3)]).double()
    assert sums.dtype == torch.float64 and torch.equal(sums, expected)
