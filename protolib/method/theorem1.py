"""Theorem 1: a GAP + linear CNN is a self-explainable model with C prototypes.

With h_r the feature vector of pixel r of the last feature map (R pixels) and c_j the weight
vector of class j in the linear head,

    logit_j = (1/R sum_r h_r) . c_j = 1/R sum_r (h_r . c_j)            (paper, eq. 4-5)

so the classifier columns c_j are prototypes, the dot product is the similarity and average
pooling is the projection. ``evidence_maps`` returns the per-pixel terms h_r . c_j (plus the
bias b_j when the head has one, which keeps the equality), ``theorem1_check`` measures how
far the average of those maps is from the network's logits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from protolib.core import determinism
from protolib.core.checks import check_images
from protolib.core.gap import gap_split


def classifier_prototypes(model: nn.Module) -> torch.Tensor:
    """The C classifier prototypes c_j as the rows of a (C, D) tensor (detached)."""
    return gap_split(model).head.weight.detach()


@torch.no_grad()
def evidence_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel class evidence of the batch ``x``.

    Returns ``(h, maps)`` with h: (B, D, H, W) the last feature map and maps: (B, C, H, W),
    ``maps[b, j, u, v] = h[b, :, u, v] . c_j (+ b_j)``. The mean of ``maps`` over (H, W) is the
    network's logits (Theorem 1).
    """
    check_images("x", x)
    split = gap_split(model)
    h = split.features(x)
    maps = torch.einsum("bdhw,cd->bchw", h, split.head.weight)
    if split.head.bias is not None:
        maps = maps + split.head.bias.view(1, -1, 1, 1)
    return h, maps


@dataclass
class Theorem1Check:
    """The two sides of eq. 5 and their largest gaps."""

    logits: torch.Tensor            # clf(avg.pool(enc(x))): the model's own forward pass
    mean_of_maps: torch.Tensor      # 1/R sum_r (h_r . c_j)
    max_abs_error: float
    max_rel_error: float
    dtype: torch.dtype

    def __repr__(self) -> str:
        return (f"Theorem1Check({self.dtype}: max |logit - mean_r h_r.c_j| = {self.max_abs_error:.3e}, "
                f"relative {self.max_rel_error:.3e}, over {tuple(self.logits.shape)} logits)")


@torch.no_grad()
def theorem1_check(model: nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> Theorem1Check:
    """Compare the model's logits with the pixel average of its evidence maps, in ``dtype``.

    The model is evaluated (on a copy when ``dtype`` differs from its own), so BatchNorm uses
    its running statistics and dropout is off: the identity holds for the network as deployed.
    Both sides run in :func:`protolib.core.determinism.exact` (no TF32, deterministic kernels), so
    the gap measures the identity, not a GPU's reduced precision.

    >>> import torch, torchvision
    >>> from protolib import theorem1_check
    >>> check = theorem1_check(torchvision.models.resnet18(num_classes=3), torch.rand(2, 3, 64, 64))
    >>> check.max_abs_error < 1e-5   # the logits are the pixel average of the evidence maps
    True
    """
    check_images("x", x)
    params = next(model.parameters())
    net = model if params.dtype == dtype else copy.deepcopy(model).to(dtype)
    was_training = net.training
    net.eval()
    try:
        with determinism.exact():
            x = x.to(device=params.device, dtype=dtype)
            logits = net(x)
            _, maps = evidence_maps(net, x)
            mean = maps.mean(dim=(2, 3))
    finally:
        net.train(was_training)
    err = (logits - mean).abs()
    rel = err / logits.abs().clamp_min(torch.finfo(dtype).tiny)
    return Theorem1Check(logits, mean, err.max().item(), rel.max().item(), dtype)


def head_commutes_with_mean(head: nn.Module, h: torch.Tensor) -> float:
    """Largest gap between ``head(mean_r h_r)`` and ``mean_r head(h_r)`` for a pooled head.

    h: (B, D, H, W). Zero (to rounding) for an affine head; not for an MLP or a LayerNorm.
    This is why Theorem 1 needs the head to be linear (affine) after pooling.
    """
    pooled_first = head(h.mean(dim=(2, 3)))
    b, d, hh, ww = h.shape
    per_pixel = head(h.permute(0, 2, 3, 1).reshape(-1, d)).reshape(b, hh * ww, -1).mean(1)
    return (pooled_first - per_pixel).abs().max().item()
