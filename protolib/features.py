"""Batched, device-aware extraction of pooled embeddings z and logits for a whole dataset.

``embed_cached`` stores them beside the backbone's checkpoint, so chapters pay for them once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import config
from .models import split_gap_linear


@dataclass
class Embeddings:
    """Per-image quantities of a dataset, on the CPU.

    z: (N, D) pooled encoder output; logits: (N, C); labels: (N,).
    """

    z: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(1)

    def accuracy(self) -> float:
        """Top-1 accuracy of the CNN's own head, in percent."""
        return 100.0 * (self.predictions == self.labels).float().mean().item()


@torch.no_grad()
def embed(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    device=None,
    progress: bool = True,
) -> Embeddings:
    """z = avg-pool(enc(x)) and the logits for every image of ``dataset`` (in order).

    ``model`` must end in global average pooling + linear (see
    :func:`protolib.models.split_gap_linear`); the dataset should use evaluation transforms.
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty: it holds no image to embed")
    device = config.get_device(device)
    model.to(device).eval()
    split = split_gap_linear(model)
    zs, logits, labels = [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, y in tqdm(loader, desc="embed", disable=not progress, leave=False):
        z = split.pooled(x.to(device))
        zs.append(z.float().cpu())
        logits.append(split.head(z).float().cpu())
        labels.append(torch.as_tensor(y))
    return Embeddings(torch.cat(zs), torch.cat(logits), torch.cat(labels))


def fingerprint(dataset: Dataset) -> str:
    """A short hash of a dataset's content: its labels, and its pixels when held in memory.

    Keys cached features, so that regenerated or replaced data never meets stale features.
    """
    h = hashlib.sha256(torch.as_tensor(dataset.targets).numpy().tobytes())
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def embed_cached(
    trained,
    dataset: str,
    split: str,
    seed: int = 0,
    batch_size: int = 256,
    device=None,
    progress: bool = True,
) -> Embeddings:
    """:func:`embed` of ``data.load(dataset, split, seed=seed)`` (evaluation transforms), cached.

    ``trained`` is the :class:`protolib.train.TrainResult` of the backbone. The cache file sits
    beside the checkpoint (``<cache>/features/``) and is keyed by the checkpoint's name, its
    training record (a retrained checkpoint gets new features), the dataset, split and seed, and
    the data's :func:`fingerprint`.
    """
    from . import data
    from .train import cache_key, load_or_build

    ds = data.load(dataset, split, seed=seed)
    key = cache_key(checkpoint=trained.path.name, meta=trained.meta, dataset=dataset, split=split,
                    seed=seed, title=ds.title, data=fingerprint(ds))
    path = trained.path.parent.parent / "features" / f"{trained.path.stem}-{split}-{key}.pt"

    def build() -> dict:
        e = embed(trained.model, ds, batch_size=batch_size, device=device, progress=progress)
        return {"state_dict": {"z": e.z, "logits": e.logits, "labels": e.labels}, "meta": {"data": ds.title}}

    ckpt, _ = load_or_build(path, build)
    return Embeddings(**ckpt["state_dict"])
