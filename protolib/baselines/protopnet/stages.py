"""The training stages of ProtoPNet: warm-up, joint training, last layer (push is in ``push.py``).

=========== ====================================== =========================================
stage       trained (Adam)                         frozen
=========== ====================================== =========================================
warm-up     add-on (3e-3, wd 1e-3), prototypes     backbone (kept in eval mode: its batch-norm
            (3e-3)                                 statistics do not move), last layer
joint       backbone (1e-4, wd 1e-3), add-on       last layer
            (3e-3, wd 1e-3), prototypes (3e-3);
            StepLR(5 epochs, 0.1) over joint epochs
last layer  last layer (1e-4)                      everything else, in eval mode
=========== ====================================== =========================================

Differences from the reference code, all deliberate: the reference leaves the whole network in
train mode during warm-up and last-layer epochs, so the frozen backbone's batch-norm running
statistics keep changing; here a frozen part is frozen entirely (the last-layer stage changes
the last layer only). The reference marks the last layer trainable during joint training but
never gives it to the optimiser; we mark it frozen (same updates, less work).

Every stage is seeded (batch order and augmentation), shows a progress bar, trains on the
device's fast path (:mod:`protolib.core.precision`: bfloat16 on a CPU that has it, mixed precision
on CUDA) while evaluation stays as it was (float32 on the CPU), and returns
a :class:`StageResult` whose optimiser state lets a later call continue where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from protolib.baselines.protopnet.losses import protopnet_loss
from protolib.baselines.protopnet.model import ProtoPNet, ProtoPNetOutput
from protolib.baselines.protopnet.recipe import ProtoPNetRecipe
from protolib.core import config, precision
from protolib.core.inference import evaluating, map_batches, run_device
from protolib.method.similarity import log_similarity


@dataclass
class StageResult:
    """What a stage did: per-epoch means of the loss terms and the training accuracy (a fraction in
    [0, 1]) (``history``), time."""

    stage: str
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    optimizer_state: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageResult":
        return cls(**d)


amp_dtype = config.amp_dtype
_autocast = config.autocast


def set_trainable(model: ProtoPNet, backbone: bool, add_on: bool, prototypes: bool, last_layer: bool) -> None:
    """Switch gradients on or off per part; frozen backbones go to eval mode (batch-norm included)."""
    for part, on in ((model.backbone, backbone), (model.add_on, add_on), (model.last_layer, last_layer)):
        part.requires_grad_(on)
    model.prototypes.requires_grad_(prototypes)
    model.train()
    model.backbone.train(backbone)
    model.last_layer.train(last_layer)


def _shuffled_loader(ds: Dataset, batch_size: int, seed: int, device: torch.device, workers: int | None = None) -> DataLoader:
    """A shuffled loader seeded by ``seed``; ``workers`` (the recipe's) overrides :func:`protolib.core.config.loader_options`.
    Tensors already in memory (reused features) need no worker processes."""
    loader = config.make_loader(ds, batch_size, device, shuffle=True, seed=seed)
    if isinstance(ds, TensorDataset):
        workers = 0
    if workers is None or workers == loader.num_workers:
        return loader
    return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                      num_workers=workers, pin_memory=device.type == "cuda")


def _epoch(model: ProtoPNet, loader: DataLoader, opt: torch.optim.Optimizer, recipe: ProtoPNetRecipe,
           device: torch.device, desc: str, progress: bool, forward=None) -> dict:
    """One pass over ``loader`` with ``opt``; returns the means of the loss terms and the accuracy
    (a fraction in [0, 1])."""
    forward = forward or (lambda x: model(x))
    sums, n, correct, scaler = {}, 0, torch.zeros((), dtype=torch.long, device=device), None
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        # images take the path their size calls for; reused features (a small grid, or none: size 0)
        # are below every threshold, so on a CPU they stay in float32
        fast = precision.for_training(device, recipe.amp, min(x.shape[-2:]) if x.dim() == 4 else 0)
        scaler = scaler or fast.scaler()
        x, y = fast.batch(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        with fast.autocast():
            out = forward(x)
        terms = protopnet_loss(out, y, model, recipe.coefs)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms.total).backward()
        scaler.step(opt)
        scaler.update()
        for k, v in terms.as_tensors().items():  # summed on the device: no host sync per batch
            sums[k] = sums.get(k, 0.0) + v.detach().double() * len(y)
        n, correct = n + len(y), correct + (out.logits.argmax(1) == y).sum()
    return {**{k: float(v) / n for k, v in sums.items()}, "accuracy": int(correct) / n}


def _run(model, train_set, recipe, stage, groups, epochs, first_epoch, lr_at, seed, device, progress,
         optimizer_state=None, forward=None, dataset=None) -> StageResult:
    """Shared loop: Adam on ``groups``, ``lr_at(epoch)`` -> per-group lr, one :func:`_epoch` per epoch."""
    opt = torch.optim.Adam(groups)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    result, start = StageResult(stage), time.perf_counter()
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for e in range(first_epoch, first_epoch + epochs):
            for g, lr in zip(opt.param_groups, lr_at(e)):
                g["lr"] = lr
            loader = _shuffled_loader(dataset or train_set, recipe.batch_size, seed * 100_003 + e, device, recipe.num_workers)
            stats = _epoch(model, loader, opt, recipe, device, f"{stage} epoch {e + 1}", progress, forward)
            result.history.append({"epoch": e + 1, "lr": [g["lr"] for g in opt.param_groups], **stats})
    result.seconds = time.perf_counter() - start
    result.optimizer_state = opt.state_dict()
    return result


@torch.no_grad()
def backbone_features(model: ProtoPNet, dataset: Dataset, batch_size: int = 100, device=None,
                      progress: bool = False, amp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone outputs (N, D_b, H', W') float32 and labels (N,) of ``dataset`` in order, on the CPU
    (the backbone in evaluation mode, the model where it is: ``device``, when given, must be its)."""
    device = run_device(model, device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with _autocast(device, amp):
            return model.backbone(x).float()

    with evaluating(model.backbone):
        return map_batches(run, dataset, batch_size, device, "backbone", progress)


def warm_up(model: ProtoPNet, train_set: Dataset, recipe: ProtoPNetRecipe, epochs: int | None = None,
            first_epoch: int = 0, seed: int = 0, device=None, progress: bool = True,
            optimizer_state: dict | None = None, reuse_features: bool = False) -> StageResult:
    """Train the add-on and the prototypes on a frozen backbone (``recipe.warm_epochs`` by default).

    The backbone's output for an image never changes during warm-up; with ``reuse_features=True``
    it is computed once (same updates, far faster). Only valid when ``train_set`` has no random
    augmentation; it holds N x D_b x H' x W' floats in memory.
    """
    device = config.get_device(device)
    model.to(device)
    dataset, forward = None, None
    if reuse_features:
        dataset = TensorDataset(*backbone_features(model, train_set, recipe.test_batch_size, device, progress, recipe.amp))
        forward = lambda f: model.forward_latent(model.add_on(f))  # noqa: E731
    set_trainable(model, backbone=False, add_on=True, prototypes=True, last_layer=False)
    groups = [{"params": model.add_on.parameters(), "lr": recipe.warm_lr["add_on"], "weight_decay": recipe.weight_decay},
              {"params": [model.prototypes], "lr": recipe.warm_lr["prototypes"]}]
    lrs = [recipe.warm_lr["add_on"], recipe.warm_lr["prototypes"]]
    return _run(model, train_set, recipe, "warm_up", groups, recipe.warm_epochs if epochs is None else epochs,
                first_epoch, lambda e: lrs, seed, device, progress, optimizer_state, forward, dataset)


def joint(model: ProtoPNet, train_set: Dataset, recipe: ProtoPNetRecipe, epochs: int, first_epoch: int | None = None,
          seed: int = 0, device=None, progress: bool = True, optimizer_state: dict | None = None) -> StageResult:
    """Train backbone, add-on and prototypes together for ``epochs`` epochs.

    ``first_epoch`` (0-based, default ``recipe.warm_epochs``) places these epochs in the run: the
    learning rates follow StepLR over the joint epochs, lr = base * gamma ** ((e - warm) // step).
    Pass the previous call's ``optimizer_state`` to continue the same Adam optimiser, as the
    reference does across pushes.
    """
    device = config.get_device(device)
    model.to(device)
    first = recipe.warm_epochs if first_epoch is None else first_epoch
    set_trainable(model, backbone=True, add_on=True, prototypes=True, last_layer=False)
    base = recipe.joint_lr
    groups = [{"params": model.backbone.parameters(), "lr": base["backbone"], "weight_decay": recipe.weight_decay},
              {"params": model.add_on.parameters(), "lr": base["add_on"], "weight_decay": recipe.weight_decay},
              {"params": [model.prototypes], "lr": base["prototypes"]}]

    def lr_at(e: int) -> list[float]:
        factor = recipe.joint_gamma ** (max(e - recipe.warm_epochs, 0) // recipe.joint_step_size)
        return [base[k] * factor for k in ("backbone", "add_on", "prototypes")]

    return _run(model, train_set, recipe, "joint", groups, epochs, first, lr_at, seed, device, progress, optimizer_state)


@torch.no_grad()
def min_distances(model: ProtoPNet, dataset: Dataset, batch_size: int = 100, device=None,
                  progress: bool = False, amp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """dmin (N, P) and labels (N,) of ``dataset`` in order, on the CPU (model in eval mode, where it
    is: ``device``, when given, must be its)."""
    device = run_device(model, device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with _autocast(device, amp):
            return model(x).min_distances.float()

    with evaluating(model):
        return map_batches(run, dataset, batch_size, device, "distances", progress)


def last_layer(model: ProtoPNet, train_set: Dataset, recipe: ProtoPNetRecipe, epochs: int | None = None,
               seed: int = 0, device=None, progress: bool = True, reuse_features: bool = False) -> StageResult:
    """Optimise the last layer alone (Adam, ``recipe.last_layer_lr``) for ``recipe.last_layer_epochs``.

    With everything but the last layer frozen, the min-distances of an image never change; with
    ``reuse_features=True`` they are computed once and the epochs run on them (exactly the same
    updates, far faster). Only valid when ``train_set`` has no random augmentation.
    """
    device = config.get_device(device)
    model.to(device)
    dataset, forward = None, None
    if reuse_features:
        dmin, y = min_distances(model, train_set, recipe.test_batch_size, device, progress, recipe.amp)
        dataset = TensorDataset(dmin, y)
        forward = lambda d: ProtoPNetOutput(model.last_layer(log_similarity(d)), d, d[:, :, None, None])
    set_trainable(model, backbone=False, add_on=False, prototypes=False, last_layer=True)
    model.add_on.eval()
    groups = [{"params": model.last_layer.parameters(), "lr": recipe.last_layer_lr}]
    return _run(model, train_set, recipe, "last_layer", groups,
                recipe.last_layer_epochs if epochs is None else epochs, 0, lambda e: [recipe.last_layer_lr],
                seed, device, progress, forward=forward, dataset=dataset)


@dataclass
class Evaluation:
    """Accuracy (a fraction in [0, 1]: ``correct / n``) and mean loss terms of a model on a dataset
    (evaluation mode, no update)."""

    accuracy: float
    terms: dict
    n: int
    correct: int


@torch.no_grad()
def evaluate(model: ProtoPNet, dataset: Dataset, batch_size: int = 100, device=None, progress: bool = False,
             recipe: ProtoPNetRecipe | None = None) -> Evaluation:
    """Top-1 accuracy (a fraction in [0, 1]) and loss terms on ``dataset`` (use evaluation transforms),
    the model in evaluation mode where it is (``device``, when given, must be its)."""
    recipe = recipe or ProtoPNetRecipe()
    device = run_device(model, device)
    sums, n, correct = {}, 0, 0
    loader = config.make_loader(dataset, batch_size, device)
    with evaluating(model):
        for x, y in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
            x, y = x.to(device), y.to(device)
            with _autocast(device, recipe.amp):
                out = model(x)
            for k, v in protopnet_loss(out, y, model, recipe.coefs).as_floats().items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
            n, correct = n + len(y), correct + int((out.logits.argmax(1) == y).sum())
    return Evaluation(correct / n, {k: v / n for k, v in sums.items()}, n, correct)
