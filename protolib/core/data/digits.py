"""scikit-learn's bundled 8x8 handwritten digits (1,797 real images, always offline)."""

from __future__ import annotations

import numpy as np
import torch

from protolib.core.data.base import DatasetSpec, TensorImages, resize_uint8, seeded_split

N_TEST = 360  # 20 % of 1,797


def build(spec: DatasetSpec, split: str, augment: bool, root, seed: int) -> TensorImages:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    images = resize_uint8(torch.from_numpy(grey)[:, None], spec.image_size)
    targets = torch.from_numpy(bunch.target).long()
    train_idx, test_idx = seeded_split(len(targets), N_TEST, seed)
    idx = train_idx if split == "train" else test_idx
    title = (
        f"digits (scikit-learn 8x8, upsampled to {spec.image_size} px), "
        f"seeded {len(train_idx)}/{len(test_idx)} split (seed {seed}), {split} part"
    )
    return TensorImages(spec, split, images[idx], targets[idx], [str(c) for c in range(10)], title)
