"""Where the importance falls, against ground-truth part masks (the synthetic birds).

Maps are brought to the mask size (nearest: a cell is a cell) and rescaled to [0, 1] within
each image (eq. 11 is positive almost everywhere; only its relative values say where it
points). A map that ignores the image puts on each region about the region's share of pixels.
"""

from __future__ import annotations

from typing import Sequence

import torch

from protolib.evaluation.faithfulness import to_size
from protolib.evaluation.sanity import minmax


def shares(maps: torch.Tensor, masks: torch.Tensor, n_parts: int) -> torch.Tensor:
    """Share of each image's importance on each part id: maps (B, h, w), masks (B, H, W) -> (B, n_parts).

    A constant map spreads evenly (every pixel 1), so it gets each part's share of area.
    """
    m = minmax(to_size(maps.cpu(), tuple(masks.shape[-2:])))
    m = torch.where(m.flatten(1).amax(1).view(-1, 1, 1) > 0, m, torch.ones_like(m))
    onehot = torch.nn.functional.one_hot(masks.cpu().long(), n_parts).double()  # (B, H, W, P)
    return torch.einsum("bhw,bhwp->bp", m, onehot) / m.sum((1, 2)).clamp_min(1e-300)[:, None]


def area_shares(masks: torch.Tensor, n_parts: int) -> torch.Tensor:
    """Share of pixels of each part id, per image (B, n_parts): what a map blind to the image scores."""
    return torch.nn.functional.one_hot(masks.cpu().long(), n_parts).double().mean((1, 2))


def pointing_game(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Hit (B,) of the pointing game: the share of the map's maximal pixels that lie in ``regions``
    (B, H, W) bool. A unique maximum scores 0 or 1; a tied maximum (a coarse cell) scores the
    chance that a pixel drawn among the maximal ones falls inside."""
    m = to_size(maps.cpu(), tuple(regions.shape[-2:])).double()
    top = m == m.flatten(1).amax(1).view(-1, 1, 1)
    return (top & regions.cpu().bool()).sum((1, 2)).double() / top.sum((1, 2)).double()


def deciding_share(part_shares: torch.Tensor, deciding: Sequence[Sequence[int]]) -> torch.Tensor:
    """Share of the bird's importance on the deciding part(s) of each image: part_shares (B, P)
    from :func:`shares` (column 0 the background), ``deciding[i]`` the part ids of image i -> (B,)."""
    if len(deciding) != len(part_shares):
        raise ValueError(f"{len(deciding)} deciding-part lists for {len(part_shares)} images")
    bird = part_shares[:, 1:].sum(1).clamp_min(1e-300)
    on = torch.stack([part_shares[i, list(d)].sum() for i, d in enumerate(deciding)])
    return on / bird


__all__ = ["shares", "area_shares", "pointing_game", "deciding_share"]
