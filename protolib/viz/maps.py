"""Figures for explanation maps, importance maps and representative patches (Figure 1 analogue).

Segments are drawn by nearest-neighbour upsampling (a segment is a set of grid cells, nothing is
smoothed) with a colour per prototype; the colour of a prototype is the same in the map and
around its representative patch. Importance maps are piecewise constant too, drawn by nearest
neighbour with a diverging colour map over their own range: red = high, blue = low, as in the
paper (the range is printed in the panel title).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colors as mcolors

from protolib.method.explain.maps_result import ExplanationMap
from protolib.method.explain.patches import Patches
from protolib.viz.layout import LARGE, NORMAL, SMALL, TEXT_WIDTH, grid_shape, panel_figsize

PALETTE = [mcolors.to_rgb(c) for name, sl in (("tab10", slice(None)), ("tab20", slice(1, None, 2)),
                                              ("tab20b", slice(None)), ("tab20c", slice(None)))
           for c in plt.get_cmap(name).colors[sl]]  # 60 colours, the most distinct first


def _np_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) in [0, 1] -> (H, W, 3) numpy."""
    img = image.detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).clamp(0, 1).numpy()


def _nearest(values: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W) by nearest neighbour, as numpy."""
    up = F.interpolate(values[None, None].double().cpu(), size=size, mode="nearest")[0, 0]
    return up.numpy()


def ordered_segments(counts: torch.Tensor) -> list[int]:
    """Prototype ids present in one image's map, the largest segment first."""
    counts = counts.cpu()
    present = counts.nonzero().flatten()
    return present[counts[present].argsort(descending=True, stable=True)].tolist()


def segment_colours(ids: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """A distinct colour per prototype id, in the order given (cycling after 60)."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(ids)}


def show_segments(ax, image: torch.Tensor, segments: torch.Tensor, colours: Mapping[int, tuple],
                  alpha: float = 0.6, title: str = "") -> None:
    """The image under a colour per segment (segments: (h, w) prototype ids), with boundaries."""
    img = _np_image(image)
    seg = _nearest(segments, img.shape[:2]).astype(int)
    rgb = np.zeros_like(img)
    for k in np.unique(seg):
        rgb[seg == k] = colours.get(int(k), (0.5, 0.5, 0.5))
    edge = np.zeros(seg.shape, bool)
    edge[:-1] |= seg[:-1] != seg[1:]
    edge[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    out = (1 - alpha) * img + alpha * rgb
    out[edge] = 1.0
    ax.imshow(out, interpolation="nearest")
    ax.set_title(title, fontsize=NORMAL)
    ax.axis("off")


def show_importance(ax, image: torch.Tensor, importance: torch.Tensor, centre: float | None = None,
                    title: str = "", alpha: float = 0.6):
    """The image (grey) under an importance map (h, w): red high, blue low.

    By default the colours span the map's own range (lowest blue, highest red), as in the
    paper's Figure 1, and the range is added to the title; ``centre=0`` makes the scale
    symmetric around 0 instead (white = 0).
    """
    img = _np_image(image)
    imp = _nearest(importance, img.shape[:2])
    lo, hi = float(imp.min()), float(imp.max())
    if centre is not None:
        half = max(abs(lo - centre), abs(hi - centre)) or 1.0
        lo, hi = centre - half, centre + half
    elif hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    ax.imshow(img.mean(2), cmap="gray", interpolation="nearest")
    im = ax.imshow(imp, cmap="RdBu_r", vmin=lo, vmax=hi, alpha=alpha, interpolation="nearest")
    ax.set_title(f"{title}\n[{float(imp.min()):.3g}, {float(imp.max()):.3g}]" if title else "", fontsize=NORMAL)
    ax.axis("off")
    return im


def show_patch(ax, crop: torch.Tensor, colour, title: str = "", width: float = 4.0) -> None:
    """One representative patch with a border in its segment's colour."""
    ax.imshow(_np_image(crop), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
    ax.set_title(title, fontsize=SMALL)


def explanation_panel(fig, image: torch.Tensor, explanation: ExplanationMap, importance: torch.Tensor,
                      patches: Patches, name: str, class_names: Sequence[str] | None = None,
                      max_patches: int = 6) -> None:
    """One half of Figure 1 on a (sub)figure: input, explanation map, importance map, patches.

    ``explanation`` holds one image (segments (1, h, w), counts (1, K)); importance is (h, w).
    """
    ids = ordered_segments(explanation.counts[0])
    colours = segment_colours(ids)
    shown = ids[:max_patches]
    outer = fig.add_gridspec(2, 1, height_ratios=[2.2, 1])
    top, bottom = outer[0].subgridspec(1, 3), outer[1].subgridspec(1, max_patches)
    axes = [fig.add_subplot(top[0, i]) for i in range(3)]
    axes[0].imshow(_np_image(image), interpolation="nearest"), axes[0].axis("off")
    axes[0].set_title("input", fontsize=NORMAL)
    h, w = explanation.segments.shape[-2:]
    show_segments(axes[1], image, explanation.segments[0], colours, title=f"{name} explanation\nmap ({h}x{w})")
    show_importance(axes[2], image, importance, title=f"{name} importance")
    for i, k in enumerate(shown):
        ax = fig.add_subplot(bottom[0, i])
        c = int(patches.prototype_classes[k])
        label = class_names[c] if class_names is not None else str(c)
        n = int(explanation.counts[0, k])
        show_patch(ax, patches.crops[k], colours[k], f"p{k} ({label})\n{n} cell{'s' * (n > 1)}")


def figure1(image: torch.Tensor, explanations: Mapping[str, ExplanationMap], importance: Mapping[str, torch.Tensor],
            patches: Mapping[str, Patches], class_names: Sequence[str] | None = None, title: str = "",
            max_patches: int = 6):
    """The Figure 1 analogue: one panel per block set (e.g. B4 left, B234 right) for one image."""
    names = list(explanations)
    # one block set under the other: side by side, two panels would not fit the text width
    fig = plt.figure(figsize=(TEXT_WIDTH, 4.2 * len(names)), layout="constrained")
    subs = fig.subfigures(len(names), 1, hspace=0.04)
    for sub, name in zip(np.atleast_1d(subs), names):
        explanation_panel(sub, image, explanations[name], importance[name], patches[name], name,
                          class_names, max_patches)
    if title:
        fig.suptitle(title, fontsize=LARGE)
    return fig


def compare_maps(image: torch.Tensor, maps: Mapping[str, torch.Tensor], title: str = "", max_cols: int = 5):
    """The input, then each map (h, w) over it, each coloured over its own range: a grid of at most
    ``max_cols`` panels a row, as wide as the book's text."""
    rows, cols = grid_shape(len(maps) + 1, max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=panel_figsize(rows, cols, aspect=1.25, extra_height=0.4),
                             layout="constrained", squeeze=False)
    axes = axes.flatten()
    axes[0].imshow(_np_image(image)), axes[0].axis("off"), axes[0].set_title("input", fontsize=NORMAL)
    for ax, (name, m) in zip(axes[1:], maps.items()):
        show_importance(ax, image, m.float(), title=name)  # each on its own range
    for ax in axes[len(maps) + 1:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=LARGE)
    return fig


def segment_grid(images: Sequence[torch.Tensor], rows: Mapping[str, Sequence[torch.Tensor]], title: str = ""):
    """Several images (columns) and their segmentations by several block sets (rows); segment
    colours are per image and per row (prototype ids, largest segment first)."""
    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=panel_figsize(len(rows) + 1, n, 1.05, 0.4),
                             layout="constrained", squeeze=False)
    for j, img in enumerate(images):
        axes[0, j].imshow(_np_image(img)), axes[0, j].axis("off")
        for i, (name, segs) in enumerate(rows.items(), start=1):
            seg = segs[j]
            ids = ordered_segments(torch.bincount(seg.flatten().cpu()))
            show_segments(axes[i, j], img, seg, segment_colours(ids), title=name if j == 0 else "")
    if title:
        fig.suptitle(title, fontsize=LARGE)
    return fig


__all__ = ["PALETTE", "ordered_segments", "segment_colours", "show_segments", "show_importance", "show_patch",
           "explanation_panel", "figure1", "compare_maps", "segment_grid"]
