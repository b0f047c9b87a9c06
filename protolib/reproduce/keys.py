"""What identifies a stored reproduction step: its settings, its seed and its key.

A step's result is reused only when its key (:func:`step_key`) matches, and the key holds
everything that makes the step's numbers, the digest of protolib's own source code included
(:func:`protolib.core.store.code_digest`), so that a change of code reruns the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from protolib.baselines import protopnet
from protolib.core import config, data, models, store
from protolib.reproduce import table2_maps


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
        images, evaluated = table2_maps.budget(profile)
        return cls(**{"images_per_class": images, "eval_train": evaluated, **overrides})


def seed_for(run: int) -> int:
    """The seed of run ``run`` (0, 1, 2, ...): run 0 uses seed 0, the chapters' seed."""
    if run < 0:
        raise ValueError(f"run index must be >= 0, got {run}")
    return run


def step_key(profile: str | config.Profile, dataset: str, seed: int, step: str, settings: Settings,
             data_content: Sequence[str] | None = None) -> dict:
    """Everything that makes a step's numbers (a stored step with another key is recomputed).

    ``data_content``: the content fingerprints of the train and test splits
    (:func:`data_fingerprints`, computed here when not given): new files under the same dataset
    name never reuse old results. Pretrained profiles add the ImageNet weights' record. ``code``:
    the digest of protolib's source (:func:`protolib.core.store.code_digest`): a change of code reruns
    the step rather than reading back what older code computed.
    """
    prof = config.get_profile(profile)
    spec = data.get_spec(dataset)
    fields = {"profile": prof.name, "arch": prof.arch, "pretrained": prof.pretrained,
              "epochs": prof.epochs_for(dataset), "dataset": dataset, "data_version": spec.version,
              "data_content": list(data_content if data_content is not None else data_fingerprints(dataset)),
              "seed": seed, "step": step}
    if prof.pretrained:
        fields["weights"] = models.weights_record(prof.arch)
    if step == "kmex":
        fields["kmex_n_init"] = settings.kmex_n_init
    if step == "maps":
        fields.update(k_per_class=prof.k_per_class(dataset), images_per_class=settings.images_per_class,
                      eval_train=settings.eval_train)
    if step == "protopnet":
        fields["recipe"] = protopnet.recipe_for(prof, dataset, **settings.protopnet).key_fields()
        fields["init"] = settings.protopnet_init
    return store.key_fields("reproduce", code=True, **fields)


def data_fingerprints(dataset: str) -> tuple[str, str]:
    """Content fingerprints of ``dataset``'s train and test splits (:func:`protolib.core.data.fingerprints`)."""
    fp = data.fingerprints(dataset, ("train", "test"))
    return fp["train"], fp["test"]
