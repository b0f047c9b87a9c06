"""What identifies a stored reproduction step: its settings, seed, key, file and the code behind it.

A step's result is reused only when its key (:func:`step_key`) matches, and the key holds
everything that makes the step's numbers, the digest of protolib's own source code included
(:func:`protolib.store.code_digest`), so that a change of code reruns the step.
"""

from __future__ import annotations

import json
import os
from importlib import resources
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from . import config, data, maps_eval, models, protopnet, store

FORMAT = 2  # bump when the meaning of a step file changes (2: keys hold the data's content and the weights)


@dataclass(frozen=True)
class Settings:
    """What shapes a run besides the profile's backbone and epochs (defaults: the chapters' choices).

    ``images_per_class``: training images per class for the maps' k-means (``None``: all);
    ``eval_train``: size of the seeded train subset for the maps' train accuracy (``None``: all);
    ``kmex_n_init``: k-means restarts of KMEx; ``protopnet``: overrides of the ProtoPNet recipe;
    ``protopnet_init``: where ProtoPNet's backbone starts (``None``: the profile's default).
    The quick profile uses 30 / 600 (as the explanation-maps chapter), the paper profile everything.
    """

    images_per_class: int | None = None
    eval_train: int | None = None
    kmex_n_init: int = 10
    protopnet: dict = field(default_factory=dict)
    protopnet_init: str | None = None

    @classmethod
    def for_profile(cls, profile: str | config.Profile, **overrides) -> "Settings":
        images, evaluated = maps_eval.budget(profile)
        return cls(**{"images_per_class": images, "eval_train": evaluated, **overrides})


def seed_for(run: int) -> int:
    """The seed of run ``run`` (0, 1, 2, ...): run 0 uses seed 0, the chapters' seed."""
    if run < 0:
        raise ValueError(f"run index must be >= 0, got {run}")
    return run


def git_commit() -> str:
    """The commit of the protolib checkout (``-dirty`` when it has changes), or ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(here)], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def step_key(profile: str | config.Profile, dataset: str, seed: int, step: str, settings: Settings,
             data_content: Sequence[str] | None = None) -> dict:
    """Everything that makes a step's numbers (a stored step with another key is recomputed).

    ``data_content``: the content fingerprints of the train and test splits
    (:func:`data_fingerprints`, computed here when not given): new files under the same dataset
    name never reuse old results. Pretrained profiles add the ImageNet weights' record. ``code``:
    the digest of protolib's source (:func:`protolib.store.code_digest`): a change of code reruns
    the step rather than reading back what older code computed.
    """
    prof = config.get_profile(profile)
    spec = data.get_spec(dataset)
    key = {"format": FORMAT, "profile": prof.name, "arch": prof.arch, "pretrained": prof.pretrained,
           "epochs": prof.epochs_for(dataset), "dataset": dataset, "data_version": spec.version,
           "data_content": list(data_content if data_content is not None else data_fingerprints(dataset)),
           "seed": seed, "step": step, "code": store.code_digest()}
    if prof.pretrained:
        key["weights"] = models.weights_record(prof.arch)
    if step == "kmex":
        key["kmex_n_init"] = settings.kmex_n_init
    if step == "maps":
        key.update(k_per_class=prof.k_per_class(dataset), images_per_class=settings.images_per_class,
                   eval_train=settings.eval_train)
    if step == "protopnet":
        key["recipe"] = protopnet.recipe_for(prof, dataset, **settings.protopnet).key_fields()
        key["init"] = settings.protopnet_init
    return json.loads(json.dumps(key, default=str))


def data_fingerprints(dataset: str) -> tuple[str, str]:
    """Content fingerprints (:func:`protolib.store.fingerprint`) of ``dataset``'s train and test splits."""
    return store.fingerprint(data.load(dataset, "train")), store.fingerprint(data.load(dataset, "test"))


def step_path(out: Path, profile: str, dataset: str, seed: int, step: str) -> Path:
    return Path(out) / "steps" / f"{profile}-{dataset}-seed{seed}-{step}.json"


def load_step(path: Path, key: dict, ignore: Sequence[str] = ()) -> dict | None:
    """The stored result at ``path`` when it exists, parses and was made with ``key`` (the fields
    in ``ignore`` not compared, e.g. ``"code"`` to read a record made by other code); else ``None``."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    drop = lambda k: {a: b for a, b in k.items() if a not in ignore}  # noqa: E731
    return stored if isinstance(stored.get("key"), dict) and drop(stored["key"]) == drop(key) else None


def record_dir(profile: str) -> Path:
    """The folder of the reproduction record shipped with the package (``protolib/results/<profile>``)."""
    return Path(str(resources.files("protolib") / "results" / profile))


def machine() -> str:
    """The CPU model and core count (and the GPU's name on CUDA), for provenance."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f"; {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{model}, {os.cpu_count()} CPUs{gpu}"
