"""The 224 px testbed's recipes: which data, which narrow ResNet, how it trains, how much is evaluated.

A :class:`GeometryRecipe` holds everything one recorded seed depends on, so that it enters the
record's provenance whole. ``RECIPES["w16"]`` is the default: ResNet18's depths at width 16 on
``birds224`` (10 classes, 60 training images per class). Measured on the shared 2-core CPU while
other work ran (``benchmarks/geometry_224.py``, fp32, batch 32, torch 2.14): about 34 training
images/s for width 16 and about 12 for width 32, so an epoch of 600 images costs about 20 s and
50 s; 30 epochs are about 10 and 25 minutes per seed. From scratch on 600 images a small network
needs a livelier schedule than the KMEx one (lr 0.01, momentum 0.5): SGD with lr 0.05, momentum
0.9, weight decay 5e-4, batch 32 and a cosine schedule, with flips and padded crops.

``RECIPES["w16-smoke"]`` runs the real geometry end to end (one epoch, a dozen test images): it
proves the command, not the numbers (after one epoch the CNN is at chance). Measured once on the
shared 2-core CPU under a load average of about 10 (other work running): 352 s for drawing the
data, one epoch (109 s, about 5.5 images/s), the maps' fit and Table 2's rows, and 384 s for the
evaluation, of which ROAD took 254 s (9 maps x 2 images, about 14 s per image and map against
about 4 s on an idle machine). Scaled to ``w16`` (30 epochs, 40 curve and 16 ROAD images, 200
for the rest), one seed costs roughly 40 minutes on an idle 2-core CPU and 2-3 hours under such a load:
run it where the cores are free, or on a GPU.

``RECIPES["w16-at64"]`` is ``w16`` with the same birds drawn at 64 px (``birds224-at64``): the same
classes, images, network, schedule and evaluation, so that the grid (B4 2x2 instead of 7x7) is the
only difference between the two records.

``RECIPES["tiny"]`` is the same pipeline at 64 px on 2 classes with a width-4 network: it runs in
seconds and is what the tests use (its numbers mean nothing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from protolib.core.train import Recipe


@dataclass(frozen=True)
class GeometryRecipe:
    """One testbed setting: the data and network, the training schedule, the maps' settings
    (``k_per_class`` prototypes per class fitted on ``images_per_class`` training images per
    class; train accuracy on ``eval_train`` images) and the evaluation's subset sizes."""

    name: str
    dataset: str = "birds224"
    arch: str = "resnet18_w16"
    image_size: int = 224
    train: Recipe = field(default_factory=lambda: Recipe(epochs=30, batch_size=32, lr=0.05, momentum=0.9,
                                                         weight_decay=5e-4, eta_min=1e-4))
    k_per_class: int = 5
    images_per_class: int | None = 30
    eval_train: int | None = 300
    n_local: int = 200       # localisation, part NMI/ARI, consistency/stability (test images)
    n_curve: int = 40        # deletion/insertion
    steps: int = 8
    n_sanity: int = 16       # randomisation cascade
    n_road: int = 16         # ROAD: about 4 s per image per method at 224 px
    road_percentiles: tuple[int, ...] = (20, 40, 60, 80)
    n_concepts: int = 8      # DFF concepts

    def as_dict(self) -> dict:
        return asdict(self)


RECIPES = {
    "w16": GeometryRecipe("w16"),
    "w16-smoke": GeometryRecipe("w16-smoke", train=Recipe(epochs=1, batch_size=32, lr=0.05, momentum=0.9,
                                                          weight_decay=5e-4), eval_train=100, n_local=12,
                                n_curve=4, steps=4, n_sanity=2, n_road=2),
    "w32": GeometryRecipe("w32", arch="resnet18_w32"),
    "w16-at64": GeometryRecipe("w16-at64", dataset="birds224-at64", image_size=64),
    "tiny": GeometryRecipe("tiny", dataset="birds224-tiny", arch="resnet18_w4", image_size=64,
                           train=Recipe(epochs=1, batch_size=8, lr=0.05, momentum=0.9),
                           k_per_class=2, images_per_class=4, eval_train=8, n_local=6, n_curve=4, steps=2,
                           n_sanity=2, n_road=2, road_percentiles=(50,), n_concepts=2),
}


def get_recipe(name: str | GeometryRecipe) -> GeometryRecipe:
    """The recipe named ``name`` (a :class:`GeometryRecipe` is returned as it is)."""
    if isinstance(name, GeometryRecipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown geometry recipe {name!r}; known: {sorted(RECIPES)}") from None


def check_image_size(x: torch.Tensor, recipe: GeometryRecipe) -> torch.Tensor:
    """``x`` (B, 3, H, W) at the recipe's size, else a ValueError naming both sizes."""
    s = recipe.image_size
    if x.ndim != 4 or tuple(x.shape[-2:]) != (s, s):
        raise ValueError(f"images of shape {tuple(x.shape)} do not match the recipe {recipe.name!r}: "
                         f"it trains and explains {s} x {s} images (B, 3, {s}, {s})")
    return x


__all__ = ["GeometryRecipe", "RECIPES", "get_recipe", "check_image_size"]
