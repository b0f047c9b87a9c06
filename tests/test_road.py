"""ROAD wiring: ties broken to the nominal share, and scores on a hand-built model whose answer is known."""

import numpy as np
import pytest
import torch
from torch import nn

from protolib.evaluation import road

pytest.importorskip("pytorch_grad_cam")


def four_levels(size: int = 32) -> torch.Tensor:
    """A piecewise-constant map: four horizontal bands of a quarter of the pixels each."""
    return (torch.arange(size).view(-1, 1) // (size // 4)).float().expand(size, size)[None]


def test_untie_keeps_order_and_breaks_ties():
    m = torch.tensor([[[0.0, 1.0], [1.0, 0.5]]])
    r = road.untie(m, seed=0)
    assert sorted(r.flatten().tolist()) == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-7)  # float32 ranks
    assert r[0, 0, 0] == 0.0 and r[0, 1, 1] == pytest.approx(1 / 3)  # the distinct values keep their rank
    assert np.array_equal(r, road.untie(m, seed=0))  # seeded


@pytest.mark.parametrize("p", [20, 30, 40, 60, 80, 90])
def test_removed_share_is_nominal_on_a_piecewise_constant_map(p):
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )

    kept = {}
    capture = lambda key: lambda img, mask: kept.__setitem__(key, mask.clone()) or img  # noqa: E731
    cam = torch.from_numpy(road.untie(four_levels(), seed=3)[0])
    RemoveMostRelevantFirst(p, capture("morf"))(torch.zeros(3, 32, 32), cam)
    RemoveLeastRelevantFirst(p, capture("lerf"))(torch.zeros(3, 32, 32), cam)
    n = 32 * 32
    for key in ("morf", "lerf"):
        removed = n - int(kept[key].sum())
        assert abs(removed - (100 - p) / 100 * n) <= 1, (key, removed)
    # MoRF removes the top bands first: at p = 50 or less all of band 3 is gone, only band 3 at 75 %+
    morf_removed = kept["morf"] == 0
    level = four_levels()[0]
    assert (level[morf_removed] >= level[~morf_removed].max()).all()
    # without untying, the strict threshold of grad-cam removes a tied band whole: more than nominal
    raw = {}
    RemoveMostRelevantFirst(p, lambda img, mask: raw.__setitem__("m", mask) or img)(torch.zeros(3, 32, 32), level)
    if p % 25:
        assert n - int(raw["m"].sum()) > (100 - p) / 100 * n + 1


class RedMean(nn.Module):
    """GAP + linear: logit 0 = 10 x mean of the red channel, logit 1 = 0."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[10.0, 0, 0], [0, 0, 0]]))

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def red_square(b: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose red channel is 1 on an 8x8 square (the only evidence of class 0) and 0 elsewhere."""
    x = torch.zeros(b, 3, size, size)
    x[:, 0, 4:12, 4:12] = 1.0
    return x, (x[:, 0] > 0).float()


def test_road_on_a_model_whose_answer_is_known():
    model, (x, relevant) = RedMean(), red_square()
    t = torch.zeros(2, dtype=torch.long)
    clean = 10 * 64 / 1024  # the logit before any removal
    good = road.road(model, x, relevant, t, probability=False)
    # MoRF removes the square first (every percentile removes >= 20 % > 6.25 % of the pixels):
    # the imputation fills it from its zero neighbours, so the logit falls to about 0.
    assert good["ROAD MoRF"].numpy() == pytest.approx([-clean] * 2, abs=0.02)
    assert (good["ROAD LeRF"] > -0.02).all()  # removing background never lowers the red mean
    assert (good["ROAD combined"] > 0.3).all()
    flat = road.road(model, x, torch.ones_like(relevant), t, probability=False)
    assert flat["ROAD combined"].abs().max() < 0.1 * good["ROAD combined"].min()  # a map that says nothing: ~0
    worst = road.road(model, x, 1 - relevant, t, probability=False)
    assert (worst["ROAD combined"] < -0.3).all()  # the inverted map: LeRF now removes the square
    again = road.road(model, x, relevant, t, probability=False)
    assert all(torch.equal(good[k], again[k]) for k in good)  # same seed, same scores


def test_road_is_grad_cams_road_combined():
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, (x, relevant) = RedMean(), red_square()
    ours = road.road(model, x, relevant, torch.zeros(2, dtype=torch.long), seed=5)
    torch.manual_seed(5)
    theirs = ROADCombined(percentiles=list(road.PERCENTILES))(
        x, road.untie(relevant, 5), [ClassifierOutputSoftmaxTarget(0)] * 2, model)
    assert ours["ROAD combined"].numpy() == pytest.approx(theirs.astype(np.float64), abs=1e-6)


def test_road_refuses_mismatched_batches():
    with pytest.raises(ValueError, match=r"\(2, 3, 32, 32\) and \(3, 32, 32\)"):
        road.road(RedMean(), torch.zeros(2, 3, 32, 32), torch.zeros(3, 32, 32), torch.zeros(2, dtype=torch.long))
