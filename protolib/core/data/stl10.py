"""STL-10 through torchvision (5,000 labelled train / 8,000 test images, 96 px).

torchvision's reader is used as is; only its integrity check is replaced by a presence check
of the files the chosen split needs, because torchvision's check hashes all of them (the
2.5 GB unlabelled file included) on every load and rejects a folder without the unlabelled part.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torchvision.transforms import v2

from protolib.core.data.base import DatasetNotFoundError, DatasetSpec, TensorImages

HOW_TO_GET = (
    "download stl10_binary.tar.gz (about 2.5 GB) from the STL-10 page (cs.stanford.edu/~acoates/stl10) "
    "and extract it into <data root>/, so that <data root>/stl10_binary/train_X.bin exists; "
    "or call with download=True on a machine with internet access."
)
SPLIT_FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin")}


class _STL10(torchvision.datasets.STL10):
    """torchvision's STL10 whose integrity check only asks that the split's files exist."""

    def _check_integrity(self) -> bool:
        folder = os.path.join(self.root, self.base_folder)
        return all(os.path.isfile(os.path.join(folder, f)) for f in SPLIT_FILES[self.split])


def build(spec: DatasetSpec, split: str, augment: bool, root: Path, seed: int, download: bool = False):
    if download:
        torchvision.datasets.STL10(root, split=split, download=True)
    try:
        ds = _STL10(root, split=split)
    except RuntimeError as err:
        raise DatasetNotFoundError("stl10", root / "stl10_binary", HOW_TO_GET) from err
    images = torch.from_numpy(ds.data.copy())  # (N, 3, 96, 96) uint8, already oriented by torchvision
    targets = torch.from_numpy(ds.labels.astype("int64"))
    classes = list(getattr(ds, "classes", [])) or [str(c) for c in range(10)]
    aug = None
    if augment:  # KMEx's STL-10 recipe: horizontal flip and a 2-pixel padded random crop
        aug = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomCrop(spec.image_size, padding=2)])
    title = f"STL-10 (official {split} split, {spec.image_size} px)"
    return TensorImages(spec, split, images, targets, classes, title, augment=aug)
