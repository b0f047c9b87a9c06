"""The departures table is generated from the record's provenance and protolib.reproduce.paper."""

from __future__ import annotations

import pytest

from protolib import reproduce
from protolib.reproduce import departures


@pytest.fixture(scope="module")
def record():
    rows, missing = reproduce.read(["digits", "mnist", "birds"], 3, "quick", reproduce.record_dir("quick"),
                                   any_code=True, any_data=True)   # MNIST's files need not be here
    assert not missing
    return rows


def test_birds_disclose_five_prototypes_against_the_papers_ten(record):
    deps = {(d.setting, d.dataset): d for d in departures.departures(record)}
    k = deps[("prototypes per class", "birds")]
    assert (k.ours, k.paper, k.differs) == ("5", "10", True)
    assert k.cell() == "**5** · paper: 10"
    size = deps[("image size", "mnist")]
    assert (size.ours, size.paper, size.differs) == ("32 px", "32 px", False) and size.cell() == "32 px (as the paper)"
    assert deps[("backbone and init", "mnist")].ours == "resnet18, random init"
    assert deps[("runs and seeds", "birds")].ours == "3 runs, seeds 0, 1, 2"
    assert deps[("backbone epochs", "birds")].paper == "not stated"
    assert deps[("prototypes per class", "digits")].paper is None                   # no paper column


def test_markdown_has_a_row_per_setting_and_a_column_per_dataset(record):
    text = departures.markdown(record).splitlines()
    assert text[0] == "| setting | digits (paper: none) | mnist (paper: MNIST) | birds (paper: CUB200) |"
    assert len(text) == 2 + len(departures.SETTINGS)
    with pytest.raises(ValueError, match="no result rows"):
        departures.markdown([])
