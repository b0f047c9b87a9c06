"""Two small conversions that several modules need: an array from a tensor or a sequence, and a
dataset item's image in display range."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x) -> np.ndarray:
    """A NumPy array of ``x``: a tensor (detached, on the CPU) or anything ``np.asarray`` takes."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def dataset_image(dataset, i: int) -> torch.Tensor:
    """The image (3, H, W) of item ``i`` of ``dataset``, denormalised when the dataset can
    (registry datasets have ``denormalize``), else as the dataset returns it."""
    x = dataset[int(i)][0]
    return dataset.denormalize(x) if hasattr(dataset, "denormalize") else x
