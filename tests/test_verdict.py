"""The one verdict function: known answers on constructed differences, p-values against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from protolib.evaluation.verdict import paired, runs_needed, verdict


def test_one_pair_is_undecided_never_holds():
    v = verdict({0: 90.0}, {0: 90.0}, "same", margin=1.0)
    assert v.outcome == "undecided at n = 1 runs" and not v.holds and "no spread" in v.reason
    assert v.n == 1 and math.isnan(v.sd) and v.needed is None and "no interval" in v.text()


def test_zero_variance_decides_exactly():
    a, b = {0: 91.0, 1: 92.0, 2: 93.0}, {0: 90.5, 1: 91.5, 2: 92.5}           # gap 0.5 in every run
    v = verdict(a, b, "equal", margin=1.0)
    assert v.holds and v.sd == 0.0 and v.low == v.high == 0.5 and v.p == 0.0
    assert verdict(a, b, "a above b", "greater").holds
    assert verdict(a, b, "a below b", "less").outcome == "fails"


def test_a_gap_exactly_at_the_margin_is_not_equal():
    flat = verdict([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], "at margin, no spread", margin=1.0)
    assert flat.outcome == "fails" and flat.p == 1.0                  # |gap| = m for sure: not equivalent
    spread = verdict([0.5, 1.0, 1.5], [0.0, 0.0, 0.0], "at margin", margin=1.0)
    assert spread.mean == 1.0 and spread.outcome == "undecided at n = 3 runs"
    assert spread.p == pytest.approx(0.5, abs=1e-15) and spread.needed is None   # on the edge: no n decides


def test_clear_hold_clear_fail_and_undecided():
    hold = verdict([0.1, -0.1, 0.05, -0.05, 0.0], [0.0] * 5, "tiny gap", margin=1.0)
    assert hold.holds and hold.low > -1 and hold.high < 1
    fail = verdict([5.0, 5.5, 4.5, 5.2], [0.0] * 4, "big gap", margin=1.0)
    assert fail.outcome == "fails" and fail.low >= 1.0
    und = verdict({0: 0.3, 1: -1.5, 2: 0.6}, {0: 0.0, 1: 0.0, 2: 0.0}, "noisy", margin=1.0)
    assert und.outcome == "undecided at n = 3 runs" and und.needed is not None and und.needed > 3
    assert "runs at this spread would decide it" in und.reason
    # the interval by hand: mean -0.2, sd sqrt(1.29); with 2 degrees of freedom the t quantile
    # has a closed form, t(q) = (2q - 1) / sqrt(2 q (1 - q)): t(0.95) = 0.9 / sqrt(0.095)
    sd = math.sqrt(((0.5) ** 2 + (1.3) ** 2 + (0.8) ** 2) / 2)
    half = 0.9 / math.sqrt(0.095) * sd / math.sqrt(3)
    assert und.mean == pytest.approx(-0.2, abs=1e-15) and und.sd == pytest.approx(sd, abs=1e-14)
    assert (und.low, und.high) == (pytest.approx(-0.2 - half, abs=1e-12), pytest.approx(-0.2 + half, abs=1e-12))
    assert "90% interval [" in und.text() and "n = 3 runs" in und.text()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tost_and_one_sided_p_values_match_scipy(seed):
    d = np.random.default_rng(seed).normal(0.3, 0.8, size=7)
    m = 1.0
    v = verdict(d, np.zeros(7), "eq", margin=m)
    lower = stats.ttest_1samp(d, -m, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, m, alternative="less").pvalue
    assert v.p == pytest.approx(max(lower, upper), rel=1e-12, abs=1e-15)
    assert verdict(d, np.zeros(7), "gt", "greater").p == pytest.approx(
        stats.ttest_1samp(d, 0.0, alternative="greater").pvalue, rel=1e-12)
    assert verdict(d, np.zeros(7), "lt", "less").p == pytest.approx(
        stats.ttest_1samp(d, 0.0, alternative="less").pvalue, rel=1e-12)
    assert v.holds == (v.p < 0.05)                                       # TOST <-> 90 % interval inside


def test_power_estimate_decides_at_the_n_it_names():
    mean, sd = 0.4, 0.5
    n = runs_needed(mean, sd, "equal", margin=1.0)
    t = stats.t.ppf(0.95, [n - 2, n - 1])
    assert t[1] * sd / math.sqrt(n) < 0.6 <= t[0] * sd / math.sqrt(n - 1)     # n decides, n - 1 does not
    assert runs_needed(0.0, 1.0, "greater") is None and runs_needed(1.0, float("nan"), "less") is None


def test_bad_input_names_what_is_wrong():
    with pytest.raises(ValueError, match="positive margin, got 0"):
        verdict([1, 2], [1, 2], "x", margin=0)
    with pytest.raises(ValueError, match="positive margin, got None"):
        verdict([1, 2], [1, 2], "x")
    with pytest.raises(ValueError, match=r"KMEx \(seeds \[0, 1\]\) and CNN \(seeds \[2\]\) share no seed"):
        verdict({0: 1.0, 1: 2.0}, {2: 1.0}, "x", "greater", names=("KMEx", "CNN"))
    with pytest.raises(ValueError, match="has 3 values and b 2"):
        paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="kind must be one of"):
        verdict([1, 2], [1, 2], "x", "bigger")


def test_pairs_by_seed_only_where_both_rows_have_one():
    keys, d = paired({0: 3.0, 1: 5.0, 4: 9.0}, {1: 1.0, 0: 1.0, 7: 0.0})
    assert keys == (0, 1) and d.tolist() == [2.0, 4.0]


def test_per_image_comparisons_are_the_same_verdict_paired_over_images():
    import torch

    from protolib.evaluation.stats import above

    a = torch.tensor([2.0, 3.0, 4.0, float("nan")])
    b = torch.tensor([1.0, 2.0, 3.1, 0.0])
    v = above(a, b, "a above b")                                   # the NaN image leaves in its pair
    assert v.n == 3 and v.unit == "images" and v.holds
    same = verdict(a[:3].numpy(), b[:3].numpy(), "a above b", "greater", alpha=0.025, unit="images")
    assert (v.low, v.high, v.p) == (same.low, same.high, same.p)
    assert "95% interval" in v.text() and "n = 3 images" in v.text()
    with pytest.raises(ValueError, match="4 values against 3"):
        above(a, b[:3])
