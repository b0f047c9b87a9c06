"""Synthetic birds: a generated, offline stand-in for CUB-200-2011 with ground-truth parts.

Each image shows one bird-like object made of seven parts (head, beak, body, wing, tail, legs,
eye) on a textured sky, foliage or ground background, at a random position, scale, rotation
and flip, with colour jitter, pixel noise and, in some images, a branch in front of the bird.
A class is a vector of part attributes (head colour, beak shape, wing pattern, tail shape...,
see :mod:`.species`); classes come in twins that differ in one attribute of one part, so
the part that decides between a class and its nearest class is known.

>>> from protolib.core.data import birds
>>> ds = birds.BirdImages.generate(num_classes=4, image_size=32, n_per_class=2, seed=0)
>>> tuple(ds.images.shape), tuple(ds.masks.shape), ds.part_names[1]
((8, 3, 32, 32), (8, 32, 32), 'head')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2
from tqdm.auto import tqdm

from protolib.core.data.base import DatasetSpec, TensorImages
from .render import BACKGROUNDS, draw
from .species import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    CUB_PARTS,
    PART_NAMES,
    Species,
    make_species,
)

GENERATOR_VERSION = 5  # bump whenever the drawing changes, so cached splits are redrawn
CHUNK = 256  # images drawn per call; fixed, because the random streams are per chunk
SPLITS = {"train": 0, "test": 1}
DEFAULTS = {"num_classes": 20, "image_size": 64, "n_train": 150, "n_test": 50}
MEAN, STD = (0.5071, 0.5343, 0.4300), (0.2788, 0.2407, 0.3636)  # of the default train split
HOW_TO_GET = "generated on the fly from a seed: nothing to download"


@dataclass
class BirdArrays:
    """A generated split: ``images`` uint8 (N, 3, H, W), ``masks`` uint8 (N, H, W) of part ids,
    ``labels`` (N,), ``background`` (N,) index into ``BACKGROUNDS``, ``occluded`` bool (N,)."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    background: torch.Tensor
    occluded: torch.Tensor


def generate(species: Species, n_per_class: int, image_size: int = 64, seed: int = 0, split: str = "train",
             progress: bool = False, **draw_options) -> BirdArrays:
    """Draw ``n_per_class`` images of every class of ``species`` for ``split``.

    Labels cycle through the classes (image ``i`` has label ``i % C``). Chunk ``k`` of
    ``CHUNK`` images draws from its own generator seeded by ``(seed, split, k)``, so the same
    arguments give the same bytes and train and test never share a random stream.
    ``draw_options`` go to :func:`.render.draw` (``occlusion``, ``noise``, ``jitter``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if n_per_class < 1 or image_size < 16:
        raise ValueError(f"need n_per_class >= 1 and image_size >= 16, got {n_per_class}, {image_size}")
    n, c = n_per_class * species.num_classes, species.num_classes
    labels = torch.arange(n) % c
    table = torch.from_numpy(species.table).long()
    parts = []
    for k, start in enumerate(tqdm(range(0, n, CHUNK), desc=f"drawing birds ({split})", disable=not progress)):
        state = np.random.SeedSequence([seed, SPLITS[split], k]).generate_state(2, dtype=np.uint64)[0]
        g = torch.Generator().manual_seed(int(state))
        parts.append(draw(table[labels[start:start + CHUNK]], image_size, g, **draw_options))
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    return BirdArrays(cat("image"), cat("mask"), labels, cat("background"), cat("occluded"))


def _cached_generate(species: Species, n_per_class: int, image_size: int, seed: int, split: str,
                     cache: bool, progress: bool, **draw_options) -> BirdArrays:
    """:func:`generate`, stored in the cache root (atomic .pt under a file lock) when ``cache``."""
    if not cache:
        return generate(species, n_per_class, image_size, seed, split, progress, **draw_options)
    from protolib.core import store

    key = store.key("birds", version=GENERATOR_VERSION, classes=species.table.tolist(), n=n_per_class,
                    size=image_size, seed=seed, split=split, options=sorted(draw_options.items()))
    path = store.path("birds", f"birds-{split}-{species.num_classes}c-{image_size}px", key)

    def build() -> dict:
        arrays = generate(species, n_per_class, image_size, seed, split, progress, **draw_options)
        return {"state_dict": dict(vars(arrays)), "meta": {"version": GENERATOR_VERSION}}

    ckpt, _ = store.load_or_build(path, build)
    return BirdArrays(**ckpt["state_dict"])


@dataclass
class BirdSample:
    """Everything known about one image: ``image`` normalised (3, H, W), ``mask`` (H, W) uint8
    part ids, ``attributes`` (A,) value indices of its class, and the part names that separate
    its class from ``nearest_class``."""

    image: torch.Tensor
    label: int
    mask: torch.Tensor
    attributes: torch.Tensor
    nearest_class: int
    deciding_parts: list[str]


class BirdImages(TensorImages):
    """A split of synthetic birds: ``(image, label)`` pairs plus ground truth.

    Attributes beyond :class:`TensorImages`: ``masks`` uint8 (N, H, W) with values indexing
    ``part_names`` (0 = ``"background"``, occluded pixels included); ``attributes`` long (N, A)
    (the attribute row of each image's class); ``class_attributes`` (C, A);
    ``attribute_names`` and ``attribute_values``; ``nearest_class`` (C,); ``species``;
    ``background`` (N,) (index into ``BACKGROUNDS``) and ``occluded`` (N,).
    """

    part_names = ("background",) + PART_NAMES
    attribute_names = ATTRIBUTE_NAMES
    attribute_values = tuple(a.values for a in ATTRIBUTES)

    def __init__(self, spec: DatasetSpec, split: str, arrays: BirdArrays, species: Species, title: str,
                 augment=None):
        super().__init__(spec, split, arrays.images, arrays.labels, species.names, title, augment=augment)
        self.species, self.masks = species, arrays.masks
        self.background, self.occluded = arrays.background, arrays.occluded
        self.class_attributes = torch.from_numpy(species.table).long()
        self.attributes = self.class_attributes[self.targets]
        self.nearest_class = torch.from_numpy(species.twin).long()

    @classmethod
    def generate(cls, num_classes: int = 20, image_size: int = 64, n_per_class: int = 10, seed: int = 0,
                 split: str = "train", species_seed: int = 0, **draw_options) -> "BirdImages":
        """A small split built directly (no cache, no registry), e.g. for tests and examples."""
        species = make_species(num_classes, species_seed)
        spec = make_spec(num_classes=num_classes, image_size=image_size)
        arrays = generate(species, n_per_class, image_size, seed, split, **draw_options)
        return cls(spec, split, arrays, species, _title(species, image_size, n_per_class, seed, split))

    def deciding_parts(self, c: int) -> list[str]:
        """Names of the parts that separate class ``c`` from ``nearest_class[c]``."""
        return self.species.deciding_parts(int(c))

    def deciding_part_ids(self, c: int) -> list[int]:
        """Mask values of :meth:`deciding_parts`."""
        return [self.part_names.index(p) for p in self.deciding_parts(c)]

    def pairs(self) -> list[tuple[int, int, str]]:
        """Twin classes ``(c, d, attribute)`` that differ in that one attribute only."""
        return self.species.pairs()

    def describe(self, c: int) -> str:
        return self.species.describe(int(c))

    def sample(self, i: int) -> BirdSample:
        x, y = self[i]
        return BirdSample(x, y, self.masks[i], self.attributes[i], int(self.nearest_class[y]), self.deciding_parts(y))


def _title(species: Species, size: int, n_per_class: int, seed: int, split: str) -> str:
    return (f"synthetic birds ({species.num_classes} classes, {size} px, {n_per_class} {split} images per class, "
            f"seed {seed}), {split} split")


def make_spec(name: str = "birds", num_classes: int = 20, image_size: int = 64) -> DatasetSpec:
    """A registry entry for birds with this many classes at this size (register it to train on it)."""
    return DatasetSpec(
        name, num_classes, image_size, MEAN, STD, build,
        f"synthetic birds with part masks and attributes, {num_classes} classes, {image_size} px (generated)",
        HOW_TO_GET,
        version=f"generator-{GENERATOR_VERSION}",  # a redrawn dataset never reuses a stale checkpoint
    )


def build(spec: DatasetSpec, split: str, augment: bool, root, seed: int, n_train: int = DEFAULTS["n_train"],
          n_test: int = DEFAULTS["n_test"], species_seed: int = 0, cache: bool | None = None,
          progress: bool = False, **draw_options) -> BirdImages:
    """Registry builder: ``seed`` fixes the images, ``species_seed`` the classes; ``root`` is unused.

    ``cache`` (default: when the split has 1,000 images or more) stores the drawn split in the
    cache root. ``augment`` adds a horizontal flip and a padded random crop, as for STL-10.
    """
    species = make_species(spec.num_classes, species_seed)
    n = n_train if split == "train" else n_test
    cache = n * spec.num_classes >= 1000 if cache is None else cache
    arrays = _cached_generate(species, n, spec.image_size, seed, split, cache, progress, **draw_options)
    aug = None
    if augment:
        aug = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomCrop(spec.image_size, padding=spec.image_size // 16)])
    return BirdImages(spec, split, arrays, species, _title(species, spec.image_size, n, seed, split), augment=aug)


__all__ = ["BirdArrays", "BirdImages", "BirdSample", "generate", "make_spec", "build", "make_species", "Species",
           "PART_NAMES", "ATTRIBUTES", "ATTRIBUTE_NAMES", "CUB_PARTS", "BACKGROUNDS", "DEFAULTS"]
