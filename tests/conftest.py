"""Shared fixtures: isolated data/cache roots and writers of tiny files in the real formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_roots(tmp_path, monkeypatch):
    """Every test gets its own empty cache; the data root is only what the test sets."""
    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PROTOLIB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("PROTOLIB_PROFILE", raising=False)
    monkeypatch.setenv("PROTOLIB_DEVICE", "cpu")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


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
