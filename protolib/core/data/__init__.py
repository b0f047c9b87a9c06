"""Dataset registry: ``load("mnist", "train")`` returns a dataset of ``(image, label)`` pairs.

Every dataset returns normalised 3-channel float tensors at the size of its recipe (see
``shared/research/mission-anchors.md``): MNIST 32 px grey repeated to 3 channels, STL-10 96 px
(flip and padded crop when ``augment``), CUB-200-2011 224 px (ImageNet statistics, as ProtoPNet).
Missing files raise :class:`DatasetNotFoundError`, which names the dataset, the path looked at
and how to get the data.

>>> from protolib.core import data
>>> ds = data.load("digits", "train")
>>> x, y = ds[0]
>>> tuple(x.shape), ds.classes[y] == str(y)
((3, 32, 32), True)
"""

from __future__ import annotations

from pathlib import Path

from protolib.core import store
from protolib.core.checks import check_int
from protolib.core.config import data_root
from . import birds, birds224, cub, digits, mnist, stl10
from .base import DatasetNotFoundError, DatasetSpec, LabelledImages, TensorImages

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry (a later chapter or a user may add their own)."""
    REGISTRY[spec.name] = spec
    return spec


register(DatasetSpec(
    "digits", 10, 32, (0.3053,) * 3, (0.3235,) * 3, digits.build,
    "scikit-learn's 1,797 real 8x8 digits, upsampled to 32 px; a seeded 80/20 split",
    "bundled with scikit-learn: nothing to download",
))
register(DatasetSpec(
    "mnist", 10, 32, (0.1327,) * 3, (0.2918,) * 3, mnist.build,
    "MNIST at 32 px (KMEx recipe); the official test split alone is split in two when "
    "the training files are absent",
    mnist.HOW_TO_GET,
))
register(DatasetSpec(
    "stl10", 10, 96, (0.4466, 0.4397, 0.4066), (0.2603, 0.2566, 0.2713), stl10.build,
    "STL-10 labelled splits (5,000 train / 8,000 test) at 96 px",
    stl10.HOW_TO_GET,
))
register(DatasetSpec(
    "cub200", 200, 224, IMAGENET_MEAN, IMAGENET_STD, cub.build,
    "CUB-200-2011 (5,994 train / 5,794 test), bounding-box crops at 224 px",
    cub.HOW_TO_GET,
))

register(birds.make_spec("birds", birds.DEFAULTS["num_classes"], birds.DEFAULTS["image_size"]))
register(birds224.make_spec())  # the paper's geometry: 224 px, 10 classes (see data/birds224.py)
register(birds224.make_spec(birds224.NAME_64, image_size=64))  # the same birds at 64 px: resolution alone differs


def available() -> list[str]:
    """Names of the registered datasets."""
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; a clear error for an unknown name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; registered datasets: {available()}") from None


def load(
    name: str,
    split: str = "train",
    augment: bool = False,
    root: str | Path | None = None,
    seed: int = 0,
    **options,
) -> LabelledImages:
    """Load ``split`` (``"train"`` or ``"test"``) of dataset ``name``.

    ``augment`` turns on the training augmentation of the recipe (a no-op for MNIST and
    digits, which have none). ``seed`` fixes the train/test split of datasets without an
    official one. ``root`` defaults to :func:`protolib.core.config.data_root`. Extra options go to
    the dataset's builder (``download=True`` for MNIST and STL-10, ``crop=False`` for CUB).

    >>> from protolib import load
    >>> digits = load("digits", "test")   # scikit-learn's bundled digits, always at hand
    >>> len(digits), tuple(digits[0][0].shape), digits.classes[:3]
    (360, (3, 32, 32), ['0', '1', '2'])
    """
    spec = get_spec(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_int("seed", seed, 0)
    root = Path(root) if root is not None else data_root()
    return spec.build(spec, split, augment, root, seed, **options)


def fingerprints(name: str, splits=("train", "test"), **load_options) -> dict[str, str]:
    """{split: content fingerprint} of dataset ``name`` (:func:`protolib.core.store.fingerprint`): what
    every cache key says about the data, so that new or changed files never meet old results.
    ``load_options`` go to :func:`load`; augmentation does not change a split's content."""
    return {split: store.fingerprint(load(name, split, **load_options)) for split in splits}


def is_available(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` can be loaded from ``root`` without a download."""
    try:
        load(name, "test", root=root)
    except DatasetNotFoundError:
        return False
    return True


def first_available(*names: str, root: str | Path | None = None) -> str:
    """The first of ``names`` whose files are present (e.g. ``first_available("mnist", "digits")``).

    Chapters use it to run on the best data at hand while always running offline.
    """
    for name in names:
        if is_available(name, root=root):
            return name
    raise DatasetNotFoundError(names[-1], root or data_root(), "none of the datasets asked for is present")


__all__ = [
    "DatasetNotFoundError", "DatasetSpec", "LabelledImages", "TensorImages", "REGISTRY",
    "register", "available", "get_spec", "load", "fingerprints", "is_available", "first_available", "IMAGENET_MEAN", "IMAGENET_STD",
]
