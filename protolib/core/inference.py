"""One batched inference loop: a function applied to every batch of a dataset, in order.

Used wherever a whole dataset goes through a network once (predictions, embeddings, ProtoPNet's
backbone outputs, distances and cosines): batches from :func:`protolib.core.config.make_loader`, a
progress bar, images moved to the device, results collected on the CPU and concatenated.

A caller's model is run where it is: :func:`run_device` names that device (and refuses another),
:func:`evaluating` puts the model in evaluation mode for a block and gives every module its mode
back after. Only training (:mod:`protolib.core.train`, ProtoPNet's stages and push) moves and
changes the model it is given, as an optimiser does.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protolib.core import config


def _first_tensor(model: nn.Module) -> torch.Tensor | None:
    first = next(model.parameters(), None)
    return next(model.buffers(), None) if first is None else first


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are: its first parameter's (or buffer's) device; the CPU for a
    model that holds neither."""
    first = _first_tensor(model)
    return torch.device("cpu") if first is None else first.device


def _same(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` (the current CUDA device) name one device."""
    index = lambda d: d.index if d.index is not None else (  # noqa: E731
        torch.cuda.current_device() if d.type == "cuda" and torch.cuda.is_available() else 0)
    return a.type == b.type and index(a) == index(b)


def run_device(model: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """The device to run ``model`` on: where its weights are. ``device``, when given, must be that
    device: protolib does not move a caller's model (``model.to(device)`` first). A model without
    weights runs anywhere: on ``device``, else the CPU.

    >>> run_device(nn.Linear(2, 2)), run_device(nn.Linear(2, 2), "cpu"), run_device(nn.Identity(), "meta")
    (device(type='cpu'), device(type='cpu'), device(type='meta'))
    """
    first = _first_tensor(model)
    if first is None:
        return torch.device("cpu" if device is None else device)
    here = first.device
    if device is not None and not _same(torch.device(device), here):
        raise ValueError(f"the model's weights are on {here}, not on {torch.device(device)}: protolib runs a "
                         f"model where it is; move it first (model.to({str(device)!r})) or leave device out")
    return here


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in evaluation mode inside the block; each module's mode is given back after (a
    frozen part of a model in training stays frozen).

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with evaluating(net):
    ...     net.training
    False
    >>> net.training, net[1].training
    (True, True)
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode


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


__all__ = ["map_batches", "model_device", "run_device", "evaluating"]
