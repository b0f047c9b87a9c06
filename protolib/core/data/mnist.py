"""MNIST from its official IDX files.

The full dataset (60,000 train / 10,000 test) is used when its four files are present (or
downloaded through torchvision with ``download=True``). When only the official *test* files
are present, the 10,000 test images are split into a seeded train/test pair, and every
title says so: such numbers are not comparable with the paper's MNIST numbers.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from protolib.core.data.base import (
    DatasetNotFoundError,
    DatasetSpec,
    TensorImages,
    resize_uint8,
    seeded_split,
)

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
N_TEST_WHEN_TEST_ONLY = 2000
HOW_TO_GET = (
    "put the official files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped or not) in "
    "<data root>/MNIST/raw/, or call with download=True on a machine with internet access "
    "(torchvision.datasets.MNIST fetches them)."
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) into a numpy array, checking its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as err:  # a gzip file cut short or not gzip at all
        raise ValueError(f"{path} could not be read ({err}); the file is damaged or incomplete: "
                         "download it again") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = _IDX_DTYPES.get(data[2]), data[3]
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX type code {data[2]:#x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {body.size} values (truncated?)")
    return body.reshape(shape)


def _find(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _load_part(raw: Path, part: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    img, lab = (_find(raw, stem) for stem in FILES[part])
    if img is None or lab is None:
        return None
    images, labels = read_idx(img), read_idx(lab)
    if len(images) != len(labels):
        raise ValueError(f"MNIST {part}: {len(images)} images but {len(labels)} labels in {raw}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _download(root: Path) -> None:
    import torchvision

    try:
        torchvision.datasets.MNIST(root, train=True, download=True)
        torchvision.datasets.MNIST(root, train=False, download=True)
    except Exception as err:  # network errors come in many types
        raise DatasetNotFoundError("mnist", root / "MNIST" / "raw", HOW_TO_GET) from err


def build(spec: DatasetSpec, split: str, augment: bool, root: Path, seed: int, download: bool = False):
    raw = root / "MNIST" / "raw"
    if download and _load_part(raw, "train") is None:
        _download(root)
    test = _load_part(raw, "test")
    if test is None:
        raise DatasetNotFoundError("mnist", raw, HOW_TO_GET)
    train = _load_part(raw, "train")
    size = spec.image_size
    if train is not None:
        images, targets = train if split == "train" else test
        title = f"MNIST (official {split} split, {size} px)"
    else:
        all_images, all_targets = test
        train_idx, test_idx = seeded_split(len(all_targets), N_TEST_WHEN_TEST_ONLY, seed)
        idx = train_idx if split == "train" else test_idx
        images, targets = all_images[idx], all_targets[idx]
        title = (
            f"MNIST official TEST split only (training files absent), seeded "
            f"{len(train_idx)}/{len(test_idx)} split (seed {seed}), {split} part, {size} px"
        )
    images = resize_uint8(images[:, None], size)
    return TensorImages(spec, split, images, targets, [str(c) for c in range(10)], title)
