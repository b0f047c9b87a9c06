"""Block sets and the composite pixel features of the explanation maps (paper eq. 6-8).

A block set names the block outputs x^(b) that are combined: ``"B4"``, ``"B34"``, ``"B234"``
(the last one, two or three stages of the encoder, found from the model by
:func:`protolib.core.stages.stages`) or explicit dotted module names for any CNN.
Each selected output (B, D_b, H_b, W_b) is interpolated bilinearly (``align_corners=False``) to
a shared grid H' x W' (eq. 7; default: the grid of the shallowest block), divided by D_b times
its norm (eq. 8; per pixel or per block, see :func:`normalise`) and concatenated along channels.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from protolib.core.stages import last_stages, stage_info

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")  # the default when no model is at hand
NORMS = ("pixel", "block")


def _digits(blocks: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"B[1-9]+", blocks):
        return None
    digits = tuple(int(d) for d in blocks[1:])
    if max(digits) > 4:
        raise ValueError(f"block set {blocks!r}: the digits are ResNet stage numbers 1 to 4 (B4 = the last "
                         "stage, B3 the one before, ...)")
    return digits


def resolve_blocks(blocks: str | Sequence[str], model: nn.Module | None = None) -> tuple[str, ...]:
    """Dotted module names of a block set.

    ``"B"`` + digits counts the encoder's stages from the end, the digit being the ResNet stage
    number: stage index from the end = 4 - digit, so ``B4`` = the last stage, ``B34`` the last
    two, ``B234`` the last three, ``B1234`` the last four. With ``model`` they are that model's
    stages (:func:`protolib.core.stages.stages`; on a torchvision ResNet ``layer1..layer4``, on DenseNet
    ``features.denseblock2``, ...); without one, the ResNet names are the documented default
    (``"B234"`` -> ``("layer2", "layer3", "layer4")``). Any other string is one module name; a list
    of dotted module names is returned as is.
    """
    if isinstance(blocks, str):
        digits = _digits(blocks)
        if digits is None:
            return (blocks,)
        if model is None:
            return tuple(RESNET_STAGES[d - 1] for d in digits)
        last = last_stages(model, 5 - min(digits), asked=f"block set {blocks!r}")
        return tuple(last[len(last) - 5 + d] for d in digits)
    names = tuple(blocks) if isinstance(blocks, (list, tuple)) else ()
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"blocks must be a block-set name or a non-empty list of layer names, got {blocks!r}")
    return names


def block_set_name(layers: Sequence[str], model: nn.Module | None = None) -> str:
    """The inverse of :func:`resolve_blocks`: ``("layer2", "layer3", "layer4")`` -> ``"B234"`` when
    the layers are among the last four stages of ``model`` (without one: ResNet's ``layer1..4``);
    other names are joined with ``+``."""
    last = RESNET_STAGES if model is None else stage_info(model).names[-4:]
    if layers and all(n in last for n in layers):
        return "B" + "".join(str(4 - len(last) + 1 + last.index(n)) for n in layers)
    return "+".join(layers)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def upsample(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Eq. 7: bilinear interpolation (align_corners=False) of x (B, D, H, W) to ``size``."""
    size = _size(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def normalise(u: torch.Tensor, norm: str = "pixel", eps: float = 1e-12) -> torch.Tensor:
    """Eq. 8 for one block u (B, D_b, H, W): u / (D_b * ||u||), ``norm`` = ``"pixel"`` or ``"block"``.

    ``"pixel"``: ||u_r|| over channels, per pixel; ``"block"``: the Frobenius norm of the block of
    each image. An all-zero pixel (or block) stays zero.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    dims = (1,) if norm == "pixel" else (1, 2, 3)
    length = torch.linalg.vector_norm(u, dim=dims, keepdim=True).clamp_min(eps)
    return u / (u.shape[1] * length)


def composite(acts: Sequence[torch.Tensor], size: int | tuple[int, int] | None = None,
              norm: str = "pixel", eps: float = 1e-12) -> torch.Tensor:
    """Eq. 7-8: h-check (B, sum_b D_b, H', W') from block outputs x^(b) (B, D_b, H_b, W_b).

    ``size`` defaults to the largest grid among the blocks (the shallowest one).
    """
    if not acts:
        raise ValueError("composite needs at least one block output")
    if any(a.ndim != 4 or a.shape[0] != acts[0].shape[0] for a in acts):
        raise ValueError(f"block outputs must be (B, D, H, W) with one batch size, got {[tuple(a.shape) for a in acts]}")
    if size is None:
        size = max((tuple(a.shape[-2:]) for a in acts), key=lambda s: s[0] * s[1])
    return torch.cat([normalise(upsample(a.float(), size), norm, eps) for a in acts], dim=1)


__all__ = ["RESNET_STAGES", "NORMS", "resolve_blocks", "block_set_name", "upsample", "normalise", "composite"]
