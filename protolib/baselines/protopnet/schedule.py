"""Running a ProtoPNet: the steps of the recipe's schedule in order, each one cached.

:func:`run_step` runs (or loads from a :class:`~protolib.baselines.protopnet.stage_cache.StageCache`) one
step of :meth:`ProtoPNetRecipe.schedule`; :func:`run_schedule` runs them all; :func:`initial_model`
builds the starting model and the cache key that describes it; :func:`load_or_train` does the
whole run for a dataset and a profile.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from protolib.baselines.protopnet.model import ProtoPNet
from protolib.baselines.protopnet.push import PushResult, push_prototypes
from protolib.baselines.protopnet.recipe import ProtoPNetRecipe, Step, recipe_for
from protolib.baselines.protopnet.stage_cache import StageCache
from protolib.baselines.protopnet.stages import StageResult, joint, last_layer, warm_up
from protolib.core import config, data, models, precision
from protolib.core import train as cnn_train
from protolib.core.run import Run, as_run


@dataclass
class RunState:
    """Results of the steps run so far, and the joint optimiser to continue after a push."""

    results: dict[str, StageResult | PushResult] = field(default_factory=dict)
    optimizer_state: dict | None = None


def run_step(step: Step, model: ProtoPNet, train_set, push_set, recipe: ProtoPNetRecipe, state: RunState,
             cache: StageCache | None = None, seed: int = 0, device=None, progress: bool = True) -> StageResult | PushResult:
    """Run (or load from ``cache``) one step of ``recipe.schedule()``, recording it in ``state``."""
    def fn() -> dict:
        if step.kind == "push":
            return {"push": push_prototypes(model, push_set, recipe.push_batch_size, device, progress).to_dict()}
        if step.kind == "last_layer":  # an unaugmented train set: distances computed once
            res = last_layer(model, train_set, recipe, seed=seed, device=device, progress=progress,
                             reuse_features=train_set is push_set)
            return {**res.to_dict(), "optimizer_state": None}
        if step.kind == "warm_up":
            res = warm_up(model, train_set, recipe, epochs=step.epochs, first_epoch=step.start, seed=seed,
                          device=device, progress=progress, reuse_features=train_set is push_set)
        else:
            res = joint(model, train_set, recipe, epochs=step.epochs, first_epoch=step.start, seed=seed,
                        device=device, progress=progress, optimizer_state=state.optimizer_state)
        later_joint = any(s.kind == "joint" and s.start >= step.stop for s in recipe.schedule())
        keep = step.kind == "joint" and later_joint   # Adam state only where a later joint step resumes it
        return {**res.to_dict(), "optimizer_state": res.optimizer_state if keep else None}

    meta = cache.run(step.name, fn) if cache is not None else fn()
    if step.kind == "push":
        out = PushResult.from_dict(meta["push"])
    else:
        out = StageResult.from_dict(meta)
        if step.kind == "joint":
            state.optimizer_state = out.optimizer_state
    state.results[step.name if step.kind not in ("push", "last_layer") else f"{step.kind}@{step.stop}"] = out
    return out


def run_schedule(model: ProtoPNet, train_set, push_set, recipe: ProtoPNetRecipe, cache: StageCache | None = None,
                 seed: int = 0, device=None, progress: bool = True, state: RunState | None = None,
                 skip: int = 0) -> RunState:
    """Run every step of ``recipe.schedule()`` after the first ``skip`` ones (already in ``state``).

    ``train_set`` may augment; ``push_set`` must not. Pass the same object for both when the
    training set has no augmentation: the last-layer stage then reuses the distances.
    """
    state = state or RunState()
    for step in recipe.schedule()[skip:]:
        run_step(step, model, train_set, push_set, recipe, state, cache, seed, device, progress)
    return state


@dataclass
class ProtoPNetRun:
    """A trained ProtoPNet (eval mode) with its recipe, stage results and provenance."""

    model: ProtoPNet
    recipe: ProtoPNetRecipe
    state: RunState
    key: dict

    @property
    def push(self) -> PushResult:
        """The result of the last push (where the final prototypes come from)."""
        return [v for v in self.state.results.values() if isinstance(v, PushResult)][-1]


def initial_model(dataset: str | Run, recipe: ProtoPNetRecipe, profile: str | config.Profile | None = None,
                  seed: int | None = None, init: str | None = None, device=None,
                  progress: bool = True) -> tuple[ProtoPNet, dict]:
    """A fresh ProtoPNet for a run (a :class:`protolib.core.run.Run`, or a dataset name with
    ``profile``, ``seed`` and ``device``) and the cache key fields describing it.

    ``init``: ``"cnn"`` starts the backbone from the cached CNN of :func:`protolib.core.train.load_or_train`
    (quick profile default: saves training time), ``"imagenet"`` from ImageNet weights (paper
    default, as Chen et al.), ``"random"`` from scratch; the default is the profile's
    ``protopnet_init``. The add-on and prototypes are drawn with the run's seed.
    """
    run = as_run(dataset, profile, seed, device)
    prof, spec = run.profile, run.spec
    init = init or prof.protopnet_init
    if init == "cnn":
        res = cnn_train.load_or_train(run, progress=progress)
        cnn, origin = copy.deepcopy(res.model).cpu(), {"cnn": res.path.name, "cnn_test_accuracy": res.meta["test_accuracy"]}
    elif init == "imagenet":
        cnn, origin = None, {"weights": models.weights_record(prof.arch)}
    elif init == "random":
        cnn, origin = None, {}
    else:
        raise ValueError(f"init must be 'cnn', 'imagenet' or 'random', got {init!r}")
    with torch.random.fork_rng():
        torch.manual_seed(run.seed)
        if cnn is None:
            cnn = models.build_model(prof.arch, spec.num_classes, pretrained=init == "imagenet")
        model = ProtoPNet.from_cnn(cnn, spec.num_classes, recipe.k_per_class, recipe.dim)
    fp = run.fingerprints   # augmentation leaves a split's content as it is: push's is train's
    key = {"dataset": run.dataset, "arch": prof.arch, "profile": prof.name, "init": init, **origin,
           "recipe": recipe.key_fields(), "seed": run.seed, "image_size": spec.image_size,
           "data_version": spec.version, "data": {"train": fp["train"], "push": fp["train"], "test": fp["test"]},
           "precision": precision.for_training(run.device, recipe.amp, spec.image_size).name}
    return model, key


def datasets_for(dataset: str | Run, profile: str | config.Profile | None = None, **options):
    """(train, push, test) sets: the train set augments where the profile says so
    (``protopnet_augment``: the paper profile; for CUB: online flip + affine on bounding-box crops,
    in place of the reference's offline Augmentor copies); push and test never do. Otherwise, and
    for datasets whose recipe has no augmentation (MNIST), train and push are the same object.
    ``dataset``: a name (with ``profile``) or a :class:`protolib.core.run.Run`."""
    if isinstance(dataset, Run):
        name, prof = dataset.dataset, dataset.profile
    else:
        name, prof = dataset, config.get_profile(profile)
    push = data.load(name, "train", **options)
    train = data.load(name, "train", augment=True, **options) if prof.protopnet_augment else push
    if isinstance(train, data.TensorImages) and train.augment is None:
        train = push  # no augmentation in the recipe (MNIST, digits): reuse features in warm-up and last layer
    return train, push, data.load(name, "test", **options)


def load_or_train(dataset: str | Run, profile: str | config.Profile | None = None, seed: int | None = None,
                  recipe: ProtoPNetRecipe | None = None, init: str | None = None, device=None, progress: bool = True,
                  **data_options) -> ProtoPNetRun:
    """The whole schedule for a run (a :class:`protolib.core.run.Run`, or a dataset name with ``profile``,
    ``seed`` and ``device``), every stage cached; model in eval mode."""
    run = as_run(dataset, profile, seed, device)
    recipe = recipe or recipe_for(run.profile, run.dataset)
    model, key = initial_model(run, recipe, init=init, progress=progress)
    train_set, push_set, _ = datasets_for(run, **data_options)
    if data_options:  # none: the same key as a run built stage by stage (the ProtoPNet chapter)
        key["data_options"] = data_options
    cache = StageCache(model, key)
    state = run_schedule(model, train_set, push_set, recipe, cache, run.seed, run.device, progress)
    return ProtoPNetRun(model.to(run.device).eval(), recipe, state, key)
