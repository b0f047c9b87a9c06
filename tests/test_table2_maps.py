"""The book's explanation maps of a backbone and Table 2's map rows, on a one-epoch digits backbone."""

import pytest
import torch

from protolib.core import backbone, config, train
from protolib.method.explain import maps_multi
from protolib.reproduce import table2_maps

RECIPE = train.Recipe(epochs=1)


@pytest.fixture
def digits():
    return backbone.load("digits", recipe=RECIPE, progress=False)


def test_profile_maps_are_fit_maps_with_the_profiles_settings_and_share_its_cache(digits):
    fitted, cached = table2_maps.profile_maps(digits, blocks=("B4",), progress=False)
    assert not cached
    ex = fitted["B4"]
    prof = config.get_profile("quick")
    assert (ex.k_per_class, ex.max_images_per_class, ex.norm) == (prof.k_per_class("digits"), 30, "pixel")
    again, cached = table2_maps.fit_maps(digits.trained, digits.train_set, prof.k_per_class("digits"), 30, seed=0,
                                       blocks=("B4",), progress=False)
    assert cached and torch.equal(again["B4"].prototypes_, ex.prototypes_)     # one cache entry
    block, cached = table2_maps.profile_maps(digits, blocks=("B4",), norm="block", progress=False)
    assert not cached and block["B4"].norm == "block"                           # another setting, another entry


def test_table2_row_scores_the_cnn_and_both_block_sets(digits):
    row, title = table2_maps.table2_row("digits", recipe=RECIPE)
    assert title == digits.test_set.title
    assert set(row) == {(m, s) for m in ("CNN", "B4", "B234") for s in ("train", "test")}
    # the same forward passes; the checkpoint's metadata keeps percent, the row is a fraction
    assert 100 * row[("CNN", "test")] == pytest.approx(digits.meta["test_accuracy"], abs=1e-4)
    fitted, cached = table2_maps.profile_maps(digits, progress=False)
    assert cached                                                                # table2_row fitted them
    found, _ = maps_multi.explain_dataset_all({"B234": fitted["B234"]}, digits.test_set)
    y = torch.as_tensor(digits.test_set.targets)
    assert row[("B234", "test")] == pytest.approx((found["B234"].prediction == y).float().mean().item())
    assert all(0.0 <= v <= 1.0 for v in row.values())
