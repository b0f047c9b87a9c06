"""Batched, device-aware extraction of pooled embeddings z and logits for a whole dataset.

``embed_cached`` stores them beside the backbone's checkpoint, so chapters pay for them once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from protolib.core import store
from protolib.core.gap import gap_split
from protolib.core.inference import evaluating, map_batches, run_device
from protolib.core.run import Run


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
        """Top-1 accuracy of the CNN's own head, a fraction in [0, 1]."""
        return (self.predictions == self.labels).float().mean().item()


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
    :func:`protolib.core.gap.split_gap_linear`); the dataset should use evaluation transforms. The
    model runs where it is, in evaluation mode, and keeps its device and mode
    (:func:`protolib.core.inference.run_device`; ``device``, when given, must be the model's).
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty: it holds no image to embed")
    device = run_device(model, device)
    split = gap_split(model)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = split.pooled(x)
        return z.float(), split.head(z).float()

    with evaluating(model):
        (z, logits), labels = map_batches(run, dataset, batch_size, device, "embed", progress)
    return Embeddings(z, logits, labels)


def embed_cached(
    trained,
    dataset: str | Run,
    split: str,
    seed: int = 0,
    batch_size: int = 256,
    device=None,
    progress: bool = True,
) -> Embeddings:
    """:func:`embed` of ``data.load(dataset, split, seed=seed)`` (evaluation transforms), cached.

    ``trained`` is the :class:`protolib.core.train.TrainResult` of the backbone; ``dataset`` a dataset
    name or a :class:`protolib.core.run.Run` (its dataset, and its device unless ``device`` is given;
    ``seed`` here is the data's split seed, not the run's). The cache file sits
    beside the checkpoint (``<cache>/features/``) and is keyed by the checkpoint's name, its
    training record (a retrained checkpoint gets new features), the dataset, split and seed, and
    the data's :func:`protolib.core.store.fingerprint`: a run's own (:attr:`Run.fingerprints`,
    computed once per run) when ``dataset`` is a run and ``seed`` its data's, else computed here.
    """
    from protolib.core import data

    run = dataset if isinstance(dataset, Run) else None
    if run is not None:
        device = run.device if device is None else device
        dataset = run.dataset
    ds = data.load(dataset, split, seed=seed)
    known = run is not None and seed == 0 and split in ("train", "test")  # the splits a run fingerprints
    key = store.key("features", checkpoint=trained.path.name, meta=trained.meta, dataset=dataset, split=split,
                    seed=seed, title=ds.title, data=run.fingerprints[split] if known else store.fingerprint(ds))
    path = store.path("features", f"{trained.path.stem}-{split}", key, trained.path.parent.parent)

    def build() -> dict:
        e = embed(trained.model, ds, batch_size=batch_size, device=device, progress=progress)
        return {"state_dict": {"z": e.z, "logits": e.logits, "labels": e.labels}, "meta": {"data": ds.title}}

    ckpt, _ = store.load_or_build(path, build)
    return Embeddings(**ckpt["state_dict"])
