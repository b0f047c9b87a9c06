"""Shared fixtures: isolated data/cache roots and writers of tiny files in the real formats."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# One share of the cores per pytest-xdist worker: more threads than cores make every OpenMP region
# wait on descheduled threads, which halves the throughput of both workers on a 2-core machine.
_THREADS = max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


@pytest.fixture(autouse=True)
def _isolated_roots(tmp_path, monkeypatch):
    """Every test gets its own empty cache; the data root is only what the test sets."""
    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PROTOLIB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("PROTOLIB_PROFILE", raising=False)
    monkeypatch.setenv("PROTOLIB_DEVICE", "cpu")
    torch.set_num_threads(_THREADS)


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped like the official MNIST files."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_mnist(root: Path, n_test: int = 50, n_train: int | None = None, seed: int = 0) -> dict:
    """Tiny MNIST in the official layout; each image's top-left pixel encodes its index."""
    rng = np.random.default_rng(seed)
    out = {}
    for part, n, stem in (("test", n_test, "t10k"), ("train", n_train, "train")):
        if n is None:
            continue
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / "MNIST" / "raw" / f"{stem}-images-idx3-ubyte", images)
        write_idx(root / "MNIST" / "raw" / f"{stem}-labels-idx1-ubyte", labels)
        out[part] = (images, labels)
    return out


@pytest.fixture
def tiny_mnist(tmp_path):
    return make_mnist


def write_stl10(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """STL-10 binaries: images (N, 3, 96, 96) uint8 stored channel-wise column-major, labels 1-based."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tofile(folder / f"{split}_X.bin")
    (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")


def make_stl10(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> None:
    """Tiny STL-10 train and test binaries, labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        write_stl10(root, split, rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8), np.arange(n) % 10)
    (root / "stl10_binary" / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")


def make_cub(root: Path, train_per_class: int = 1, test_classes: int = 200, classes: int = 200,
             size: tuple[int, int] = (48, 40), seed: int = 0, names: dict[int, str] | None = None) -> Path:
    """A CUB_200_2011 folder in the official layout: ``classes`` classes with ``train_per_class``
    training JPEGs each, one test JPEG for each of the first ``test_classes`` classes, bounding
    boxes, class names and the 15 parts files. ``names`` gives some classes (0-based) a real CUB
    name (e.g. ``{3: "Field_Sparrow"}``); the others are ``Bird_<id>``. Returns the folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "CUB_200_2011"
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    rows, labels, split, boxes, locs = [], [], [], [], []
    plan = [(c, 1) for c in range(classes) for _ in range(train_per_class)] + [(c, 0) for c in range(test_classes)]
    w, h = size
    label = [f"{c + 1:03d}." + (names or {}).get(c, f"Bird_{c + 1}") for c in range(classes)]
    for i, (c, is_train) in enumerate(plan, start=1):
        rel = f"{label[c]}/{label[c][4:]}_{i:05d}.jpg"
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(folder / "images" / rel)
        rows.append(f"{i} {rel}")
        labels.append(f"{i} {c + 1}")
        split.append(f"{i} {is_train}")
        boxes.append(f"{i} 2.0 3.0 {w - 6}.0 {h - 8}.0")
        locs += [f"{i} {p} {p + 5}.0 {p + 3}.0 {p % 2}" for p in range(1, 16)]
    tables = {"images.txt": rows, "image_class_labels.txt": labels, "train_test_split.txt": split,
              "bounding_boxes.txt": boxes, "classes.txt": [f"{c + 1} {label[c]}" for c in range(classes)]}
    for name, lines in tables.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    (folder / "parts" / "part_locs.txt").write_text("\n".join(locs) + "\n")
    (folder / "parts" / "parts.txt").write_text("\n".join(f"{p} part {p}" for p in range(1, 16)) + "\n")
    return folder


def write_resnet_weights(path: Path, arch: str = "resnet34", seed: int = 0) -> Path:
    """A weights file in torchvision's format (a full ImageNet state dict, 1000 classes), randomly
    initialised: the right shapes, not the official bytes."""
    import torchvision

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)
    return path
