"""Alignment cosines on hand-made vectors with known cosines; accuracy helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protolib.method.metrics import (
    accuracy,
    alignment_cosines,
    neighbour_agreement,
    rescale_to_class_norm,
    train_test_accuracy,
)


def test_alignment_on_hand_made_vectors():
    # class 0 lies along e1 (and at 45 degrees), class 1 along e2; prototype of class 0 = e1,
    # prototype of class 1 = e1 + e2 (cos 1/sqrt2 with both).
    z = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [0.0, 0.5]])
    y = np.array([0, 0, 1, 1])
    P = np.array([[1.0, 0.0], [5.0, 5.0]])
    a = alignment_cosines(P, [0, 1], z, y)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(a.class_cos, [(1 + s) / 2, s])
    np.testing.assert_allclose(a.out_cos, [0.0, (s + 1) / 2])
    assert a.class_mean == pytest.approx(((1 + s) / 2 + s) / 2)
    assert a.out_mean == pytest.approx((s + 1) / 4)


def test_alignment_matches_brute_force_and_handles_several_prototypes_per_class():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(60, 5, generator=g), torch.arange(60) % 3
    P, labels = torch.randn(7, 5, generator=g), torch.tensor([0, 0, 1, 2, 2, 2, 1])
    cos = torch.nn.functional.cosine_similarity(P[:, None, :].double(), z[None].double(), dim=-1)  # (K, N)
    same = labels[:, None] == y[None]
    want_class = (cos * same).sum(1) / same.sum(1)
    want_out = (cos * ~same).sum(1) / (~same).sum(1)
    a = alignment_cosines(P, labels, z, y)
    np.testing.assert_allclose(a.class_cos, want_class.numpy(), atol=1e-12)
    np.testing.assert_allclose(a.out_cos, want_out.numpy(), atol=1e-12)
    assert a.class_mean == pytest.approx(want_class.mean().item())


def test_alignment_refuses_bad_input():
    z, y = np.eye(3), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="absent"):
        alignment_cosines(np.ones((1, 3)), [5], z, y)
    with pytest.raises(ValueError, match="two classes"):
        alignment_cosines(np.ones((1, 3)), [0], z, np.zeros(3))
    with pytest.raises(ValueError, match="share D"):
        alignment_cosines(np.ones((1, 2)), [0], z, y)


def test_rescale_to_class_norm():
    z = np.array([[3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])      # class 0 norms 5 and 10, class 1 norm 1
    out = rescale_to_class_norm(np.array([[0.0, 2.0], [1.0, 0.0]]), [0, 1], z, [0, 0, 1])
    np.testing.assert_allclose(out.numpy(), [[0.0, 7.5], [1.0, 0.0]])


def test_accuracy_helpers():
    assert accuracy([0, 1, 2, 2], np.array([0, 1, 1, 2])) == 0.75       # a fraction, not percent
    assert accuracy(torch.tensor([1, 1]), torch.tensor([1, 1])) == 1.0
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])
    r = train_test_accuracy(lambda z: (np.asarray(z) > 0).astype(int), [-1, 1], [0, 1], [2, -3], [1, 1])
    assert (r.train, r.test) == (1.0, 0.5)
    assert repr(r) == "TrainTest(train=100.0%, test=50.0%)"              # printed in percent


def test_neighbour_agreement_counts_own_class_neighbours():
    z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1, 1])
    # prototype of class 0 at 0.4 -> neighbours 0, 1, 2 (classes 0, 0, 1); class 1 at 10.6 -> 11, 10, 2
    share = neighbour_agreement(np.array([[0.4], [10.6]]), [0, 1], z, y, n_neighbours=3)
    np.testing.assert_allclose(share, [2 / 3, 1.0])
    with pytest.raises(ValueError, match="n_neighbours"):
        neighbour_agreement(np.zeros((1, 1)), [0], z, y, n_neighbours=6)
