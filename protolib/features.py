"""Batched, device-aware extraction of pooled embeddings z and logits for a whole dataset."""

from __future__ import annotations

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
