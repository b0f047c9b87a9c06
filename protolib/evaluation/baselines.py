"""Maps that know nothing about the model, for every table: random values on a grid (per pixel
or per cell, seeded) and a centred Gaussian (objects tend to sit in the middle of the picture)."""

from __future__ import annotations

import torch


def random_map(n: int, grid: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Uniform random maps (n, *grid), seeded: grid (H, W) of the image is per pixel, a coarser grid per cell."""
    return torch.rand(n, *grid, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()


def centred_gaussian(n: int, size: tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """The same map (n, *size) for every image: a Gaussian at the centre, ``sigma`` in image widths."""
    h, w = size
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h - 0.5
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w - 0.5
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
    return g.float().expand(n, h, w).clone()


__all__ = ["random_map", "centred_gaussian"]
