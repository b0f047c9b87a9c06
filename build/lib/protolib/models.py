"""Backbones with a bias-free linear head, and the split of any GAP + linear CNN.

The paper's reading of a CNN (Theorem 1) needs the network to end in global average pooling
followed by one linear layer: ``x -> enc -> h (B,D,H,W) -> mean over pixels -> z (B,D) -> C``.
:func:`split_gap_linear` finds that structure in any traceable model (ResNet, DenseNet,
EfficientNet, MobileNetV2, RegNet, GoogLeNet, ...), returning the encoder and the head, and
refuses with a clear message a model whose head is anything else (an MLP, a normalisation
after pooling, pooling to more than one pixel).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.fx
import torchvision
from torch import nn

from ._checks import check_int


class UnsupportedHeadError(ValueError):
    """The model does not end in global average pooling followed by a single linear layer."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but could not be loaded (no network, no local copy)."""


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
        try:
            model.eval()
            gm = torch.fx.symbolic_trace(model)
        finally:
            model.train()
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
    encoder.train(model.training)
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


WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
}


# Models that torchvision builds with auxiliary classifiers (their output in training mode is a
# tuple of logits): protolib builds them without, since their main head is GAP + dropout + linear.
_AUX_FREE = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}


def _load_weights(arch: str):
    weights = torchvision.models.get_weight(WEIGHTS.get(arch, f"{arch}.DEFAULT"))
    return weights


class WeightsChecksumError(ValueError):
    """A local weights file is not the one torchvision publishes (its SHA-256 prefix differs)."""


def official_hash_prefix(arch: str) -> str:
    """The SHA-256 prefix torchvision publishes for ``arch``'s ImageNet weights (in the file name,
    e.g. ``resnet34-b627a593.pth`` -> ``b627a593``)."""
    url = _load_weights(arch).url
    match = re.search(r"-([0-9a-f]{6,})\.pth$", url)
    if match is None:
        raise ValueError(f"torchvision's weights file name for {arch} ({url}) holds no checksum")
    return match.group(1)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (remembered while its size and time stay the same)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights_file(arch: str, path: str | Path, unofficial: bool = False) -> dict:
    """The state dict in a local ImageNet weights file for ``arch``, checked against torchvision's checksum.

    A mismatch raises :class:`WeightsChecksumError` unless ``unofficial=True`` says the file is
    knowingly not torchvision's (then banners and checkpoint records say so).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} does not exist (from weights_path= or $PROTOLIB_WEIGHTS)")
    expected, actual = official_hash_prefix(arch), file_sha256(path)
    if not actual.startswith(expected) and not unofficial:
        raise WeightsChecksumError(
            f"{path} is not torchvision's ImageNet {arch} file: its SHA-256 starts with {actual[:len(expected)]}, "
            f"the official one with {expected}. Use the official file ({_load_weights(arch).url}), or set "
            "PROTOLIB_WEIGHTS_UNOFFICIAL=1 (unofficial_weights=True) to use it anyway, labelled as unofficial."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def weights_record(arch: str, weights_path: str | Path | None = None, unofficial: bool | None = None) -> dict:
    """Which ImageNet weights a pretrained ``arch`` gets: ``{"file", "sha256", "official"}`` (file None:
    torchvision's own download / hub cache). Enters cache keys and checkpoint records."""
    from . import config

    file = Path(weights_path).expanduser() if weights_path is not None else config.weights_file()
    unofficial = config.weights_unofficial() if unofficial is None else unofficial
    if file is None:
        return {"file": None, "sha256": official_hash_prefix(arch), "official": True}
    sha = file_sha256(file) if file.is_file() else None
    official = sha is not None and sha.startswith(official_hash_prefix(arch)) and not unofficial
    return {"file": str(file), "sha256": sha, "official": official}


def build_model(arch: str = "resnet18", num_classes: int = 10, pretrained: bool = False,
                weights_path: str | Path | None = None, unofficial_weights: bool | None = None) -> nn.Module:
    """A torchvision CNN whose head is replaced by ``nn.Linear(D, num_classes, bias=False)``.

    As in the KMEx reference, the head has no bias, so a logit is exactly z . c_j.
    ``pretrained=True`` loads ImageNet weights: from ``weights_path`` (else ``$PROTOLIB_WEIGHTS``)
    when given, checked by :func:`load_weights_file` (``unofficial_weights``, else
    ``$PROTOLIB_WEIGHTS_UNOFFICIAL``, accepts another file); otherwise through torchvision's
    ``weights=`` enums (from torch's hub cache when present, else downloaded). Offline without a
    copy it raises :class:`WeightsUnavailableError` saying where to put the file.
    """
    from . import config

    if not isinstance(arch, str) or arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"arch: unknown torchvision architecture {arch!r}; "
                         "see torchvision.models.list_models() for the names")
    check_int("num_classes", num_classes, 1)
    file = Path(weights_path) if weights_path is not None else config.weights_file()
    if pretrained and file is not None:
        unofficial = config.weights_unofficial() if unofficial_weights is None else unofficial_weights
        state = load_weights_file(arch, file, unofficial)
        model = torchvision.models.get_model(arch, weights=None, **_AUX_FREE.get(arch, {}))
        model.load_state_dict(state)
        return _replace_head(model, num_classes)
    weights = _load_weights(arch) if pretrained else None
    kwargs = dict(_AUX_FREE.get(arch, {}))
    if arch in _AUX_FREE and weights is None:
        kwargs["init_weights"] = True  # torchvision's default, stated to silence its warning
    try:
        model = torchvision.models.get_model(arch, weights=weights, **kwargs)
    except Exception as err:  # URLError, OSError, ... when offline
        url = getattr(weights, "url", "?")
        hub = torch.hub.get_dir()
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} could not be loaded ({err.__class__.__name__}: {err}). "
            f"Offline, download {url} elsewhere and put it in {hub}/checkpoints/, "
            "or name a local copy with $PROTOLIB_WEIGHTS, or use the quick profile (random initialisation)."
        ) from err
    return _replace_head(model, num_classes)


def _replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    split = split_gap_linear(model)
    new_head = nn.Linear(split.head.in_features, num_classes, bias=False)
    parent_name, _, leaf = split.head_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new_head)
    return model


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


_FINGERPRINTS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of a model's state dict: names, shapes and values.

    Remembered per model while no tensor of its state dict is replaced or changed in place
    (torch counts in-place changes), so checking it before every use costs about a millisecond
    (ResNet18) instead of hashing 45 MB again.
    """
    state = model.state_dict()
    stamp = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for name, t in state.items())
    known = _FINGERPRINTS.get(model)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    _FINGERPRINTS[model] = (stamp, digest.hexdigest()[:16])
    return _FINGERPRINTS[model][1]


@contextmanager
def capture(model: nn.Module, layers: Sequence[str | nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (dotted names or modules) during forward passes.

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
