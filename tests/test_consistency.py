"""Consistency and stability (Huang et al.) on constructed maps and masks whose answer is known exactly."""

import pytest
import torch

from protolib.evaluation import consistency as cs

P = 3  # part ids: 0 background, 1 "head" (top-left block), 2 "body" (bottom-right block)


def masks(b: int, size: int = 20) -> torch.Tensor:
    m = torch.zeros(b, size, size, dtype=torch.long)
    m[:, 0:6, 0:6] = 1
    m[:, 10:20, 10:20] = 2
    return m


def peak_at(b: int, row: int, col: int, size: int = 20) -> torch.Tensor:
    """Maps with one bright pixel at (row, col) and a faint ramp elsewhere (so the maximum is unique)."""
    m = torch.linspace(0, 0.01, size * size).view(size, size).expand(b, size, size).clone()
    m[:, row, col] = 1.0
    return m


def test_top_region_and_dominant_part():
    m = torch.zeros(2, 20, 20)
    m[0, 0:6, 0:6] = 1.0   # image 0 points at the head block exactly (36 px = 9 % of 400)
    m[1, 10:20, 10:20] = 1.0
    region = cs.top_region(m, (20, 20), area=36 / 400)
    assert region.sum((1, 2)).tolist() == [36, 36]
    assert cs.dominant_part(region, masks(2), P).tolist() == [1, 2]
    assert cs.dominant_part(torch.zeros(1, 20, 20, dtype=torch.bool), masks(1), P).tolist() == [-1]
    corner = torch.zeros(2, 20, 20, dtype=torch.bool)
    corner[0, 0:10, 0:10] = True   # 36 head px, 64 background px
    corner[1, 0:10, 10:20] = True  # background only
    assert cs.dominant_part(corner, masks(2), P).tolist() == [0, 0]
    assert cs.dominant_part(corner, masks(2), P, background=False).tolist() == [1, -1]


def test_a_blind_map_is_consistent_on_background_but_not_on_the_bird():
    m = torch.zeros(4, 20, 20)
    m[:, 0:7, 12:19] = 1.0  # always the top-right corner: background in every image
    s = cs.class_map_scores(m, m, masks(4), torch.zeros(4, dtype=torch.long), P)
    assert s["consistency exact"] == 100.0 and s["consistency exact bird"] == 0.0


def test_centroids_and_box_hits():
    c = cs.centroids(masks(1), P)[0]
    assert c[1].tolist() == [2.5, 2.5] and c[2].tolist() == [14.5, 14.5]
    half = 3 / 20  # a box of +-3 px
    hits = cs.box_hits(peak_at(2, 3, 3), masks(2), P, half)
    assert hits.tolist() == [[False, True, False]] * 2  # head centroid (2.5, 2.5) within 3 px of (3, 3)
    hits = cs.box_hits(peak_at(1, 19, 15), masks(1), P, half)
    assert hits.tolist() == [[False, False, False]]  # body centroid (14.5, 14.5) is 4.5 rows away


def test_consistency_counts_only_visible_parts():
    # group 0: 5 images, head hit in 4 (80 %): consistent; group 1: body hit in 3 of 5: not
    hits = torch.zeros(10, P, dtype=torch.bool)
    hits[0:4, 1] = True
    hits[5:8, 2] = True
    visible = torch.ones(10, P, dtype=torch.bool)
    groups = torch.tensor([0] * 5 + [1] * 5)
    r = cs.consistency(hits, visible, groups)
    assert r.best_share.tolist() == [0.8, 0.6] and r.best_part.tolist() == [1, 2]
    assert r.consistent.tolist() == [True, False] and r.score == 50.0
    visible[8:10, 2] = False  # the body is hidden in the two images that missed it: 3 of 3
    assert cs.consistency(hits, visible, groups).score == 100.0


def test_stability_share_of_unchanged_rows():
    hits = torch.zeros(6, P, dtype=torch.bool)
    hits[:, 1] = True
    noisy = hits.clone()
    noisy[0, 1], noisy[0, 2] = False, True  # one image of group 0 moved to the body
    score, per = cs.stability(hits, noisy, torch.tensor([0, 0, 0, 0, 1, 1]))
    assert per.tolist() == [0.75, 1.0] and score == pytest.approx(87.5)


def test_class_map_scores_known_answer():
    # class 0 always points at the head; class 1 at the head in 2 of 4 images and at the body in 2
    size = 20
    m = torch.zeros(8, size, size)
    m[0:4, 0:6, 0:6] = 1.0
    m[4:6, 0:6, 0:6] = 1.0
    m[6:8, 10:20, 10:20] = 1.0
    m = m + torch.linspace(0, 1e-3, size * size).view(size, size)  # a unique first maximum in each block
    labels = torch.tensor([0] * 4 + [1] * 4)
    s = cs.class_map_scores(m, m, masks(8), labels, P)
    assert s == {"consistency exact": 50.0, "stability exact": 100.0, "consistency exact bird": 50.0,
                 "stability exact bird": 100.0, "consistency literal": 50.0, "stability literal": 100.0}
    noisy = m.clone()
    noisy[0] = m[6]  # image 0 of class 0 now points at the body
    s = cs.class_map_scores(m, noisy, masks(8), labels, P)
    assert s["stability exact"] == pytest.approx(100 * (0.75 + 1.0) / 2)


def test_segment_scores_known_answer():
    # K = 2 per class, 2 classes, 4 images each: prototype 0 of a class covers all but the body
    # block (264 background px, 36 head px: background dominates), prototype 1 the body block
    labels = torch.tensor([0] * 4 + [1] * 4)
    base = (labels * 2).view(-1, 1, 1)
    seg = base.expand(8, 20, 20).clone()
    seg[:, 10:20, 10:20] = base + 1
    seg[7, 10:20, 10:20] = 2      # image 7 (class 1): prototype 2 takes the body,
    seg[7, 0:10, 10:20] = 3       # prototype 3 a background block: its dominant part is background there
    s = cs.segment_scores(seg, seg, masks(8), labels, 2, P)
    # prototypes 0, 1, 2 hold background, body, background in 4/4 images; prototype 3 body in 3/4: 75 %
    assert s == {"consistency segments": 75.0, "stability segments": 100.0}
    noisy = seg.clone()
    noisy[0, 10:20, 10:20] = 0    # prototype 1 vanishes from image 0 under noise: that row is left out
    noisy[4, 10:20, 10:20] = 3    # prototype 3 keeps the body of image 4: unchanged
    noisy[5, 0:10, 0:10] = 3      # prototype 3 also takes the head corner of image 5: body still dominates
    s = cs.segment_scores(seg, noisy, masks(8), labels, 2, P)
    assert s["stability segments"] == 100.0
    noisy[6] = 3                  # image 6: prototypes 2 and 3 swap places (body <-> background)
    noisy[6, 10:20, 10:20] = 2
    s = cs.segment_scores(seg, noisy, masks(8), labels, 2, P)
    assert s["stability segments"] == pytest.approx(100 * (1 + 1 + 0.75 + 0.75) / 4)


def test_noise_is_seeded_and_clipped():
    x = torch.zeros(2, 3, 8, 8)
    a, b = cs.add_noise(x, seed=1), cs.add_noise(x, seed=1)
    assert torch.equal(a, b) and a.abs().max() <= 0.25 and not torch.equal(a, cs.add_noise(x, seed=2))
    assert 0.15 < a.std() < 0.2  # clipping at 1.25 sigma trims the spread of N(0, 0.2^2)


def test_masks_of_another_size_are_refused():
    with pytest.raises(ValueError, match=r"masks \(2, 16, 16\) do not match 20 x 20 images"):
        cs.check_masks(torch.zeros(2, 16, 16), (20, 20))
    with pytest.raises(ValueError, match=r"masks \(2, 16, 16\) do not match 20 x 20 images"):
        cs.dominant_part(torch.zeros(2, 20, 20, dtype=torch.bool), torch.zeros(2, 16, 16), P)
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        cs.dominant_part(torch.zeros(2, 20, 20, dtype=torch.bool), masks(3), P)
