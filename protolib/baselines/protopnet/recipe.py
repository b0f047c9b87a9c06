"""ProtoPNet's hyper-parameters and training schedule (reference values as defaults).

Schedule of the reference (``main.py``): ``warm_epochs`` of warm-up, then joint training; after
every ``push_every``-th epoch a push, followed by ``last_layer_epochs`` epochs of last-layer
optimisation, after which joint training resumes. We count epochs from 1 and push after epochs
10, 20, ...; the reference counts from 0 and pushes after its epochs 10, 20, ..., i.e. one epoch
later. ``epochs`` must be a multiple of ``push_every`` so that the model we keep ends with a
push and a last-layer stage (its prototypes are real training patches).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from protolib.baselines.protopnet.losses import Coefficients
from protolib.core import config


@dataclass(frozen=True)
class Step:
    """One step of the schedule: ``kind`` in {"warm_up", "joint", "push", "last_layer"};
    for the training kinds, epochs ``start + 1 .. stop`` (1-based, ``stop`` included)."""

    kind: str
    start: int = 0
    stop: int = 0

    @property
    def epochs(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return self.kind if self.kind in ("push", "last_layer") else f"{self.kind}{self.start + 1}-{self.stop}"


@dataclass(frozen=True)
class ProtoPNetRecipe:
    """Everything that shapes a ProtoPNet run. Defaults: Chen et al. (2019), official code."""

    k_per_class: int = 10              # M, prototypes per class
    dim: int = 128
    warm_epochs: int = 5
    epochs: int = 30
    push_every: int = 10
    last_layer_epochs: int = 20
    warm_lr: dict = field(default_factory=lambda: {"add_on": 3e-3, "prototypes": 3e-3})
    joint_lr: dict = field(default_factory=lambda: {"backbone": 1e-4, "add_on": 3e-3, "prototypes": 3e-3})
    weight_decay: float = 1e-3          # on backbone and add-on, not on prototypes
    joint_step_size: int = 5            # StepLR over the joint epochs
    joint_gamma: float = 0.1
    last_layer_lr: float = 1e-4
    batch_size: int = 80
    test_batch_size: int = 100
    push_batch_size: int = 75
    coefs: Coefficients = Coefficients()
    amp: bool = True                    # training's fast path (protolib.core.precision); False: float32
    num_workers: int | None = None    # None: protolib.core.config.loader_options (0 on the CPU)

    def __post_init__(self):
        if self.epochs % self.push_every or self.epochs < self.push_every:
            raise ValueError(f"epochs ({self.epochs}) must be a positive multiple of push_every ({self.push_every})")
        if not 0 <= self.warm_epochs <= self.epochs:
            raise ValueError("warm_epochs must lie in [0, epochs]")

    def key_fields(self) -> dict:
        """The fields as hashed into cache keys and written to the record. ``k_per_class`` keeps
        its former name ``per_class`` there, so keys made before the rename still match."""
        return {("per_class" if name == "k_per_class" else name): value for name, value in asdict(self).items()}

    def schedule(self) -> list[Step]:
        """The steps in order, e.g. warm_up1-5, joint6-10, push, last_layer, joint11-20, ..."""
        cuts = sorted({self.warm_epochs, *range(self.push_every, self.epochs + 1, self.push_every)} - {0})
        steps, start = [], 0
        for stop in cuts:
            steps.append(Step("warm_up" if stop <= self.warm_epochs else "joint", start, stop))
            if stop % self.push_every == 0:
                steps += [Step("push", stop, stop), Step("last_layer", stop, stop)]
            start = stop
        return steps


def recipe_for(profile: str | config.Profile | None = None, dataset: str | None = None, **overrides) -> ProtoPNetRecipe:
    """The recipe of a profile, with M = the profile's prototypes per class for ``dataset``
    (5, and 10 for CUB, as KMEx's K/C).

    The profile's :attr:`~protolib.core.config.Profile.protopnet_schedule` replaces the reference
    values: ``paper`` keeps them, 30 epochs (pushes after epochs 10, 20, 30); ``quick`` has 10
    warm-up epochs (cheap: with an unaugmented training set the frozen backbone's features are
    computed once), 2 joint epochs, one push, 20 last-layer epochs (cheap for the same reason). With an epochs override (``$PROTOLIB_EPOCHS`` = n, see
    :func:`protolib.core.config.get_profile`) the schedule keeps its four stages, n epochs each:
    n of warm-up, n joint, one push, n last-layer epochs. ``overrides`` replace any field.
    """
    prof = config.get_profile(profile)
    base = dict(k_per_class=prof.k_per_class(dataset or "default"))
    base.update(prof.protopnet_schedule)
    n = prof.epochs_override
    if n is not None:  # $PROTOLIB_EPOCHS: every stage once, n epochs each (warm-up, joint, push, last layer)
        base.update(warm_epochs=n, epochs=2 * n, push_every=2 * n, last_layer_epochs=n)
    base.update(overrides)
    return ProtoPNetRecipe(**base)
