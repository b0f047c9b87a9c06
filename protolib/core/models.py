"""Backbones with a bias-free linear head (torchvision or narrow ResNets), their ImageNet weights
(checked against torchvision's checksums) and a fingerprint of a model's weights.

The head is found and replaced through :func:`protolib.core.gap.split_gap_linear`, so any torchvision
CNN whose head is global average pooling followed by one linear layer can be built.
"""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from pathlib import Path

import torch
import torchvision
from torch import nn

from protolib.core.checks import check_int
from protolib.core.gap import split_gap_linear


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but could not be loaded (no network, no local copy)."""


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
    from protolib.core import config

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
    from protolib.core import config, narrow_resnet

    if narrow_resnet.is_narrow(arch):  # resnet18_w16 ...: see protolib.core.narrow_resnet
        return narrow_resnet.build(arch, check_int("num_classes", num_classes, 1), pretrained)
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


__all__ = ["WeightsUnavailableError", "WeightsChecksumError", "WEIGHTS", "official_hash_prefix", "file_sha256",
           "load_weights_file", "weights_record", "build_model", "model_fingerprint"]
