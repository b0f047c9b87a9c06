"""The KMEx training recipe and a load-or-train checkpoint cache.

Recipe (KMEx reference, ``main.py``): cross-entropy, SGD with lr 0.01 and momentum 0.5, no
weight decay, cosine annealing stepped every iteration down to 1e-4, batch 128 with the last
incomplete batch dropped. Training is seeded: the same seed gives the same weights.

The cache (:mod:`protolib.core.store`) keys a checkpoint by dataset, architecture, profile, seed,
recipe, the ImageNet weights file, and a fingerprint of the content of the train and test
splits: new data files train a new model, never reuse one trained on other images. Writes are
atomic (temporary file + rename), guarded by a file lock so that two notebooks asking for the
same model at once train it once, loaded with ``torch.load(weights_only=True)``; a corrupt file
is reported and retrained rather than crashing.

Training takes the device's fast path (:mod:`protolib.core.precision`, ``Recipe.amp``): bfloat16
autocast and channels-last on a CPU with native bfloat16 for images of 64 px and more, mixed
precision on CUDA (float16 with a gradient scaler where bfloat16 is missing), float32 elsewhere or
when ``$PROTOLIB_TRAIN_PRECISION`` says so. The trained model comes back in float32 NCHW, and the
path is part of its cache key.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protolib.core import config, precision, store
from protolib.core.checks import check_int, check_labels, check_number
from protolib.core.inference import map_batches
from protolib.core.models import build_model, weights_record
from protolib.core.run import Run, as_run


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
    amp: bool = True  # the device's fast path (protolib.core.precision); False: float32

    def __post_init__(self):
        check_int("epochs", self.epochs, 1), check_int("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, 0, strict=True), check_number("momentum", self.momentum, 0)
        check_number("weight_decay", self.weight_decay, 0), check_number("eta_min", self.eta_min, 0)


@dataclass
class TrainResult:
    """What :func:`load_or_train` returns: the model in eval mode and how it came to be.

    ``meta`` is the checkpoint's record as stored: its ``"test_accuracy"`` is in percent, as every
    checkpoint has stored it (cached and shipped checkpoints hold it so, and ProtoPNet's cache key
    quotes it). Read it as the library speaks, a fraction in [0, 1], through :attr:`test_accuracy`."""

    model: nn.Module
    path: Path
    from_cache: bool
    meta: dict

    @property
    def test_accuracy(self) -> float:
        """The CNN's test accuracy when it was trained, a fraction in [0, 1] (the record's percent / 100)."""
        return self.meta["test_accuracy"] / 100


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
        raise TypeError(f"recipe must be a protolib.core.train.Recipe, got {type(recipe).__name__}")
    check_int("seed", seed, 0)
    if len(train_set) == 0:
        raise ValueError("train_set is empty: it holds no sample")
    if hasattr(train_set, "targets"):
        check_labels("train_set.targets", train_set.targets)
    device = config.get_device(device)
    with torch.random.fork_rng():  # reading an item may draw augmentation randomness
        fast = precision.for_training(device, recipe.amp, precision.image_size(train_set))
    model.to(device, memory_format=fast.memory_format).train()
    loader = config.make_loader(train_set, recipe.batch_size, device, shuffle=True, seed=seed,
                                drop_last=len(train_set) > recipe.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * len(loader), eta_min=recipe.eta_min)
    loss_fn = nn.CrossEntropyLoss()
    scaler = fast.scaler()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for epoch in range(recipe.epochs):
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress, leave=False)
            for x, y in bar:
                x, y = fast.batch(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
                with fast.autocast():
                    loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                total, count = total + loss.detach().double() * len(y), count + len(y)  # no host sync per batch
            mean_loss = float(total) / count
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            if on_epoch is not None:
                on_epoch(epoch, mean_loss)
    model.to(memory_format=torch.contiguous_format)  # what the explanations read: plain float32 NCHW
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 256, device=None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and labels (N,) of ``dataset``, on the CPU."""
    device = config.get_device(device)
    model.to(device).eval()
    return map_batches(lambda x: model(x).float(), dataset, batch_size, device, "predict", progress, seed=0)


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 256, device=None) -> float:
    """Plain top-1 accuracy, a fraction in [0, 1] (the KMEx code's Hungarian matching is not used)."""
    logits, labels = predict(model, dataset, batch_size, device)
    return (logits.argmax(1) == labels).float().mean().item()


def load_or_train(
    dataset: str | Run,
    arch: str | None = None,
    profile: str | config.Profile | None = None,
    seed: int | None = None,
    recipe: Recipe | None = None,
    pretrained: bool | None = None,
    device=None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    weights_path: str | Path | None = None,
    unofficial_weights: bool | None = None,
) -> TrainResult:
    """The backbone of a run (a :class:`protolib.core.run.Run`, or a dataset name with ``profile``,
    ``seed`` (default 0) and ``device``): from the cache, else trained and cached.

    Unset arguments come from the profile (architecture, ImageNet weights, epochs; the epochs
    follow ``$PROTOLIB_EPOCHS`` when set). ImageNet weights come from ``weights_path`` or
    ``$PROTOLIB_WEIGHTS`` when given (see :func:`protolib.core.models.build_model`). The checkpoint is
    keyed by the content of both splits (:attr:`protolib.core.run.Run.fingerprints`) and also stores the
    test accuracy (in percent, see :class:`TrainResult`), the training time and which weights it started from.
    """
    run = as_run(dataset, profile, seed, device)
    prof, seed, device, spec = run.profile, run.seed, run.device, run.spec
    arch = arch or prof.arch
    pretrained = prof.pretrained if pretrained is None else pretrained
    recipe = recipe or Recipe(epochs=run.epochs)
    train_set = run.load("train", augment=recipe.augment, seed=0)
    test_set = run.load("test", seed=0)
    weights = weights_record(arch, weights_path, unofficial_weights) if pretrained else None
    path_name = precision.for_training(device, recipe.amp, spec.image_size).name
    key = store.key("backbone", dataset=run.dataset, arch=arch, pretrained=pretrained, profile=prof.name, seed=seed,
                    recipe=asdict(recipe), precision=path_name, image_size=spec.image_size, data_version=spec.version,
                    train_data=run.fingerprints["train"], test_data=run.fingerprints["test"],
                    weights=None if weights is None else {"sha256": weights["sha256"], "official": weights["official"]})
    path = store.path("backbone", f"{run.dataset}-{arch}-{prof.name}-seed{seed}", key, cache_dir)

    def build() -> dict:
        torch.manual_seed(seed)
        model = build_model(arch, spec.num_classes, pretrained=pretrained, weights_path=weights_path,
                            unofficial_weights=unofficial_weights)
        start = time.perf_counter()
        fit(model, train_set, recipe, seed=seed, device=device, progress=progress)
        seconds = time.perf_counter() - start
        meta = {
            "dataset": run.dataset, "data": test_set.title, "train_data": train_set.title, "arch": arch,
            "pretrained": pretrained, "weights": weights,
            "profile": prof.name, "seed": seed, "recipe": asdict(recipe), "precision": path_name, "train_seconds": seconds,
            # the checkpoint's metadata keeps percent (see TrainResult): the one conversion
            "device": str(device), "test_accuracy": 100 * accuracy(model, test_set, device=device),
        }
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}

    with torch.random.fork_rng():
        ckpt, cached = store.load_or_build(path, build)
    model = build_model(arch, spec.num_classes, pretrained=False)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return TrainResult(model=model, path=path, from_cache=cached, meta=dict(ckpt["meta"]))


__all__ = [
    "Recipe", "TrainResult", "fit", "predict", "accuracy", "load_or_train",
]
