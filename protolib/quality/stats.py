"""A mean and its 95 % interval over images, the way every table of the quality chapter reports."""

from __future__ import annotations

import math

import torch
from scipy.stats import t as student_t


def mean_ci(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the Student-t interval at ``level``) of a 1-D tensor, NaNs dropped."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    v = v[~v.isnan()]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return v.item(), float("nan")
    half = student_t.ppf(0.5 + level / 2, len(v) - 1) * v.std().item() / math.sqrt(len(v))
    return v.mean().item(), float(half)


def fmt(values: torch.Tensor, digits: int = 3) -> str:
    """``mean ± half-width`` of :func:`mean_ci` as text."""
    m, h = mean_ci(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"
