"""Forward hooks: a layer by its dotted name, and the outputs of layers during forward passes."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn


def get_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """(dotted name, module) of ``layer`` in ``model``; a clear error when it is not there."""
    if isinstance(layer, str):
        try:
            return layer, model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in model.named_children()]
            raise ValueError(f"{type(model).__name__} has no module {layer!r}; top-level modules: {names}") from None
    if not isinstance(layer, nn.Module):
        raise TypeError(f"a layer must be a dotted module name or an nn.Module, got {type(layer).__name__}")
    name = next((n for n, m in model.named_modules() if m is layer), None)
    if name is None:
        raise ValueError(f"the module given ({type(layer).__name__}) is not part of the model")
    return name, layer


@contextmanager
def capture(model: nn.Module, layers: Sequence[str | nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (dotted names or modules) during forward passes.

    >>> from protolib.core.models import build_model
    >>> model = build_model("resnet18", 10).eval()
    >>> with capture(model, ["layer2", "layer4"]) as acts:
    ...     _ = model(torch.zeros(1, 3, 64, 64))
    >>> [tuple(acts[k].shape) for k in ("layer2", "layer4")]
    [(1, 128, 8, 8), (1, 512, 2, 2)]

    The hooks are removed when the block ends, even on error.
    """
    named = dict(get_layer(model, layer) for layer in layers)
    store: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, key=key: store.__setitem__(key, out))
        for key, module in named.items()
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def block_outputs(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs of ``layers`` for the batch ``x`` (one forward pass, no gradient)."""
    with torch.no_grad(), capture(model, layers) as acts:
        model(x)
    return dict(acts)


__all__ = ["get_layer", "capture", "block_outputs"]
