"""Deletion and insertion curves (the RISE protocol of Petsiuk et al. 2018) and their areas.

Pixels are taken in decreasing order of importance (ties in a random order from a seeded
generator, so a coarse map is not favoured by raster order). Deletion replaces them, in
``steps`` equal steps, by a baseline image; insertion starts from the baseline and puts them
back. The score is the softmax probability of each image's class in ``targets`` (``score="prob"``) or
its logit.
A faithful map makes deletion fall fast (small area) and insertion rise fast (large area).
The area is the trapezoid rule on a [0, 1] axis of removed (inserted) fraction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF


def to_size(maps: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Maps (B, h, w) to (B, *size); ``nearest`` keeps a cell a cell (the way the book shows maps)."""
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, h, w), got {tuple(maps.shape)}")
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    kw = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(maps[:, None].float(), size=size, mode=mode, **kw)[:, 0]


def baseline_image(x: torch.Tensor, kind: str = "blur", sigma: float = 5.0) -> torch.Tensor:
    """What removed pixels become: ``"mean"`` (zeros: the dataset mean of normalised images) or
    ``"blur"`` (a Gaussian blur of ``x`` with ``sigma`` pixels, kernel 4 sigma + 1, at most the image)."""
    if kind == "mean":
        return torch.zeros_like(x)
    if kind == "blur":
        k = min(int(4 * sigma) | 1, (min(x.shape[-2:]) - 1) | 1)
        return TF.gaussian_blur(x, [k, k], [sigma, sigma])
    raise ValueError(f"baseline must be 'mean' or 'blur', got {kind!r}")


def ranking(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixel indices (B, H*W) in decreasing importance; ties in a seeded random order."""
    flat = maps.flatten(1)
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(flat.shape[1], generator=g) for _ in range(len(flat))]).to(flat.device)
    order = torch.argsort(-flat.gather(1, perm), dim=1, stable=True)
    return perm.gather(1, order)


@torch.no_grad()
def curve(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, targets: int | torch.Tensor, mode: str = "deletion",
          steps: int = 16, baseline: str | torch.Tensor = "blur", score: str = "prob", seed: int = 0) -> torch.Tensor:
    """Scores (B, steps + 1) as pixels of ``x`` (B, C, H, W) are deleted or inserted in the order of
    ``maps`` (B, H, W) (use :func:`to_size` first), scored on the classes ``targets`` (one class
    index per image, or one for all); column 0 is the untouched start (the image for deletion, the
    baseline for insertion), column ``steps`` the end. One batched forward pass per step, on the
    model's device."""
    if mode not in ("deletion", "insertion") or score not in ("prob", "logit"):
        raise ValueError(f"mode must be deletion/insertion and score prob/logit, got {mode!r}, {score!r}")
    if maps.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"maps {tuple(maps.shape)} must be (B, H, W) of x {tuple(x.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = next(model.parameters()).device
    x = x.to(device)
    base = baseline_image(x, baseline) if isinstance(baseline, str) else baseline.to(device).expand_as(x)
    order = ranking(maps.to(device), seed)
    b, n = order.shape
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=device).expand(b, n))
    targets = torch.as_tensor(targets, device=device).long().expand(b)
    out = []
    for s in range(steps + 1):
        moved = (rank < round(s * n / steps)).view(b, 1, *x.shape[-2:])
        img = torch.where(moved, base, x) if mode == "deletion" else torch.where(moved, x, base)
        logits = model(img)
        vals = logits.softmax(1) if score == "prob" else logits
        out.append(vals[torch.arange(b, device=device), targets])
    return torch.stack(out, 1).cpu()


def area(scores: torch.Tensor) -> torch.Tensor:
    """Area under curves (B, steps + 1) on [0, 1], trapezoid rule: (B,)."""
    s = scores.double()
    return ((s[:, 1:] + s[:, :-1]) / 2).mean(1)


__all__ = ["to_size", "baseline_image", "ranking", "curve", "area"]
