"""Eq. 9 without building h-check: the nearest prototype of every pixel, block by block.

A prototype's squared distance to a pixel r of the composite features is
``||h_r||^2 - 2 h_r . c + ||c||^2``, and only ``||c||^2 - 2 h_r . c`` decides the nearest one.
h_r is the concatenation of each block's output, upsampled bilinearly to the shared grid and
normalised (eq. 7-8), so ``h_r . c`` is a sum over blocks of ``s_b(r) * (U_b (x_b c_b))(r)``: the
dot products of a block with its slice of the prototypes, computed at the block's own grid and
upsampled (bilinear upsampling is linear), times the pixel's normalisation scale
``s_b(r) = 1 / (D_b ||U_b x_b||_r)``. A deep block then costs the GEMMs of its own pixels, not of
the shared grid's: for B234 of a ResNet at 224 px, layer4's share shrinks 16-fold and layer3's
4-fold, and the assignment GEMMs of B234 a quarter of what they were (4x fewer FLOPs).

The scores equal those on h-check up to float rounding (a few units in the last place), so a
pixel whose two nearest prototypes are that close may go to the other one;
:meth:`protolib.method.explain.maps.ExplanationMaps.explain_features` assigns h-check itself.
"""

from __future__ import annotations

from typing import Sequence

import torch

from protolib.core.checks import check_finite_rows
from protolib.method.explain.blocks import NORMS, _size, upsample

ROW_FLOATS = 1 << 21  # scores held at once (8 MiB in float32): fastest of 2^19..2^24 here (B234, 2,000 prototypes)


def _scale(a: torch.Tensor, size: tuple[int, int], norm: str, eps: float) -> torch.Tensor:
    """s_b: 1 / (D_b ||u||) of the upsampled block u, per pixel (B, 1, H', W') or per image (B, 1, 1, 1)."""
    dims = (1,) if norm == "pixel" else (1, 2, 3)
    length = torch.linalg.vector_norm(upsample(a, size), dim=dims, keepdim=True).clamp_min(eps)
    return 1.0 / (a.shape[1] * length)


def _distinct(c: torch.Tensor) -> torch.Tensor | None:
    """Indices of the first copy of each distinct row of ``c``, ascending; ``None`` when no two rows
    are equal (checked on a float64 projection first, so the usual case costs one GEMV). Copies
    are scored once, so that a tie between them goes to the lowest index whatever the rounding of
    the kernels that score the columns."""
    key = c.double() @ torch.arange(1, c.shape[1] + 1, dtype=torch.float64, device=c.device).sqrt()
    if len(torch.unique(key)) == len(c):
        return None
    _, inverse = torch.unique(c, dim=0, return_inverse=True)
    index = torch.arange(len(c), device=c.device)
    first = torch.full((int(inverse.max()) + 1,), len(c), device=c.device).scatter_reduce_(0, inverse, index, "amin")
    return first.sort().values


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B * H * W, D), pixels in row-major order."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _scores(acts: Sequence[torch.Tensor], scales: Sequence[torch.Tensor], parts: Sequence[torch.Tensor],
            size: tuple[int, int]) -> torch.Tensor:
    """h_r . c for every pixel r of the images of ``acts`` (rows, pixels in row-major order) and prototype."""
    total = None
    for a, s, c in zip(acts, scales, parts):
        if tuple(a.shape[-2:]) == size:      # a block on the shared grid: scale its rows, then one GEMM
            p = (a * s).permute(0, 2, 3, 1).reshape(-1, a.shape[1]) @ c.T
            total = p if total is None else total.add_(p)
            continue
        n, _, hb, wb = a.shape
        p = (_rows(a) @ c.T).view(n, hb, wb, -1).permute(0, 3, 1, 2)   # (n, K, hb, wb), channels last
        p = upsample(p, size).permute(0, 2, 3, 1).reshape(-1, c.shape[0])  # (n * H' * W', K)
        s = _rows(s.expand(n, 1, *size))                                   # (n * H' * W', 1)
        total = p.mul_(s) if total is None else total.addcmul_(p, s)
    return total


@torch.no_grad()
def nearest_prototypes(acts: Sequence[torch.Tensor], prototypes: torch.Tensor, size: int | tuple[int, int] | None = None,
                       norm: str = "pixel", eps: float = 1e-12) -> torch.Tensor:
    """Segments (B, H', W'): the nearest of ``prototypes`` (K, sum_b D_b) to every pixel of the
    composite features of the block outputs ``acts`` [(B, D_b, H_b, W_b)], on the grid ``size``
    (default: the largest block grid), a tie going to the lowest index (as
    :func:`protolib.method.explain.kmeans.assign`)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    widths = [a.shape[1] for a in acts]
    if not acts or any(a.ndim != 4 or len(a) != len(acts[0]) for a in acts) or sum(widths) != prototypes.shape[1]:
        raise ValueError(f"need block outputs (B, D_b, H_b, W_b) whose D_b sum to the prototypes' "
                         f"{prototypes.shape[1]}, got {[tuple(a.shape) for a in acts]}")
    for a in acts:
        check_finite_rows("block output", a, "images")
    size = _size(size) if size is not None else max((tuple(a.shape[-2:]) for a in acts), key=lambda s: s[0] * s[1])
    acts = [a.float() for a in acts]
    c = prototypes.to(device=acts[0].device, dtype=torch.float32)
    keep = _distinct(c)
    c = c if keep is None else c[keep]
    half_sq = (c * c).sum(1) / 2
    parts = c.split(widths, dim=1)
    scales = [_scale(a, size, norm, eps) for a in acts]
    per = max(1, ROW_FLOATS // (size[0] * size[1] * len(c)))       # images per chunk
    out = []
    for i in range(0, len(acts[0]), per):
        scores = _scores([a[i:i + per] for a in acts], [s[i:i + per] for s in scales], parts, size)
        out.append(scores.sub_(half_sq).argmax(1))   # argmin of ||c||^2 - 2 h.c; argmax keeps the first
    labels = torch.cat(out)
    return (labels if keep is None else keep[labels]).view(len(acts[0]), *size)


__all__ = ["ROW_FLOATS", "nearest_prototypes"]
