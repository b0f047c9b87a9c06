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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROFILE_ENV = "PROTOLIB_PROFILE"
DATA_ENV = "PROTOLIB_DATA"
CACHE_ENV = "PROTOLIB_CACHE"
DEVICE_ENV = "PROTOLIB_DEVICE"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a quick run and the paper's settings."""

    name: str
    arch: str
    pretrained: bool
    epochs: dict[str, int]
    prototypes_per_class: dict[str, int]
    runs: int
    batch_size: int = 128
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def epochs_for(self, dataset: str) -> int:
        return self.epochs.get(dataset, self.epochs["default"])

    def k_per_class(self, dataset: str) -> int:
        return self.prototypes_per_class.get(dataset, self.prototypes_per_class["default"])


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        arch="resnet18",
        pretrained=False,
        epochs={"default": 4, "digits": 12, "mnist": 3, "stl10": 8, "cub200": 8, "birds": 8},
        prototypes_per_class={"default": 5, "cub200": 10},
        runs=1,
        description="ResNet18 from scratch, few epochs, one run: minutes on a 2-core CPU",
    ),
    "paper": Profile(
        name="paper",
        arch="resnet34",
        pretrained=True,
        # KMEx: 10 epochs by default, 30 for STL-10; CUB is our choice (the reference has no recipe).
        epochs={"default": 10, "stl10": 30, "cub200": 30},
        prototypes_per_class={"default": 5, "cub200": 10},
        runs=5,
        description="ImageNet ResNet34, KMEx recipe, five runs: expects a GPU and full data",
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named, else the one in ``$PROTOLIB_PROFILE``, else ``quick``."""
    name = (name or os.environ.get(PROFILE_ENV) or "quick").strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from ${PROFILE_ENV} or the argument); "
            f"choose one of {sorted(PROFILES)}"
        )
    return PROFILES[name]


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


def describe(profile: str | None = None) -> str:
    """One block of text to print at the top of every chapter."""
    p = get_profile(profile)
    dev = get_device()
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    return (
        f"protolib profile : {p.name} - {p.description}\n"
        f"backbone         : {p.arch} ({'ImageNet weights' if p.pretrained else 'random init'}), "
        f"runs: {p.runs}\n"
        f"device           : {dev}{gpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads\n"
        f"data root        : {data_root()}\n"
        f"cache root       : {cache_root()}"
    )


def show(profile: str | None = None) -> Profile:
    """Print :func:`describe` and return the active profile (first cell of each chapter)."""
    print(describe(profile))
    return get_profile(profile)
