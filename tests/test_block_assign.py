"""Eq. 9 block by block (protolib.method.explain.block_assign) against eq. 9 on h-check itself."""

from __future__ import annotations

import pytest
import torch

from protolib.method.explain import block_assign
from protolib.method.explain.block_assign import nearest_prototypes
from protolib.method.explain.blocks import composite
from protolib.method.explain.kmeans import assign


def _blocks(seed: int = 0, n: int = 3) -> list[torch.Tensor]:
    """ReLU'd outputs of three blocks on 12 x 12, 6 x 6 and 3 x 3 grids (a ResNet's layer2-4 in small)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, s, s, generator=g).relu_() for d, s in ((8, 12), (16, 6), (32, 3))]


def _prototypes(h: torch.Tensor, k: int, seed: int = 1) -> torch.Tensor:
    """``k`` pixels of h-check, perturbed: prototypes near the data, as k-means finds them."""
    g = torch.Generator().manual_seed(seed)
    rows = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    picked = rows[torch.randperm(len(rows), generator=g)[:k]]
    return picked * (1 + 0.1 * torch.randn(picked.shape, generator=g))


@pytest.mark.parametrize("norm", ["pixel", "block"])
def test_each_pixel_goes_to_a_nearest_prototype_of_h_check(norm):
    acts = _blocks()
    h = composite(acts, norm=norm).double()
    protos = _prototypes(h.float(), 40)
    rows = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    dist = torch.cdist(rows, protos.double()) ** 2                       # (pixels, K) in float64
    seg = nearest_prototypes(acts, protos, norm=norm)
    assert seg.shape == (3, 12, 12)
    chosen = dist.gather(1, seg.flatten()[:, None])[:, 0]
    assert (chosen - dist.min(1).values).abs().max() < 1e-6            # a nearest one, to float rounding
    ref, _ = assign(rows.float(), protos)
    assert (seg.flatten() == ref).float().mean() > 0.99                   # the same one but on near-ties


def test_a_tie_goes_to_the_lowest_index_and_chunks_do_not_change_the_result(monkeypatch):
    acts = _blocks(n=4)
    h = composite(acts)
    protos = _prototypes(h, 10)
    twice = torch.cat([protos, protos])                                   # prototypes 10..19 copy 0..9
    whole = nearest_prototypes(acts, twice)
    assert whole.max() < 10
    monkeypatch.setattr(block_assign, "ROW_FLOATS", 1)                   # one image per chunk
    assert torch.equal(nearest_prototypes(acts, twice), whole)


def test_a_block_on_the_shared_grid_alone_is_eq_9_itself():
    acts = _blocks()[:1]
    h = composite(acts)
    protos = _prototypes(h, 12)
    rows = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    ref, _ = assign(rows, protos)
    assert torch.equal(nearest_prototypes(acts, protos).flatten(), ref)


def test_bad_inputs_are_refused():
    acts = _blocks()
    with pytest.raises(ValueError, match="sum to the prototypes' 50"):
        nearest_prototypes(acts, torch.zeros(4, 50))
    with pytest.raises(ValueError, match="norm must be one of"):
        nearest_prototypes(acts, torch.zeros(4, 56), norm="l1")
    acts[1][2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"block output holds NaN .* \(batch indices \[2\]\)"):
        nearest_prototypes(acts, torch.zeros(4, 56))


def test_copies_of_a_prototype_are_found_with_their_first_index():
    a, b, c = torch.eye(3)
    assert block_assign._distinct(torch.stack([a, b, c])) is None
    assert block_assign._distinct(torch.stack([a, b, a, c, b])).tolist() == [0, 1, 3]
