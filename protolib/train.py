"""The KMEx training recipe and a load-or-train checkpoint cache.

Recipe (KMEx reference, ``main.py``): cross-entropy, SGD with lr 0.01 and momentum 0.5, no
weight decay, cosine annealing stepped every iteration down to 1e-4, batch 128 with the last
incomplete batch dropped. Training is seeded: the same seed gives the same weights.

The cache keys a checkpoint by dataset, architecture, profile, seed and recipe. Writes are
atomic (temporary file + rename), guarded by a file lock so that two notebooks asking for the
same model at once train it once, loaded with ``torch.load(weights_only=True)``; a corrupt file
is reported and retrained rather than crashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import config, data
from ._checks import check_int, check_labels, check_number
from .models import build_model

CACHE_FORMAT = 1  # bump when the meaning of a cached file changes


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (defaults = KMEx)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.5
    weight_decay: float = 0.0
    eta_min: float = 1e-4
    augment: bool = True

    def __post_init__(self):
        check_int("epochs", self.epochs, 1), check_int("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, 0, strict=True), check_number("momentum", self.momentum, 0)
        check_number("weight_decay", self.weight_decay, 0), check_number("eta_min", self.eta_min, 0)


@dataclass
class TrainResult:
    """What :func:`load_or_train` returns: the model in eval mode and how it came to be."""

    model: nn.Module
    path: Path
    from_cache: bool
    meta: dict


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=g)


def fit(
    model: nn.Module,
    train_set: Dataset,
    recipe: Recipe,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train ``model`` on ``train_set`` with ``recipe``; returns it in eval mode.

    Randomness (batch order, augmentation, dropout) comes from ``seed`` alone: the global RNG
    is forked, so the caller's random state is left as it was.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a protolib.train.Recipe, got {type(recipe).__name__}")
    check_int("seed", seed, 0)
    if len(train_set) == 0:
        raise ValueError("train_set is empty: it holds no sample")
    if hasattr(train_set, "targets"):
        check_labels("train_set.targets", train_set.targets)
    device = config.get_device(device)
    model.to(device).train()
    loader = _loader(train_set, recipe.batch_size, shuffle=True, seed=seed, drop_last=len(train_set) > recipe.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * len(loader), eta_min=recipe.eta_min)
    loss_fn = nn.CrossEntropyLoss()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for epoch in range(recipe.epochs):
            total, count = 0.0, 0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress, leave=False)
            for x, y in bar:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total, count = total + loss.item() * len(y), count + len(y)
                bar.set_postfix(loss=f"{total / count:.3f}")
            if on_epoch is not None:
                on_epoch(epoch, total / count)
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 256, device=None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and labels (N,) of ``dataset``, on the CPU."""
    device = config.get_device(device)
    model.to(device).eval()
    logits, labels = [], []
    for x, y in tqdm(_loader(dataset, batch_size, shuffle=False), desc="predict", disable=not progress, leave=False):
        logits.append(model(x.to(device)).float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 256, device=None) -> float:
    """Plain top-1 accuracy in percent (the KMEx code's Hungarian matching is not used)."""
    logits, labels = predict(model, dataset, batch_size, device)
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()


# --- the cache ------------------------------------------------------------------------------

def cache_key(**fields) -> str:
    """A short stable hash of everything that changes a checkpoint."""
    blob = json.dumps({"format": CACHE_FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_load(path: Path) -> dict | None:
    """Load a cached checkpoint, or ``None`` (with a warning) when it is missing or corrupt."""
    if not path.exists():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or "state_dict" not in obj:
            raise ValueError("not a protolib checkpoint")
        return obj
    except Exception as err:
        warnings.warn(f"cached checkpoint {path} is unreadable ({err}); it will be rebuilt", stacklevel=2)
        return None


def load_or_build(path: Path, build: Callable[[], dict]) -> tuple[dict, bool]:
    """Return the checkpoint at ``path``, building and saving it under a file lock if needed.

    Returns ``(checkpoint, from_cache)``. Other processes asking for the same path wait for the
    lock and then read what the first one wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        ckpt = safe_load(path)
        if ckpt is not None:
            return ckpt, True
        ckpt = build()
        atomic_save(ckpt, path)
        return ckpt, False


def load_or_train(
    dataset: str,
    arch: str | None = None,
    profile: str | None = None,
    seed: int = 0,
    recipe: Recipe | None = None,
    pretrained: bool | None = None,
    device=None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """The backbone for ``dataset`` under ``profile``: from the cache, else trained and cached.

    Unset arguments come from the profile (architecture, ImageNet weights, epochs). The
    checkpoint also stores the test accuracy and the training time.
    """
    prof = config.get_profile(profile)
    check_int("seed", seed, 0)
    arch = arch or prof.arch
    pretrained = prof.pretrained if pretrained is None else pretrained
    recipe = recipe or Recipe(epochs=prof.epochs_for(dataset))
    spec = data.get_spec(dataset)
    key = cache_key(dataset=dataset, arch=arch, pretrained=pretrained, profile=prof.name, seed=seed,
                    recipe=asdict(recipe), image_size=spec.image_size, data_version=spec.version)
    root = Path(cache_dir) if cache_dir is not None else config.cache_root()
    path = root / "models" / f"{dataset}-{arch}-{prof.name}-seed{seed}-{key}.pt"

    def build() -> dict:
        torch.manual_seed(seed)
        model = build_model(arch, spec.num_classes, pretrained=pretrained)
        train_set = data.load(dataset, "train", augment=recipe.augment, seed=0)
        start = time.perf_counter()
        fit(model, train_set, recipe, seed=seed, device=device, progress=progress)
        seconds = time.perf_counter() - start
        test_set = data.load(dataset, "test", seed=0)
        meta = {
            "dataset": dataset, "data": test_set.title, "arch": arch, "pretrained": pretrained,
            "profile": prof.name, "seed": seed, "recipe": asdict(recipe), "train_seconds": seconds,
            "device": str(config.get_device(device)),
            "test_accuracy": accuracy(model, test_set, device=device),
        }
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}

    with torch.random.fork_rng():
        ckpt, cached = load_or_build(path, build)
    model = build_model(arch, spec.num_classes, pretrained=False)
    model.load_state_dict(ckpt["state_dict"])
    model.to(config.get_device(device)).eval()
    return TrainResult(model=model, path=path, from_cache=cached, meta=dict(ckpt["meta"]))


__all__ = [
    "Recipe", "TrainResult", "fit", "predict", "accuracy", "cache_key", "atomic_save",
    "safe_load", "load_or_build", "load_or_train",
]
