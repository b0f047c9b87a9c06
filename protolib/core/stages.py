"""The encoder's stages of any GAP + linear CNN, found from the model: a stage ends where the grid shrinks.

One forward pass on a probe image (seeded noise, 128 x 128 by default) records the 4-D output of
every module of the encoder (:func:`protolib.core.gap.gap_split`) in execution order. Then, for each grid
size the encoder passes through, the stage is the outermost module whose output is the *last*
feature map at that size. Three rules make this hold on the usual architectures:

* side branches are ignored: an output whose grid is smaller than a later one (the 1 x 1 maps of a
  squeeze-and-excitation block) is not on the main path;
* a *transition* (a module that shrinks the grid in one step, e.g. ResNet50's ``layer2``, whose
  first 1x1 convolution still runs at the input grid, or DenseNet's ``transition1``) owns what runs
  inside it: its outputs at its input grid do not end that grid's stage;
* a module whose input, output and inner outputs hold more than two grid sizes spans several
  stages (DenseNet's and EfficientNet's ``features``) and is never chosen; nor is a module that
  runs more than once per forward pass (a hook would capture its last call only).

What this gives (names in forward order, last = deepest):

* torchvision ResNet: ``relu`` (the stem, 1/2), ``layer1`` ... ``layer4``;
* DenseNet: ``features.relu0``, ``features.denseblock1`` .. ``features.denseblock3``,
  ``features.norm5`` (the denseblocks; each transition's norm and 1x1 convolution belong to it);
* EfficientNet-B0: ``features.1``, ``features.2``, ``features.3``, ``features.5``, ``features.8``.

The block sets ``B4``, ``B34``, ``B234`` of the paper count these stages from the end
(:func:`protolib.method.explain.blocks.resolve_blocks`). Results are cached per model object (held
weakly) and recomputed when a layer of the model is replaced.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from protolib.core.gap import GAPSplit, gap_split
from protolib.core.inference import evaluating

PROBE_SIZE = 128


@dataclass(frozen=True)
class Stages:
    """The stages of a model: ``names`` (dotted module names, forward order), their ``grids``
    (H, W) at the probe size ``probe``, the classifier's dotted name ``head`` and ``encoder_output``:
    the last stage's name when its captured output is the encoder output h (the input of global
    average pooling), else ``None`` (DenseNet applies a functional ReLU after its last module)."""

    names: tuple[str, ...]
    grids: tuple[tuple[int, int], ...]
    head: str
    encoder_output: str | None
    probe: tuple[int, int]

    def describe(self) -> str:
        """``layer2 (16 x 16), layer3 (8 x 8), ...`` at the probe size."""
        return ", ".join(f"{n} ({g[0]} x {g[1]})" for n, g in zip(self.names, self.grids))


@dataclass
class _Call:
    name: str
    start: int
    end: int = -1
    grid_in: tuple[int, int] | None = None
    grid: tuple[int, int] | None = None
    inner: frozenset = frozenset()


def _grid_of(value) -> tuple[int, int] | None:
    """The (H, W) of the first 4-D tensor in ``value`` (a tensor, or a list / tuple of them)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape[-2:]) if value.ndim == 4 else None
    if isinstance(value, (list, tuple)):
        return next((g for v in value if (g := _grid_of(v)) is not None), None)
    return None


def _record(model: nn.Module, split: GAPSplit, probe: torch.Tensor) -> tuple[list[_Call], dict]:
    """Every call of an encoder module during ``model(probe)``, in order of completion, and the
    outputs {name: tensor} of the modules as a capture would see them (after the pass), with the
    head's input z under ``""``."""
    leaves = {n.target for n in split.encoder.graph.nodes if n.op == "call_module"}
    inside = leaves | {t.rsplit(".", k)[0] for t in leaves for k in range(1, t.count(".") + 1)}
    calls, open_, outputs, clock = [], {}, {}, [0]

    def pre(name):
        def hook(_m, args):
            clock[0] += 1
            open_.setdefault(name, []).append(_Call(name, clock[0], grid_in=_grid_of(args)))
        return hook

    def post(name):
        def hook(_m, _args, out):
            clock[0] += 1
            call = open_[name].pop()
            call.end, call.grid = clock[0], _grid_of(out) if isinstance(out, torch.Tensor) else None
            calls.append(call)
            outputs[name] = out
        return hook

    head = model.get_submodule(split.head_name)
    handles = [head.register_forward_pre_hook(lambda _m, args: outputs.__setitem__("", args[0]))]
    for name, module in model.named_modules():
        if name in inside:
            handles += [module.register_forward_pre_hook(pre(name)), module.register_forward_hook(post(name))]
    try:
        model(probe)
    finally:
        for h in handles:
            h.remove()
    return calls, outputs


def _area(grid: tuple[int, int]) -> int:
    return grid[0] * grid[1]


def _choose(calls: list[_Call]) -> list[_Call]:
    """The stage calls (see the module docstring), in forward order."""
    main, largest_later = [], 0
    for c in reversed([c for c in calls if c.grid is not None]):  # drop side branches
        if _area(c.grid) >= largest_later:
            main.append(c)
            largest_later = max(largest_later, _area(c.grid))
    main.reverse()
    counts: dict[str, int] = {}
    for c in calls:
        counts[c.name] = counts.get(c.name, 0) + 1
    for c in main:
        c.inner = frozenset(d.grid for d in main if c.start < d.start and d.end < c.end)
    spans = {id(c) for c in main if len({c.grid, c.grid_in, *c.inner} - {None}) > 2}
    transitions = [c for c in main if id(c) not in spans and c.grid_in not in (None, c.grid)]
    chosen: dict[tuple[int, int], _Call] = {}
    for c in main:  # completion order: a later call at the same grid replaces the earlier one
        owned = any(t.start < c.start and c.end < t.end and t.grid_in == c.grid for t in transitions)
        if id(c) not in spans and counts[c.name] == 1 and not owned:
            chosen[c.grid] = c
    return sorted(chosen.values(), key=lambda c: c.end)


def _probe(model: nn.Module, size: tuple[int, int]) -> torch.Tensor:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    param = next(model.parameters(), None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, conv.in_channels if conv is not None else 3, *size, generator=gen)
    return x if param is None else x.to(param.device, param.dtype if param.is_floating_point() else None)


def _find(model: nn.Module, split: GAPSplit, size: tuple[int, int]) -> Stages:
    with evaluating(model), torch.no_grad():  # each module's mode given back (frozen parts stay frozen)
        calls, outputs = _record(model, split, _probe(model, size))
    chosen = _choose(calls)
    if not chosen:
        raise ValueError(f"{type(model).__name__}: no module of the encoder outputs a feature map")
    return Stages(tuple(c.name for c in chosen), tuple(c.grid for c in chosen), split.head_name,
                  chosen[-1].name if _pools_to(outputs[chosen[-1].name], outputs[""]) else None, size)


def _pools_to(h: torch.Tensor, z: torch.Tensor) -> bool:
    """Whether the feature map h (1, D, H, W) averages to the head's input z (to float rounding)."""
    z = z.flatten(1)
    if not isinstance(h, torch.Tensor) or h.ndim != 4 or h.shape[:2] != z.shape:
        return False
    return torch.allclose(h.double().mean((2, 3)), z.double(), rtol=1e-5, atol=1e-6 * float(z.abs().max()))


_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[GAPSplit, dict]]" = weakref.WeakKeyDictionary()


def stage_info(model: nn.Module, size: int | tuple[int, int] = PROBE_SIZE) -> Stages:
    """The :class:`Stages` of a GAP + linear ``model`` (probe image of ``size``; computed once per
    model object). Raises :class:`protolib.core.gap.UnsupportedHeadError` for any other head."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    split = gap_split(model)
    known = _CACHE.get(model)
    if known is None or known[0] is not split:
        known = _CACHE[model] = (split, {})
    if size not in known[1]:
        known[1][size] = _find(model, split, size)
    return known[1][size]


def stages(model: nn.Module) -> tuple[str, ...]:
    """The encoder's stages of ``model`` as dotted module names, in forward order (last = deepest).

    >>> from protolib import stages
    >>> from protolib.core.models import build_model
    >>> stages(build_model("resnet18", 10))
    ('relu', 'layer1', 'layer2', 'layer3', 'layer4')
    """
    return stage_info(model).names


def last_stages(model: nn.Module, n: int, asked: str = "") -> tuple[str, ...]:
    """The last ``n`` stages of ``model``; a clear error naming them when it has fewer."""
    info = stage_info(model)
    if n > len(info.names):
        what = f"{asked} needs" if asked else "asked for"
        raise ValueError(f"{what} the last {n} stages, but {type(model).__name__} has {len(info.names)}: "
                         f"{info.describe()} (at a {info.probe[0]} x {info.probe[1]} input); "
                         "name the layers explicitly instead")
    return info.names[len(info.names) - n:]


__all__ = ["PROBE_SIZE", "Stages", "stage_info", "stages", "last_stages"]
