"""One object for "this run": the dataset, the profile, the seed and the device, resolved once.

:meth:`Run.resolve` reads the environment's defaults (``$PROTOLIB_PROFILE``, ``$PROTOLIB_EPOCHS``,
``$PROTOLIB_DEVICE``) once and checks the dataset's name; the frozen :class:`Run` is then passed
down (training, embeddings, ProtoPNet, the reproduction's steps), so no layer looks a name up
again. The functions that take a ``Run`` also take the old keywords (a dataset name, ``profile=``,
``seed=``, ``device=``) and resolve them into one, once, through :func:`as_run`.

>>> run = Run.resolve("digits", "quick", seed=1, device="cpu")
>>> run.profile.arch, run.seed, run.epochs, run.k_per_class
('resnet18', 1, 12, 5)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from protolib.core import config, data
from protolib.core.checks import check_int


@dataclass(frozen=True)
class Run:
    """A resolved run: build it with :meth:`resolve`, not by hand.

    >>> from protolib import Run
    >>> run = Run.resolve("digits", "quick", seed=1, device="cpu")
    >>> run.dataset, run.profile.name, run.seed, str(run.device), run.epochs
    ('digits', 'quick', 1, 'cpu', 12)
    """

    dataset: str
    profile: config.Profile
    seed: int
    device: torch.device

    @classmethod
    def resolve(cls, dataset: str, profile: str | config.Profile | None = None, seed: int = 0,
                device: str | torch.device | None = None, epochs: int | None = None) -> "Run":
        """The run of ``dataset`` (a registered name) under ``profile`` (else ``$PROTOLIB_PROFILE``,
        else ``quick``; ``epochs`` or ``$PROTOLIB_EPOCHS`` override its epochs), with ``seed`` on
        ``device`` (else ``$PROTOLIB_DEVICE``, else CUDA when available)."""
        if not isinstance(dataset, str):
            raise TypeError(f"dataset must be a registered dataset's name, got {type(dataset).__name__}")
        data.get_spec(dataset)                 # unknown name: ValueError listing the registered ones
        check_int("seed", seed, 0)
        return cls(dataset, config.get_profile(profile, epochs), seed, config.get_device(device))

    @property
    def spec(self) -> data.DatasetSpec:
        """The dataset's registry entry (classes, image size, version)."""
        return data.get_spec(self.dataset)

    @property
    def epochs(self) -> int:
        """The backbone's training epochs for this dataset under the profile."""
        return self.profile.epochs_for(self.dataset)

    @property
    def k_per_class(self) -> int:
        """Prototypes per class for this dataset under the profile (KMEx, maps, ProtoPNet)."""
        return self.profile.k_per_class(self.dataset)

    def load(self, split: str, **options):
        """The ``split`` of the dataset (:func:`protolib.core.data.load`)."""
        return data.load(self.dataset, split, **options)

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        """{split: content fingerprint} of the train and test splits, computed once per run
        (:func:`protolib.core.data.fingerprints`): what every cache key of this run says about the data."""
        return data.fingerprints(self.dataset, ("train", "test"))


def as_run(dataset: str | Run, profile: str | config.Profile | None = None, seed: int | None = None,
           device: str | torch.device | None = None) -> Run:
    """``dataset`` when it is a :class:`Run` (then ``profile``, ``seed`` and ``device`` must be left
    out: the run already says them), else :meth:`Run.resolve` of the old keywords."""
    if isinstance(dataset, Run):
        given = [n for n, v in (("profile", profile), ("seed", seed), ("device", device)) if v is not None]
        if given:
            raise TypeError(f"a Run already says its {', '.join(given)}; pass either a Run or the keywords")
        return dataset
    return Run.resolve(dataset, profile, 0 if seed is None else seed, device)


__all__ = ["Run", "as_run"]
