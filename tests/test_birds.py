"""Synthetic birds: determinism, masks against drawn colours and geometry, splits, twin classes."""

import numpy as np
import pytest
import torch

from protolib.core import data
from protolib.core.data import birds
from protolib.core.data.birds import render as D
from protolib.core.data.birds.species import (
    ATTRIBUTES,
    DECIDING,
    attribute_index,
    make_species,
    part_id,
)


def _attrs(species, classes):
    return torch.from_numpy(species.table[classes]).long()


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = birds.BirdImages.generate(num_classes=4, image_size=32, n_per_class=70, seed=3)  # 280 > one chunk
    b = birds.BirdImages.generate(num_classes=4, image_size=32, n_per_class=70, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.targets, b.targets)
    c = birds.BirdImages.generate(num_classes=4, image_size=32, n_per_class=70, seed=4)
    t = birds.BirdImages.generate(num_classes=4, image_size=32, n_per_class=70, seed=3, split="test")
    assert not torch.equal(a.images, c.images) and not torch.equal(a.images, t.images)


def test_masks_carry_the_part_colours_before_blending():
    species = make_species(20, 0)
    g = torch.Generator().manual_seed(0)
    d = D.draw(_attrs(species, list(range(20)) * 2), 40, g, occlusion=0.5, noise=0.0)
    expected = (d.colours * 255).round()  # (B, P+1, 3)
    pattern = (d.pattern * 255).round()
    image = d.image.permute(0, 2, 3, 1).float()  # (B, H, W, 3)
    for p in range(1, 8):
        b, y, x = torch.nonzero(d.mask == p, as_tuple=True)
        assert len(b) > 0
        own = (image[b, y, x] == expected[b, p]).all(1)
        if p == part_id("wing"):
            own |= (image[b, y, x] == pattern[b]).all(1)
        assert own.all(), f"part {p}: {(~own).sum()} pixels off their colour"
    assert torch.equal(d.image.permute(0, 2, 3, 1).float()[d.mask > 0], (d.fg.permute(0, 2, 3, 1) * 255).round()[d.mask > 0])
    assert d.occluded.any() and (~d.occluded).any()
    covered = d.mask.flatten(1).gt(0).sum(1)
    assert covered[d.occluded].float().mean() < covered[~d.occluded].float().mean()  # branches hide parts


def test_masks_follow_the_geometry_of_a_centred_bird():
    species = make_species(20, 0)
    c = next(c for c in range(20) if species.value(c, "beak_shape") == "needle")
    g = torch.Generator().manual_seed(1)
    size = 96  # 40 px per unit
    d = D.draw(_attrs(species, [c] * 8), size, g, occlusion=0.0, jitter=0.0)
    unit, cx, cy = size / D.UNITS_PER_IMAGE, size / 2, size / 2 + 0.05 * size
    for i in range(8):
        flip = 1 if d.mask[i, int(cy - 0.39 * unit), int(cx + 1.0 * unit)] == part_id("beak") else -1
        at = lambda u, v: int(d.mask[i, int(cy + v * unit), int(cx + flip * u * unit)])  # noqa: E731
        assert at(0.2, 0.2) == part_id("body") and at(-0.1, -0.1) == part_id("wing") and at(0.5, -0.3) == part_id("head")
        assert at(0.70, -0.44) == part_id("eye") and at(1.0, -0.39) == part_id("beak")
        assert at(0.1, 0.6) == part_id("legs") and at(0.0, -0.75) == 0 and at(-1.0, -0.6) == 0


def test_every_class_in_both_splits_through_the_registry():
    train = data.load("birds", "train", n_train=3, n_test=2)
    test = data.load("birds", "test", n_train=3, n_test=2)
    assert (len(train), len(test)) == (60, 40)
    assert torch.bincount(train.targets, minlength=20).tolist() == [3] * 20
    assert torch.bincount(test.targets, minlength=20).tolist() == [2] * 20
    x, y = test[5]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y == 5
    assert test.masks.shape == (40, 64, 64) and test.masks.dtype == torch.uint8
    assert test.attributes.shape == (40, len(ATTRIBUTES))
    assert torch.equal(test.attributes[5], test.class_attributes[5])
    s = test.sample(5)
    assert s.nearest_class == 4 and s.deciding_parts == test.deciding_parts(5) and torch.equal(s.mask, test.masks[5])
    assert "seed 0" in test.title and "test split" in test.title
    assert data.load("birds", "train", augment=True, n_train=1, n_test=1)[0][0].shape == (3, 64, 64)


def test_twins_differ_in_exactly_one_deciding_attribute():
    species = make_species(20, 0)
    pairs = species.pairs()
    assert len(pairs) == 10 and [(c, d) for c, d, _ in pairs] == [(2 * k, 2 * k + 1) for k in range(10)]
    assert {a for _, _, a in pairs} == set(DECIDING)
    for c, d, attribute in pairs:
        assert species.differing_attributes(c, d) == [attribute]
        parts = list(ATTRIBUTES[attribute_index(attribute)].parts)
        assert species.deciding_parts(c) == species.deciding_parts(d) == parts and len(parts) == 1
    dist = (species.table[:, None] != species.table[None]).sum(-1)
    twin = np.arange(20) ^ 1
    others = ~np.eye(20, dtype=bool) & (np.arange(20)[None, :] != twin[:, None])
    assert dist[others].min() >= 3 and (species.twin == twin).all()


def test_twin_images_differ_only_inside_the_deciding_part():
    species = make_species(20, 0)
    for c, d, attribute in species.pairs():
        images, masks = [], []
        for cls in (c, d):
            drawing = D.draw(_attrs(species, [cls] * 8), 32, torch.Generator().manual_seed(7))
            images.append(drawing.image)
            masks.append(drawing.mask)
        pid = part_id(species.deciding_parts(c)[0])
        deciding = (masks[0] == pid) | (masks[1] == pid)
        changed = (images[0] != images[1]).any(1)
        assert changed.any(), attribute
        assert not (changed & ~deciding).any(), f"{attribute}: pixels changed outside the {pid} part"
        assert torch.equal(masks[0][~deciding], masks[1][~deciding])


def test_odd_class_count_and_species_seed():
    species = make_species(5, 0)
    assert len(species.pairs()) == 2 and species.distance(4, int(species.twin[4])) >= 2
    assert species.deciding_parts(4)  # the parts where it differs from its nearest class
    assert not np.array_equal(make_species(20, 1).table, make_species(20, 0).table)
    assert np.array_equal(make_species(20, 1).table, make_species(20, 1).table)


def test_cached_split_is_reused(tmp_path):
    first = data.load("birds", "test", n_test=2, cache=True)
    files = list((tmp_path / "cache" / "data").glob("birds-test-*.pt"))
    assert len(files) == 1
    again = data.load("birds", "test", n_test=2, cache=True)
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)


def test_bad_arguments_are_clear():
    species = make_species(4, 0)
    with pytest.raises(ValueError, match="split must be"):
        birds.generate(species, 2, split="val")
    with pytest.raises(ValueError, match="n_per_class >= 1"):
        birds.generate(species, 0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_species(1)
    with pytest.raises(ValueError, match="unknown part"):
        part_id("antenna")
