"""Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps").

The layers of a trained network are re-initialised from the top (the classifier) down, one
more at each stage, and the map of each stage is compared with the map of the trained network:
Spearman rank correlation and SSIM, per image. A map that stays the same while the weights
that produced the prediction are destroyed does not explain the model: it fails the check.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from scipy.stats import rankdata
from torch import nn

from protolib.core.gap import gap_split
from protolib.method.explain.blocks import resolve_blocks


def flat(maps: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
    """Whether each map (B, ...) is constant up to float rounding (range <= rtol x its largest |value|)."""
    f = maps.flatten(1).double()
    lo, hi = f.min(1).values, f.max(1).values
    return (hi - lo) <= rtol * torch.maximum(hi.abs(), lo.abs())


def _undefined(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairs where a map is flat and the two differ: no order or structure to compare."""
    same = (a.flatten(1) == b.flatten(1)).all(1).cpu()
    return (flat(a).cpu() | flat(b).cpu()) & ~same


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation (average ranks for ties) of each pair of maps (B, ...) -> (B,).

    Two identical maps give 1 even when constant; otherwise a flat map (:func:`flat`) has no
    ranking and gives NaN (left out of means by :func:`protolib.evaluation.stats.mean_ci`).
    """
    out = []
    for u, v in zip(a.flatten(1).double().cpu().numpy(), b.flatten(1).double().cpu().numpy()):
        if (u == v).all():
            out.append(1.0)
            continue
        ru, rv = rankdata(u), rankdata(v)
        ru, rv = ru - ru.mean(), rv - rv.mean()
        den = (ru @ ru) ** 0.5 * (rv @ rv) ** 0.5
        out.append(float(ru @ rv / den) if den > 0 else float("nan"))
    rho = torch.tensor(out, dtype=torch.float64)
    return rho.masked_fill(_undefined(a, b), float("nan"))


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Each map (B, ...) rescaled to [0, 1] within itself; a constant map becomes all zeros."""
    flat = maps.flatten(1).double()
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).where(hi > lo, torch.ones_like(hi))).view_as(maps)


def ssim(a: torch.Tensor, b: torch.Tensor, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Structural similarity of min-max rescaled maps (B, ...) -> (B,), over the whole map as one
    window (the maps here have 1 to 64 cells, too few for sliding windows); NaN where
    :func:`spearman` is undefined."""
    x, y = minmax(a).flatten(1), minmax(b).flatten(1)
    mx, my = x.mean(1), y.mean(1)
    vx, vy = x.var(1, unbiased=False), y.var(1, unbiased=False)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(1)
    out = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return out.cpu().masked_fill(_undefined(a, b), float("nan"))


def randomised(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose modules ``layers`` (dotted names) and everything inside them are
    re-initialised (``reset_parameters``; batch-norm statistics reset too), seeded."""
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            for m in out.get_submodule(name).modules():
                for fn in ("reset_parameters", "reset_running_stats"):
                    if hasattr(m, fn):
                        getattr(m, fn)()
    return out.eval()


def top_down(model: nn.Module, blocks: str = "B234") -> tuple[str, ...]:
    """The layers a cascade randomises, in order: the classifier of the GAP + linear ``model``, then
    the stages of ``blocks`` from the deepest up (``("fc", "layer4", "layer3", "layer2")`` on a
    ResNet)."""
    return (gap_split(model).head_name, *reversed(resolve_blocks(blocks, model)))


def cascade(model: nn.Module, top_down: Sequence[str], explain: Callable[[nn.Module], dict[str, torch.Tensor]],
            seed: int = 0) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Run ``explain(network) -> {method: maps (B, h, w)}`` on the trained model and after
    re-initialising ``top_down[:k]`` for k = 1 .. len; returns
    {stage (last layer randomised): {method: (spearman (B,), ssim (B,))}}."""
    if not top_down:
        raise ValueError("top_down must name at least one layer")
    original = explain(model)
    out = {}
    for k in range(1, len(top_down) + 1):
        maps = explain(randomised(model, top_down[:k], seed))
        out[top_down[k - 1]] = {m: (spearman(original[m], maps[m]), ssim(original[m], maps[m])) for m in original}
    return out


__all__ = ["flat", "spearman", "minmax", "ssim", "randomised", "top_down", "cascade"]
