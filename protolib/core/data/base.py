"""Shared pieces of the dataset registry: the spec, the in-memory image dataset, the errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be (and could not be downloaded)."""

    def __init__(self, name: str, expected: Path | str, how_to_get: str):
        self.name, self.expected, self.how_to_get = name, Path(expected), how_to_get
        super().__init__(
            f"dataset {name!r} not found: expected its files under {expected}.\n"
            f"How to get it: {how_to_get}\n"
            f"(Set PROTOLIB_DATA to the folder that holds your datasets.)"
        )


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about a dataset before loading it.

    ``image_size`` and the normalisation follow the KMEx / ProtoPNet recipes
    (see ``shared/research/mission-anchors.md``); ``build(split, augment, root, seed)``
    returns the dataset. ``version`` names the data's content (bump it when a generated
    dataset changes) and enters every cache key, so no stale checkpoint is ever reused.
    """

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[..., "LabelledImages"]
    description: str
    how_to_get: str
    version: str = "1"


class LabelledImages(Dataset):
    """Base for every dataset of the registry: ``(image, label)`` pairs plus metadata.

    Attributes
    ----------
    spec : the :class:`DatasetSpec`.
    split : ``"train"`` or ``"test"``.
    targets : LongTensor (N,) of labels, so class-wise code need not load images.
    classes : class names, index = label.
    title : a full name for printouts and tables (says e.g. that MNIST is the test split only).
    """

    spec: DatasetSpec
    split: str
    targets: torch.Tensor
    classes: list[str]
    title: str

    def __len__(self) -> int:
        return len(self.targets)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation of ``x`` (B,3,H,W) or (3,H,W) for display, clipped to [0, 1]."""
        mean = torch.tensor(self.spec.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.spec.std, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def __repr__(self) -> str:
        return f"<{self.title}: {len(self)} images, {len(self.classes)} classes>"


class TensorImages(LabelledImages):
    """Images held in memory as uint8 (N, C, H, W) at the final size; C is 1 or 3.

    Grey images are repeated to 3 channels on access, so every backbone sees RGB.
    ``augment`` is a callable on a float (3, H, W) tensor in [0, 1] applied before
    normalisation (training only).
    """

    def __init__(
        self,
        spec: DatasetSpec,
        split: str,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str],
        title: str,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.spec, self.split, self.title = spec, split, title
        self.images, self.targets = images, targets.long()
        self.classes = list(classes)
        self.augment = augment
        self._mean = torch.tensor(spec.mean).view(3, 1, 1)
        self._std = torch.tensor(spec.std).view(3, 1, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i].float().div_(255)
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        if self.augment is not None:
            x = self.augment(x)
        return (x - self._mean) / self._std, int(self.targets[i])


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 (N, C, H, W) images to ``size`` x ``size``."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def seeded_split(n: int, n_test: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded random train/test split of ``range(n)`` (sorted within each part)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return perm[n_test:].sort().values, perm[:n_test].sort().values
