"""The split of any GAP + linear CNN into its encoder and its linear head.

The paper's reading of a CNN (Theorem 1) needs the network to end in global average pooling
followed by one linear layer: ``x -> enc -> h (B,D,H,W) -> mean over pixels -> z (B,D) -> C``.
:func:`split_gap_linear` finds that structure in any traceable model (ResNet, DenseNet,
EfficientNet, MobileNetV2, RegNet, GoogLeNet, ...), returning the encoder and the head, and
refuses with a clear message a model whose head is anything else (an MLP, a normalisation
after pooling, pooling to more than one pixel).
"""

from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from protolib.core.inference import evaluating


class UnsupportedHeadError(ValueError):
    """The model does not end in global average pooling followed by a single linear layer."""


@dataclass
class GAPSplit:
    """A CNN read as ``head(mean_pixels(encoder(x)))``.

    ``encoder`` maps images (B,3,H,W) to the last feature map h (B,D,H',W'); ``head`` is the
    final ``nn.Linear`` (weights C x D, rows = the classifier columns c_j of the paper).
    Both share their parameters with the model they were taken from.
    """

    encoder: nn.Module
    head: nn.Linear
    head_name: str

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h: (B, D, H', W')."""
        return self.encoder(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """z = global average of h: (B, D)."""
        return self.encoder(x).mean(dim=(2, 3))


_PASS_MODULES = (nn.Dropout, nn.Identity, nn.Flatten)
_PASS_FUNCTIONS = (torch.flatten, torch.squeeze, torch.nn.functional.dropout, operator.getitem)
_PASS_METHODS = ("flatten", "view", "reshape", "squeeze", "contiguous")


def _is_global_pool(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    def to_one(size) -> bool:
        return size == 1 or tuple(size) in ((1, 1), (1,))

    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        return isinstance(mod, nn.AdaptiveAvgPool2d) and to_one(mod.output_size)
    if node.op == "call_function" and node.target is torch.nn.functional.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        return to_one(size)
    if node.op == "call_method" and node.target == "mean":
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return dims is not None and set(dims) in ({2, 3}, {-2, -1})
    return False


def _is_pass_through(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _PASS_MODULES)
    if node.op == "call_function":
        return node.target in _PASS_FUNCTIONS
    return node.op == "call_method" and node.target in _PASS_METHODS


def _describe(node: torch.fx.Node, gm: torch.fx.GraphModule) -> str:
    """The layer a graph node belongs to: ``classifier.0 (LayerNorm2d)``, not an fx node name."""
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(node.target)).__name__})"
    op = f"{node.op} {getattr(node.target, '__name__', node.target)}"
    stack = node.meta.get("nn_module_stack") or {}
    if stack:  # the innermost module whose forward the traced operation comes from
        path, kind = list(stack.values())[-1]
        return f"{path} ({getattr(kind, '__name__', kind)}; its operation {op})"
    return f"{node.name} ({op})"


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    """Trace ``model``; a model in training mode whose output is not a linear layer is traced again
    in evaluation mode (GoogLeNet and Inception return auxiliary logits only when training)."""
    gm = torch.fx.symbolic_trace(model)
    if model.training and not _ends_in_linear(gm):
        with evaluating(model):
            gm = torch.fx.symbolic_trace(model)
    return gm


def _ends_in_linear(gm: torch.fx.GraphModule) -> bool:
    last = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    return isinstance(last, torch.fx.Node) and last.op == "call_module" and isinstance(
        gm.get_submodule(last.target), nn.Linear)


def split_gap_linear(model: nn.Module) -> GAPSplit:
    """Split ``model`` into an encoder (up to the last feature map) and its linear head.

    Raises :class:`UnsupportedHeadError`, naming the offending layer, when the output is not a
    single ``nn.Linear`` applied (through flatten / dropout / identity only) to the global average
    of a feature map, because Theorem 1 does not hold for such models.

    >>> import torchvision
    >>> from protolib import split_gap_linear
    >>> split = split_gap_linear(torchvision.models.resnet18(num_classes=3))
    >>> split.head_name, split.head.in_features, split.head.out_features
    ('fc', 512, 3)
    """
    try:
        gm = _trace(model)
    except Exception as err:
        raise UnsupportedHeadError(
            f"could not trace {type(model).__name__} with torch.fx ({err}); build the split by hand "
            "with GAPSplit(encoder=..., head=..., head_name=...)"
        ) from err
    output = next(n for n in gm.graph.nodes if n.op == "output")
    last = output.args[0]
    if not _ends_in_linear(gm):
        what = _describe(last, gm) if isinstance(last, torch.fx.Node) else type(last).__name__
        raise UnsupportedHeadError(
            f"{type(model).__name__}: the last operation is {what}, not a linear layer; "
            "Theorem 1 needs global average pooling followed by one linear layer"
        )
    node = last.args[0]
    while not _is_global_pool(node, gm):
        if not _is_pass_through(node, gm):
            raise UnsupportedHeadError(
                f"{type(model).__name__}: between the pooling and the final linear layer "
                f"{last.target!r} sits {_describe(node, gm)}; Theorem 1 only allows flatten, dropout "
                "or identity there (an MLP or a normalisation after pooling breaks the identity), and "
                "the pooling must be a global average"
            )
        node = node.args[0]
    h_node = node.args[0]
    graph = torch.fx.Graph()
    remap: dict[torch.fx.Node, torch.fx.Node] = {}
    graph.graph_copy(gm.graph, remap)
    graph.output(remap[h_node])
    encoder = torch.fx.GraphModule(gm, graph, class_name="Encoder")
    encoder.graph.eliminate_dead_code()
    encoder.delete_all_unused_submodules()
    encoder.recompile()
    encoder.training = model.training  # its own flag only: its submodules are the model's, modes and all
    return GAPSplit(encoder=encoder, head=model.get_submodule(last.target), head_name=last.target)


_SPLITS: "weakref.WeakKeyDictionary[nn.Module, GAPSplit]" = weakref.WeakKeyDictionary()


def _split_is_current(model: nn.Module, split: GAPSplit) -> bool:
    """Whether every layer and tensor ``split`` uses is still the one at that name in ``model``."""
    if _get(model, split.head_name) is not split.head:
        return False
    return all(_get(model, n.target) is _get(split.encoder, n.target)
               for n in split.encoder.graph.nodes if n.op in ("call_module", "get_attr"))


def _get(module: nn.Module, name: str):
    try:
        return operator.attrgetter(name)(module) if name else module
    except AttributeError:
        return None


def gap_split(model: nn.Module) -> GAPSplit:
    """:func:`split_gap_linear` of ``model``, traced once per model object (tracing takes seconds).

    The split shares the model's layers, so later weight updates and ``train()`` / ``eval()`` are
    seen; it is traced again when a layer of the model was replaced (e.g. a new head). The cache
    holds the model weakly: it does not keep a model alive.
    """
    split = _SPLITS.get(model)
    if split is None or not _split_is_current(model, split):
        split = _SPLITS[model] = split_gap_linear(model)
    return split


__all__ = ["UnsupportedHeadError", "GAPSplit", "split_gap_linear", "gap_split"]
