"""A mean and its 95 % interval over images, the way every table of the quality chapter reports."""

from __future__ import annotations

import math

import torch
from scipy.stats import t as student_t

from protolib.core import tables
from protolib.evaluation.verdict import Verdict, verdict


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


def above(a: torch.Tensor, b: torch.Tensor, claim: str = "a above b", level: float = 0.95) -> Verdict:
    """The verdict (:func:`protolib.evaluation.verdict.verdict`) on "``a`` above ``b``", paired over
    the same images: it holds when the two-sided ``level`` interval of ``a - b`` lies above 0 (a
    one-sided test at ``(1 - level) / 2``). Images where either value is NaN are left out in pairs."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if len(a) != len(b):
        raise ValueError(f"{claim}: {len(a)} values against {len(b)}, not the same images")
    keep = ~(a.isnan() | b.isnan())
    return verdict(a[keep].numpy(), b[keep].numpy(), claim, "greater", alpha=(1 - level) / 2, unit="images")


def markdown_table(rows: dict[str, dict[str, torch.Tensor]], digits: int = 3, first: str = "method") -> str:
    """A Markdown table with one row per key of ``rows`` and one column per metric, each cell the
    mean ± 95 % half-width over images (a float is printed as it is)."""
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    cell = lambda v: fmt(v, digits) if isinstance(v, torch.Tensor) and v.numel() > 1 else f"{float(v):.{digits}f}"  # noqa: E731
    return tables.markdown([first, *cols], [[name, *(cell(r[c]) if c in r else "" for c in cols)]
                                            for name, r in rows.items()])
