"""Figures for ProtoPNet: training curves, pushed prototypes, "this looks like that"."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from protolib.baselines.protopnet.analysis import Explanation
from protolib.baselines.protopnet.push import PushResult
from protolib.baselines.protopnet.stages import StageResult
from protolib.core.convert import dataset_image
from protolib.viz.layout import NORMAL, SMALL, TEXT_WIDTH, grid_shape, panel_figsize


def _image(dataset, i: int) -> np.ndarray:
    """Item ``i`` of a registry dataset as an (H, W, 3) array in [0, 1]."""
    return dataset_image(dataset, i).permute(1, 2, 0).cpu().numpy()


def _box(ax, box, colour: str, style: str = "-") -> None:
    y0, y1, x0, x1 = [float(v) for v in box]
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.5, ls=style))


def plot_history(results: dict, keys=("cross_entropy", "cluster", "separation", "accuracy"), figsize=None):
    """Per-epoch means of the loss terms and training accuracy, stage after stage (a grid of two
    panels a row, as wide as the book's text). The history holds the accuracy as a fraction; its
    panel shows percent."""
    stages = [(name, r) for name, r in results.items() if isinstance(r, StageResult)]
    rows, cols = grid_shape(len(keys), 2)
    fig, axes = plt.subplots(rows, cols, figsize=figsize or panel_figsize(rows, cols, 0.62), squeeze=False)
    axes = axes.flatten()
    for ax in axes[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes, keys):
        x = 0
        for name, r in stages:
            ys = [100 * h[key] if key == "accuracy" else h[key] for h in r.history]
            ax.plot(range(x + 1, x + len(ys) + 1), ys, marker="o", ms=3, label=name)
            x += len(ys)
        ax.set_title(key.replace("_", " ") + (" (%)" if key == "accuracy" else ""), fontsize=NORMAL)
        ax.set_xlabel("epoch (stage after stage)", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
    axes[0].legend(fontsize=SMALL)
    fig.tight_layout()
    return fig


def show_prototypes(push_set, push: PushResult, k_per_class: int, classes=None, class_names=None,
                    size: float = 1.2):
    """Each prototype as its source training image, with its 95th-percentile box (yellow) and its
    grid cell (cyan, dashed). Rows: classes; columns: the prototypes of a class."""
    classes = list(range(len(push.image_index) // k_per_class)) if classes is None else list(classes)
    size = min(size, (TEXT_WIDTH - 1.2) / k_per_class)        # 1.2 in for the class names
    fig, axes = plt.subplots(len(classes), k_per_class, figsize=(size * k_per_class + 1.2, size * len(classes)),
                             squeeze=False)
    for r, c in enumerate(classes):
        for k in range(k_per_class):
            j, ax = c * k_per_class + k, axes[r, k]
            ax.imshow(_image(push_set, push.image_index[j]))
            _box(ax, push.act_box[j], "yellow")
            _box(ax, push.cell_box[j], "cyan", "--")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"p{j} <- #{int(push.image_index[j])}", fontsize=SMALL)
        name = class_names[c] if class_names is not None else str(c)
        axes[r, 0].set_ylabel(name, fontsize=SMALL, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def show_explanation(image: torch.Tensor, dataset, expl: Explanation, push: PushResult, push_set,
                     weights: torch.Tensor, class_names=None, size: float = TEXT_WIDTH / 3.3):
    """"This looks like that": for each top prototype, where it fires on the image (similarity map
    and box), the training patch it was pushed to, and its similarity x weight = contribution.

    ``weights``: the last layer (C, P); ``dataset`` gives ``denormalize`` for ``image`` (3, H, W)."""
    name = (lambda c: class_names[c]) if class_names is not None else str
    rows = len(expl.top)
    fig, axes = plt.subplots(rows, 3, figsize=(3 * size, size * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.3]})
    img = dataset.denormalize(image.cpu()).permute(1, 2, 0).numpy()
    for r, j in enumerate(expl.top.tolist()):
        a, b, t = axes[r]
        a.imshow(img)
        a.imshow(expl.maps[r].numpy(), cmap="jet", alpha=0.45)
        _box(a, expl.boxes[r], "yellow")
        a.set_title("this (test image)" if r == 0 else "", fontsize=8)
        b.imshow(_image(push_set, push.image_index[j]))
        _box(b, push.act_box[j], "yellow")
        b.set_title(f"looks like that: p{j}, class {name(int(push.label[j]))}", fontsize=8)
        s, w = float(expl.similarities[j]), float(weights[expl.predicted, j])
        t.axis("off")
        t.text(0.0, 0.5, f"similarity  {s:6.3f}\nx weight    {w:6.3f}\n= {s * w:6.3f} points\n"
                         f"  for class {name(expl.predicted)}", family="monospace", fontsize=9, va="center")
        for ax in (a, b):
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"logit of class {name(expl.predicted)} = {float(expl.logits[expl.predicted]):.3f} "
                 f"(top {rows} of {len(expl.similarities)} prototypes shown)", fontsize=9)
    fig.tight_layout()
    return fig
