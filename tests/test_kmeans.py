"""The torch k-means against scikit-learn's KMeans, and its edge cases."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import make_blobs

from protolib.explain.kmeans import assign, chunk_rows, kmeans


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
