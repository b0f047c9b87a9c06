"""Why the grid size matters: each stage's grid, its cells' receptive field and how many pixel
vectors k-means gets, for one architecture at several input sizes.

A stage's grid is ``image_size / stride`` (ResNet: 4, 8, 16, 32 for ``layer1..4``), but its
cells' theoretical receptive field does not depend on the input size (ResNet18: 99, 211 and 435 px
for ``layer2..4``). At 64 px a ``layer4`` cell therefore sees the whole image and the grid is
2 x 2; at 224 px the grid is 7 x 7 and a cell still sees the whole bird, but the cells are 32 px
apart, so the map can move with the parts. The explanation maps cluster one pixel vector per cell
of the finest block of the set (eq. 7), so a class's k-means at B234 gets 16 times as many points
at 224 px as at 64 px.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from protolib.baselines.protopnet.push import receptive_field
from protolib.core.models import build_model
from protolib.core.stages import stages


def truncated(model: nn.Module, layer: str) -> nn.Sequential:
    """The top-level children of ``model`` up to and including ``layer`` (a ResNet-style stem and
    stages), as one module whose output is that stage's."""
    names = [n for n, _ in model.named_children()]
    if layer not in names:
        raise ValueError(f"{layer!r} is not a top-level child of the model; children: {names}")
    return nn.Sequential(*[m for n, m in model.named_children()][: names.index(layer) + 1])


def stage_rows(arch: str, image_sizes: Sequence[int] = (64, 224), layers: Sequence[str] | None = None,
               images_per_class: int = 30) -> list[dict]:
    """One row per (image size, stage): grid, cells per image, cell stride and receptive field (px),
    and the pixel vectors one class's k-means gets from ``images_per_class`` images. ``layers``
    default to the model's last three stages (B234's: ``layer2..4`` on a ResNet)."""
    model = build_model(arch, num_classes=2).eval()
    layers = tuple(layers) if layers is not None else stages(model)[-3:]
    rows = []
    for size in image_sizes:
        x = torch.zeros(1, 3, size, size)
        for layer in layers:
            part = truncated(model, layer)
            with torch.no_grad():
                grid = tuple(part(x).shape[-2:])
            rf = receptive_field(part)
            rows.append({"image": f"{size} px", "stage": layer, "grid": f"{grid[0]} x {grid[1]}",
                         "cells per image": grid[0] * grid[1], "cell stride (px)": int(rf.stride),
                         "receptive field (px)": int(rf.size),
                         "pixel vectors per class": images_per_class * grid[0] * grid[1]})
    return rows


__all__ = ["truncated", "stage_rows"]
