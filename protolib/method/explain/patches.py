"""Representative patches: for each prototype, the training patch whose pixel vector is nearest.

A pixel of an explanation map is a cell of the shared grid R' (H' x W'), whose stride on the
input is s = H / H' pixels. The patch shown for it is a square of side ``scale * s`` (default
2 strides: the cell and half a cell of context on each side) centred on the cell, shifted to stay
inside the image and capped at the image size. It is a readable stand-in for the receptive field,
which in a ResNet is far larger than the stride (at the last block it covers the whole image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from protolib.core.convert import dataset_image
from protolib.method.explain.maps import ExplanationMaps


@dataclass
class Patches:
    """crops: (K, 3, S, S) in [0, 1] on the CPU; boxes: (K, 4) (top, left, bottom, right) in input
    pixels; index: (K,) dataset indices; prototype_classes: (K,); distance: (K,) squared distance
    between each prototype and its pixel vector."""

    crops: torch.Tensor
    boxes: torch.Tensor
    index: torch.Tensor
    prototype_classes: torch.Tensor
    distance: torch.Tensor


def patch_box(row: int, col: int, grid: tuple[int, int], input_size: tuple[int, int],
              scale: float = 2.0) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the patch of grid cell (row, col); see the module docstring."""
    box = []
    for i, g, n in ((row, grid[0], input_size[0]), (col, grid[1], input_size[1])):
        if not 0 <= i < g:
            raise ValueError(f"cell {i} is outside a grid of {g}")
        stride = n / g
        side = min(n, max(1, round(scale * stride)))
        start = min(max(round((i + 0.5) * stride - side / 2), 0), n - side)
        box.append((start, start + side))
    (top, bottom), (left, right) = box
    return top, left, bottom, right


def representative_patches(explainer: ExplanationMaps, dataset: Dataset, scale: float = 2.0) -> Patches:
    """The patch of each prototype's nearest training pixel (``explainer`` fitted on ``dataset``)."""
    if not hasattr(explainer, "patch_index_"):
        raise RuntimeError("the explainer has no patch locations: fit it with fit(dataset), not fit_features")
    crops, boxes = [], []
    for i, r, c in explainer.patch_index_.tolist():
        img = dataset_image(dataset, i)
        t, l, b, rr = patch_box(r, c, explainer.grid_, tuple(img.shape[-2:]), scale)
        crops.append(img[:, t:b, l:rr].cpu())
        boxes.append((t, l, b, rr))
    return Patches(torch.stack(crops), torch.tensor(boxes), explainer.patch_index_[:, 0].clone(),
                   explainer.prototype_classes_.cpu(), explainer.patch_distance_.clone())


__all__ = ["Patches", "patch_box", "representative_patches"]
