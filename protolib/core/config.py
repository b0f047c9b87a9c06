"""Run profiles, data and cache locations, and the device.

Two profiles exist. ``quick`` (the default) runs the whole book on a 2-core CPU without a
network in minutes: a ResNet18 trained from scratch for a few epochs on the data at hand.
``paper`` follows the paper: an ImageNet-pretrained ResNet34, the KMEx epochs, five runs,
5/5/10 prototypes per class; it expects a GPU and downloaded datasets.

Environment variables (read each time, so a notebook can change them before a call):

``PROTOLIB_PROFILE``  ``quick`` or ``paper``.
``PROTOLIB_DATA``     data root (default ``~/.cache/protolib/data``).
``PROTOLIB_CACHE``    cache root for checkpoints and features (default ``~/.cache/protolib/cache``).
``PROTOLIB_DEVICE``   force a device (``cpu``, ``cuda``, ``cuda:1``); default CUDA when available.
``PROTOLIB_EPOCHS``   train every dataset for this many epochs instead of the profile's (e.g. ``1``
                      for a smoke run of the paper profile); the banner says so.
``PROTOLIB_WORKERS``  DataLoader worker processes for every loader (default: see :func:`loader_options`).
``PROTOLIB_TRAIN_PRECISION``  ``auto``, ``float32`` or ``bfloat16``: how training computes
                      (see :mod:`protolib.core.precision`).
``PROTOLIB_WEIGHTS``  a local ImageNet weights file for the profile's backbone (checked against
                      torchvision's published checksum, see :mod:`protolib.core.models`).
``PROTOLIB_WEIGHTS_UNOFFICIAL``  ``1`` accepts a weights file whose checksum is not the official
                      one; every banner and checkpoint record then says so.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

PROFILE_ENV = "PROTOLIB_PROFILE"
DATA_ENV = "PROTOLIB_DATA"
CACHE_ENV = "PROTOLIB_CACHE"
DEVICE_ENV = "PROTOLIB_DEVICE"
EPOCHS_ENV = "PROTOLIB_EPOCHS"
WORKERS_ENV = "PROTOLIB_WORKERS"
WEIGHTS_ENV = "PROTOLIB_WEIGHTS"
UNOFFICIAL_ENV = "PROTOLIB_WEIGHTS_UNOFFICIAL"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a quick run and the paper's settings."""

    name: str
    arch: str
    pretrained: bool
    epochs: dict[str, int]
    k_per_class_by_dataset: dict[str, int]
    runs: int
    batch_size: int = 128
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    epochs_override: int | None = None
    # the explanation maps of Table 2: training images per class for their k-means, and the size of
    # the seeded train subset their train accuracy is measured on (None: all)
    map_images_per_class: int | None = None
    map_eval_train: int | None = None
    # ProtoPNet: overrides of the reference recipe (protolib.baselines.protopnet.recipe_for), where its
    # backbone starts ("cnn", "imagenet" or "random"), and whether its training set augments
    protopnet_schedule: dict[str, int] = field(default_factory=dict)
    protopnet_init: str = "imagenet"
    protopnet_augment: bool = False

    def epochs_for(self, dataset: str) -> int:
        """Training epochs for ``dataset``: the override when set, else the profile's."""
        if self.epochs_override is not None:
            return self.epochs_override
        return self.epochs.get(dataset, self.epochs["default"])

    def k_per_class(self, dataset: str) -> int:
        return self.k_per_class_by_dataset.get(dataset, self.k_per_class_by_dataset["default"])


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        arch="resnet18",
        pretrained=False,
        epochs={"default": 4, "digits": 12, "mnist": 3, "stl10": 8, "cub200": 8, "birds": 8},
        k_per_class_by_dataset={"default": 5, "cub200": 10},
        runs=1,
        description="ResNet18 from scratch, few epochs, one run: minutes on a 2-core CPU",
        map_images_per_class=30,  # as many training images as CUB has per class
        map_eval_train=600,
        # 10 warm-up epochs (cheap: the frozen backbone's features are computed once), 2 joint, one
        # push, 20 last-layer epochs (cheap for the same reason); the backbone starts from the CNN
        protopnet_schedule=dict(dim=128, warm_epochs=10, epochs=12, push_every=12, last_layer_epochs=20),
        protopnet_init="cnn",
    ),
    "paper": Profile(
        name="paper",
        arch="resnet34",
        pretrained=True,
        # KMEx: 10 epochs by default, 30 for STL-10; CUB is our choice (the reference has no recipe).
        epochs={"default": 10, "stl10": 30, "cub200": 30},
        k_per_class_by_dataset={"default": 5, "cub200": 10},
        runs=5,
        description="ImageNet ResNet34, KMEx recipe, five runs: expects a GPU and full data",
        protopnet_schedule=dict(epochs=30),  # the reference: pushes after epochs 10, 20, 30
        protopnet_init="imagenet",  # as Chen et al.
        protopnet_augment=True,
    ),
}


def get_profile(name: str | Profile | None = None, epochs: int | None = None) -> Profile:
    """The profile named, else the one in ``$PROTOLIB_PROFILE``, else ``quick``.

    ``epochs`` (else ``$PROTOLIB_EPOCHS``) replaces every dataset's epochs, e.g. 1 for a smoke
    run of the paper profile; the profile itself is left as it is. A :class:`Profile` is already
    resolved: it comes back unchanged (with ``epochs`` applied when given), so an entry point
    resolves the profile once and hands the object down.
    """
    if isinstance(name, Profile):
        return name if epochs is None else replace(name, epochs_override=epochs)
    name = (name or os.environ.get(PROFILE_ENV) or "quick").strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from ${PROFILE_ENV} or the argument); "
            f"choose one of {sorted(PROFILES)}"
        )
    epochs = epochs if epochs is not None else epochs_override()
    return PROFILES[name] if epochs is None else replace(PROFILES[name], epochs_override=epochs)


def epochs_override() -> int | None:
    """``$PROTOLIB_EPOCHS`` as a positive integer, or None when unset."""
    raw = os.environ.get(EPOCHS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"${EPOCHS_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


def weights_file() -> Path | None:
    """``$PROTOLIB_WEIGHTS``: a local ImageNet weights file, or None."""
    raw = os.environ.get(WEIGHTS_ENV, "").strip()
    return Path(raw).expanduser() if raw else None


def weights_unofficial() -> bool:
    """Whether ``$PROTOLIB_WEIGHTS_UNOFFICIAL`` accepts a weights file that is not torchvision's."""
    return os.environ.get(UNOFFICIAL_ENV, "").strip().lower() in ("1", "true", "yes")


def loader_options(device: str | torch.device | None = None) -> dict:
    """``num_workers`` and ``pin_memory`` for every DataLoader of protolib (the one place they are chosen).

    ``$PROTOLIB_WORKERS`` sets the workers. By default a CUDA device gets up to 8 workers (one
    per spare CPU core) and pinned memory, so JPEG decoding and augmentation keep the GPU fed;
    the CPU gets 0 workers: worker processes draw augmentation randomness from their own seeded
    streams, which would change the CPU (quick-profile) numbers, and on a 2-core machine they
    would only compete with the training itself. A ``device`` given explicitly is taken as it is
    (the options for a device need no such device present).
    """
    dev = torch.device(device) if device is not None else get_device()
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not raw.isdigit():
            raise ValueError(f"${WORKERS_ENV} must be a non-negative integer, got {raw!r}")
        workers = int(raw)
    else:
        workers = min(8, max(0, (os.cpu_count() or 1) - 1)) if dev.type == "cuda" else 0
    return {"num_workers": workers, "pin_memory": dev.type == "cuda", "persistent_workers": False}


def make_loader(dataset, batch_size: int, device: str | torch.device | None = None, shuffle: bool = False,
                seed: int | None = None, drop_last: bool = False) -> DataLoader:
    """A DataLoader with :func:`loader_options`.

    With a ``seed`` its randomness (shuffling, worker seeds) comes from a generator seeded by it;
    without, from the global RNG, as a plain DataLoader's does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle and seed is None:
        raise ValueError("a shuffled loader needs a seed")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=g,
                      **loader_options(device))


def _default_root(sub: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "protolib" / sub


def data_root() -> Path:
    """Where datasets live: ``$PROTOLIB_DATA`` or ``~/.cache/protolib/data``."""
    return Path(os.environ.get(DATA_ENV) or _default_root("data")).expanduser()


def cache_root() -> Path:
    """Where checkpoints and cached features go: ``$PROTOLIB_CACHE`` or ``~/.cache/protolib/cache``."""
    return Path(os.environ.get(CACHE_ENV) or _default_root("cache")).expanduser()


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else ``$PROTOLIB_DEVICE``, else CUDA when available, else CPU."""
    source = "device" if device else f"${DEVICE_ENV}"
    chosen = device or os.environ.get(DEVICE_ENV)
    if not chosen:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(chosen)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{source}={chosen!r} is not a device; use e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source}={chosen!r} asks for CUDA, but no CUDA GPU is available here; use 'cpu'")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bfloat16 on CUDA GPUs that support it, else float16; None on CPU
    (inference and evaluation on the CPU stay in float32; training's path is :mod:`protolib.core.precision`)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True):
    """``torch.autocast`` with :func:`amp_dtype` on CUDA; a no-op context on the CPU or when disabled."""
    dtype = amp_dtype(device) if enabled else None
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def conv_eps(device: str | torch.device | None = None) -> float:
    """Relative precision of float32 convolutions on ``device``: 2**-10 where cuDNN may use TF32
    (Ampere and later GPUs, PyTorch's default), else float32's epsilon. Checks of computed values
    against a float64 reference scale their tolerance by it, so they hold on a CPU and on a GPU."""
    dev = get_device(device)
    if dev.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return 2.0 ** -10
    return torch.finfo(torch.float32).eps


def describe(profile: str | Profile | None = None) -> str:
    """One block of text to print at the top of every chapter."""
    p = get_profile(profile)
    dev = get_device()
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    epochs = "" if p.epochs_override is None else (
        f"epochs           : {p.epochs_override} for every dataset (${EPOCHS_ENV} override; "
        f"the profile's are {p.epochs})\n")
    return (
        f"protolib profile : {p.name} - {p.description}\n"
        f"backbone         : {p.arch} ({weights_note() if p.pretrained else 'random init'}), "
        f"runs: {p.runs}\n{epochs}"
        f"device           : {dev}{gpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads\n{gpu_note(dev)}"
        f"data root        : {data_root()}\n"
        f"cache root       : {cache_root()}"
    )


def gpu_note(dev: torch.device) -> str:
    """The banner's line for a GPU run (empty on a CPU): numbers move in their last digits."""
    if dev.type != "cuda":
        return ""
    return ("GPU run          : on a GPU; numbers may differ from the CPU-recorded ones in the last "
            "digits (TF32, cuDNN); equality checks run in protolib.core.determinism.exact()\n")


def weights_note() -> str:
    """How the ImageNet weights are obtained, for banners and tables (says when they are not official)."""
    file = weights_file()
    if file is None:
        return "ImageNet weights (torchvision)"
    if weights_unofficial():
        return f"NOT the official ImageNet weights: {file} (${UNOFFICIAL_ENV}=1)"
    return f"ImageNet weights from {file}"


def show(profile: str | Profile | None = None) -> Profile:
    """Print :func:`describe` and return the active profile (first cell of each chapter)."""
    print(describe(profile))
    return get_profile(profile)
