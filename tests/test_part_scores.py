"""Part-alignment scores against scikit-learn, and representative patches."""

import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from tiny_nets import TinyImages, TinyNet

from protolib.method.explain import maps
from protolib.method.explain import part_scores as ps
from protolib.method.explain.patches import patch_box, representative_patches


def test_nmi_and_purity_match_scikit_learn_and_hand_values():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 6, (500,), generator=g), torch.randint(0, 4, (500,), generator=g)
    b[:250] = a[:250] % 4  # some dependence
    table = ps.contingency(a, b)
    assert table.sum() == 500 and table.shape == (6, 4)
    assert ps.nmi(table) == pytest.approx(normalized_mutual_info_score(b.numpy(), a.numpy()), abs=1e-10)
    assert ps.ari(table) == pytest.approx(adjusted_rand_score(b.numpy(), a.numpy()), abs=1e-10)
    assert ps.ari(torch.tensor([[4, 0], [0, 4]])) == pytest.approx(1.0)
    hand = torch.tensor([[3, 1], [0, 2]])  # segment 0: 3 of part 0, 1 of part 1; segment 1: 2 of part 1
    assert ps.purity(hand) == pytest.approx(5 / 6)
    assert abs(ps.purity(torch.tensor([[2, 1, 0], [0, 1, 2]])) - 2 / 3) < 1e-15   # float64, not float32
    assert ps.nmi(torch.tensor([[4, 0], [0, 4]])) == pytest.approx(1.0)
    assert ps.nmi(torch.tensor([[2, 2], [2, 2]])) == pytest.approx(0.0)


def test_part_alignment_of_perfect_and_grid_segmentations():
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[:, :, 4:] = 1            # right half: part 1 (bird), left half background
    masks[1, 4:, 4:] = 2           # second image: bottom right is part 2
    perfect = masks[:, ::2, ::2].long() + 10  # segments on a 4x4 grid, ids shifted: only labels matter
    score = ps.part_alignment(perfect, masks)
    assert score.nmi == pytest.approx(1.0) and score.purity == 1.0 and score.purity_bird == 1.0
    assert score.image_nmi_bird == pytest.approx(1.0) and score.segments_used == 3 and score.ari == pytest.approx(1.0)
    assert score.nmi_figure_ground < 1.0 and score.segments_per_image == 2.5  # image 1 has two bird segments
    grid = ps.grid_segments(2, (2, 2))
    assert grid.shape == (2, 2, 2) and grid[1].tolist() == [[0, 1], [2, 3]]
    base = ps.part_alignment(grid, masks)
    # cell 3 (bottom right) holds part 1 in image 0 and part 2 in image 1: pooled over images it is impure
    assert base.purity == pytest.approx((32 + 32 + 32 + 16) / 128) and base.purity_bird == pytest.approx(48 / 64)
    # per image on bird pixels: image 0 has one part cut in two cells (NMI 0), image 1 is cut exactly (1)
    assert base.image_nmi_bird == pytest.approx(0.5) and base.nmi < score.nmi
    with pytest.raises(ValueError):
        ps.part_alignment(grid[:1], masks)
    seg = torch.arange(5).view(5, 1, 1).expand(5, 2, 2)
    mixed = ps.shuffled(seg, seed=0)
    assert sorted(mixed[:, 0, 0].tolist()) == list(range(5)) and (mixed[:, 0, 0] != torch.arange(5)).all()


def test_patch_boxes():
    assert patch_box(0, 0, (8, 8), (64, 64)) == (0, 0, 16, 16)        # shifted inside the image
    assert patch_box(3, 5, (8, 8), (64, 64)) == (20, 36, 36, 52)      # centre (28, 44), side 16
    assert patch_box(1, 1, (2, 2), (64, 64)) == (0, 0, 64, 64)        # B4 at 64 px: the whole image
    assert patch_box(2, 0, (4, 4), (32, 32), scale=1.0) == (16, 0, 24, 8)
    with pytest.raises(ValueError):
        patch_box(8, 0, (8, 8), (64, 64))


def test_representative_patches_of_the_tiny_network():
    ds = TinyImages()
    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, progress=False).fit(ds)
    p = representative_patches(ex, ds, scale=2.0)
    assert p.crops.shape == (4, 2, 2, 2) and p.prototype_classes.tolist() == [0, 0, 1, 1]
    for k in range(4):
        i, r, c = ex.patch_index_[k].tolist()
        # the crop's pixel vector at the prototype's pixel, normalised, is the prototype itself
        pix = ds[i][0][:, r, c]
        assert torch.allclose(pix / (2 * pix.norm()), ex.prototypes_[k], atol=1e-6)
        t, l, b, rr = p.boxes[k].tolist()
        assert t <= r < b and l <= c < rr and torch.equal(p.crops[k], ds[i][0][:, t:b, l:rr])
    with pytest.raises(RuntimeError):
        representative_patches(maps.ExplanationMaps(TinyNet(), progress=False).fit_features(
            [torch.randn(10, 2), torch.randn(10, 2)]), ds)
