"""Synthetic birds at the paper's geometry: 224 px, where ResNet's last block is a 7x7 grid.

The same generator, species table and part masks as ``birds`` (:mod:`protolib.core.data.birds`),
drawn at 224 px: masks and deciding parts are at full resolution, and the split is cached
through :mod:`protolib.core.store` like the 64 px birds (keyed by generator version, classes, size,
count and seed). The normalisation is the 64 px split's (the drawing does not depend on the size).

Size of the testbed, and why. 10 classes (five twin pairs, so every class has a twin and a deciding part), 60
training and 20 test images per class: 600 + 200 images. Measured on the shared 2-core CPU
(loaded by other work): drawing takes about 55 ms per 224 px image, so the two splits cost about
45 s once and load from the cache afterwards (about 120 MB of uint8 pixels and 40 MB of masks).
Training the width-16 ResNet18 at about 30 images/s costs about 20 s per epoch
(:mod:`protolib.reproduce.geometry.recipe`), so a backbone trains in minutes, not hours.

``birds224-at64`` draws the same birds (same seed, classes and counts) at 64 px: the 64 px twin
against which the geometry chapter compares, so that resolution is the only thing that differs.

Part sizes at 224 px (measured over 200 test birds, largest side of each part's mask): body
97-123 px, wing 80-102, head 50-62, legs 41-59, tail 31-77, beak 13-37, eye 11-15. Every part but
the beak and the eye spans at least one 32 px layer4 cell; the eye, like CUB's, is finer than
any cell of the last block and only B234's 28x28 grid can resolve it.

>>> from protolib.core import data
>>> spec = data.get_spec("birds224")
>>> spec.image_size, spec.num_classes
(224, 10)
"""

from __future__ import annotations

import functools

from protolib.core.data import birds
from protolib.core.data.base import DatasetSpec

NAME = "birds224"
NAME_64 = "birds224-at64"  # the same classes, counts and birds drawn at 64 px (B4 a 2x2 grid)
NUM_CLASSES, IMAGE_SIZE, N_TRAIN, N_TEST = 10, 224, 60, 20


def build(spec: DatasetSpec, split: str, augment: bool, root, seed: int, n_train: int = N_TRAIN,
          n_test: int = N_TEST, cache: bool | None = True, **options) -> birds.BirdImages:
    """Registry builder: :func:`protolib.core.data.birds.build` with this testbed's counts, always cached."""
    return birds.build(spec, split, augment, root, seed, n_train=n_train, n_test=n_test, cache=cache, **options)


def make_spec(name: str = NAME, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
              n_train: int = N_TRAIN, n_test: int = N_TEST) -> DatasetSpec:
    """The registry entry; another size, class count or split size gives another testbed (e.g. a
    tiny one for tests), under its own ``name``."""
    base = birds.make_spec(name, num_classes, image_size)
    return DatasetSpec(base.name, num_classes, image_size, base.mean, base.std,
                       functools.partial(build, n_train=n_train, n_test=n_test),
                       f"{base.description}; {n_train} train / {n_test} test images per class",
                       base.how_to_get, version=base.version)


__all__ = ["NAME", "NAME_64", "NUM_CLASSES", "IMAGE_SIZE", "N_TRAIN", "N_TEST", "build", "make_spec"]
