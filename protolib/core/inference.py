"""One batched inference loop: a function applied to every batch of a dataset, in order.

Used wherever a whole dataset goes through a network once (predictions, embeddings, ProtoPNet's
backbone outputs, distances and cosines): batches from :func:`protolib.core.config.make_loader`, a
progress bar, images moved to the device, results collected on the CPU and concatenated.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protolib.core import config


@torch.no_grad()
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]], dataset: Dataset,
                batch_size: int, device: torch.device, desc: str = "", progress: bool = False,
                seed: int | None = None):
    """``(outputs, labels)``: ``fn(x)`` for every batch ``x`` of ``dataset`` (on ``device``, no
    gradients), concatenated along the first axis on the CPU, and the labels (N,) in order.

    ``fn`` returns one tensor, or a tuple of tensors (then ``outputs`` is a tuple of the same
    length). ``seed`` goes to :func:`protolib.core.config.make_loader` (it seeds the workers).
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty: it holds no image to run through the model")
    outs, labels = [], []
    loader = config.make_loader(dataset, batch_size, device, seed=seed)
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out = fn(x.to(device, non_blocking=True))
        outs.append(tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu())
        labels.append(torch.as_tensor(y))
    cat = tuple(map(torch.cat, zip(*outs))) if isinstance(outs[0], tuple) else torch.cat(outs)
    return cat, torch.cat(labels)
