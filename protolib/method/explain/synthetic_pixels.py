"""Synthetic B234-like pixel vectors, made batch by batch, for k-means at any size.

Each pixel of an image shows one of ``PARTS`` class patterns per block (layer2 128, layer3 256,
layer4 512 dims, as in a ResNet18/34) plus Gaussian noise, ReLU'd, on a 28 x 28 grid whose parts
form 7 x 7-pixel patches; each block is then normalised per pixel as eq. 8 does
(:func:`protolib.method.explain.blocks.composite`). Batch ``i`` is seeded by ``i`` alone, so a stream of ``n``
rows is the same every time it is read, and no more than one batch is ever held.
"""

from __future__ import annotations

from typing import Iterator

import torch

from protolib.method.explain.blocks import composite

BLOCKS, PARTS, GRID, BATCH_IMAGES = (128, 256, 512), 12, 28, 64
BATCH_ROWS = BATCH_IMAGES * GRID * GRID  # 50,176 rows per batch


def batch(i: int, rows: int = BATCH_ROWS, noise: float = 0.7) -> torch.Tensor:
    """Batch ``i`` of the stream: (rows, 896) float32 pixel vectors (rows <= BATCH_ROWS)."""
    if not 1 <= rows <= BATCH_ROWS:
        raise ValueError(f"a batch holds 1 to {BATCH_ROWS} rows, got {rows}")
    patterns = [torch.randn(PARTS, d, generator=torch.Generator().manual_seed(d)) for d in BLOCKS]
    g = torch.Generator().manual_seed(1000 + int(i))
    n = -(-rows // (GRID * GRID))
    layout = torch.randint(0, PARTS, (n, 1, 4, 4), generator=g).float()
    layout = torch.nn.functional.interpolate(layout, size=(GRID, GRID), mode="nearest")[:, 0].long()
    acts = [(p[layout].permute(0, 3, 1, 2) + noise * torch.randn(n, p.shape[1], GRID, GRID, generator=g)).relu_()
            for p in patterns]
    h = composite(acts, None, "pixel")
    return h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])[:rows].contiguous()


def stream(n: int) -> Iterator[torch.Tensor]:
    """The ``n`` rows of a synthetic class, one batch of 64 images (50,176 rows) at a time."""
    if n < 1:
        raise ValueError(f"a stream needs at least one row, got n={n}")
    for i, a in enumerate(range(0, n, BATCH_ROWS)):
        yield batch(i, min(BATCH_ROWS, n - a))


def pixels(n: int) -> torch.Tensor:
    """All ``n`` rows of :func:`stream` at once (n, 896)."""
    return torch.cat(list(stream(n)))


__all__ = ["BLOCKS", "PARTS", "GRID", "BATCH_ROWS", "batch", "stream", "pixels"]
