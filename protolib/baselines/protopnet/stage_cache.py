"""The shared cache of a ProtoPNet run: every stage's result is a checkpoint.

:class:`StageCache` keys the checkpoint after step k by everything that produced it (dataset,
backbone and its initialisation, recipe, seed) and by the names of steps 1..k, so a run that
stops half-way resumes from its last finished stage, and two notebooks asking for the same run
share it (file lock, atomic write: :func:`protolib.core.store.load_or_build`). The key holds the
content fingerprints of the train, push and test sets, so new data files start a new run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from protolib.baselines.protopnet.model import ProtoPNet
from protolib.core import store


class StageCache:
    """Load-or-run for the successive stages of one ProtoPNet run on ``model``.

    ``key`` holds everything that determines the run besides the step names (JSON-able values),
    e.g. the key of :func:`protolib.baselines.protopnet.schedule.initial_model`. :meth:`run` either loads the
    state after the step into ``model`` or runs ``fn`` (which trains ``model`` in place and returns
    a JSON-able / tensor dict), saves, and returns that dict. ``label`` starts the file names; by
    default ``{dataset}-{arch}-{profile}-seed{seed}`` from ``key`` (:func:`run_label`). The files are
    the store's ``protopnet`` kind (:func:`protolib.core.store.path`) under the cache root ``cache_dir``.
    """

    def __init__(self, model: ProtoPNet, key: dict, label: str | None = None, cache_dir: str | Path | None = None):
        self.model, self.key, self.label = model, dict(key), label or run_label(key)
        self.cache_dir = cache_dir        # the cache root (None: protolib.core.config.cache_root)
        self.steps: list[str] = []
        self.last_from_cache = False

    def path(self, steps: list[str]) -> Path:
        """Checkpoint file of the state after ``steps``."""
        key = store.key("protopnet", **self.key, steps=steps)
        return store.path("protopnet", f"{self.label}-{len(steps):02d}-{steps[-1]}", key, self.cache_dir)

    def run(self, name: str, fn: Callable[[], dict]) -> dict:
        steps = self.steps + [name]

        def build() -> dict:
            meta = fn()
            return {"state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}, "meta": meta}

        with torch.random.fork_rng():
            ckpt, self.last_from_cache = store.load_or_build(self.path(steps), build)
        if self.last_from_cache:
            self.model.load_state_dict(ckpt["state_dict"])
        self.steps = steps
        return ckpt["meta"]


def run_label(key: dict) -> str:
    """``{dataset}-{arch}-{profile}-seed{seed}`` of a run's key (the start of its file names), or
    ``"protopnet"`` when the key lacks one of these fields."""
    if not all(f in key for f in ("dataset", "arch", "profile", "seed")):
        return "protopnet"
    return f"{key['dataset']}-{key['arch']}-{key['profile']}-seed{key['seed']}"
