"""Argument checks shared by protolib's public entry points.

Each check raises as early as possible with a message that names the argument, the value given
and what is expected (``TypeError`` for a wrong kind of value, ``ValueError`` for a wrong value),
so a user never meets an error from deep inside torch or a silently wrong answer. The checks are
cheap: at most one elementwise pass over a batch that is already in memory.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Sequence

import torch


def _show(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{type(value).__name__} {text[:limit]}..."


def check_int(name: str, value, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as an int (not a bool, not a float such as 2.5), at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() \
                and value.dtype != torch.bool:
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer{' or None' if allow_none else ''}, got {_show(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a finite float, at least ``minimum`` (above it when ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices: Sequence) -> None:
    """``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {_show(value)}")


def check_size(name: str, value, allow_none: bool = True) -> tuple[int, int] | None:
    """A grid size: None, a positive int, or a pair of positive ints -> (H, W)."""
    if value is None and allow_none:
        return None
    pair = (value, value) if isinstance(value, Integral) and not isinstance(value, bool) else value
    try:
        h, w = pair
        return check_int(name, h, 1), check_int(name, w, 1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive int or a pair (H, W) of positive ints, got {_show(value)}") from None


def _bad_rows(x: torch.Tensor) -> list[int]:
    return torch.nonzero(~torch.isfinite(x).flatten(1).all(1)).flatten().tolist()


def check_finite_rows(name: str, x: torch.Tensor, what: str = "images") -> None:
    """Raise naming the rows (first dimension) of ``x`` that hold NaN or an infinity."""
    if x.is_floating_point() and not torch.isfinite(x).all():
        rows = _bad_rows(x)
        shown = rows[:10] + (["..."] if len(rows) > 10 else [])
        raise ValueError(f"{name} holds NaN or infinite values in {len(rows)} of {len(x)} {what} "
                         f"(batch indices {shown})")


def check_images(name: str, x, size: Sequence[int] | None = None, channels: int | None = None) -> torch.Tensor:
    """A non-empty, finite, floating batch of images (B, C, H, W); its (H, W) equal to ``size``
    and C to ``channels`` when given."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images (B, C, H, W), got {type(x).__name__}"
                        + (" (stack the images with torch.stack)" if isinstance(x, (list, tuple)) else ""))
    if x.ndim != 4:
        hint = " (a single image? use x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{name} must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point (normalised) images, got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); give at least one image")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels, expected {channels}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} holds {x.shape[-2]} x {x.shape[-1]} images, but the explainer was fitted "
                         f"on {size[0]} x {size[1]} images (input_size_); resize them to that size")
    check_finite_rows(name, x)
    return x


def check_class_targets(name: str, targets, batch: int, num_classes: int) -> torch.Tensor | None:
    """A class index per image: None, an int, or an integer tensor of shape () or (batch,), each
    in [0, num_classes). Returned as a (batch,) long tensor (None stays None)."""
    if targets is None:
        return None
    if isinstance(targets, bool) or not isinstance(targets, (Integral, torch.Tensor)):
        raise TypeError(f"{name} must be an int or an integer tensor of class indices, got {_show(targets)}")
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    if t.ndim > 1 or (t.ndim == 1 and len(t) != batch):
        raise ValueError(f"{name} must be one class index or one per image ({batch},), got shape {tuple(t.shape)}")
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(f"{name} must hold class indices in [0, {num_classes - 1}], "
                         f"got {t[bad].flatten()[:5].tolist()}")
    return t.long().expand(batch)


def check_labels(name: str, labels, num_classes: int | None = None) -> torch.Tensor:
    """Integer class labels (N,), non-negative (and below ``num_classes`` when given)."""
    try:
        t = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be integer class indices, got {_show(labels)} "
                        "(map string labels to 0..C-1 first)") from None
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {t.dtype}")
    if t.ndim != 1:
        raise ValueError(f"{name} must be one label per sample (N,), got shape {tuple(t.shape)}")
    if len(t) and t.min() < 0:
        raise ValueError(f"{name} must be class indices >= 0, got {int(t.min())}")
    if num_classes is not None and len(t) and t.max() >= num_classes:
        raise ValueError(f"{name} holds class {int(t.max())}, but num_classes={num_classes}")
    return t.long()


def check_dataset(name: str, dataset) -> torch.Tensor:
    """A non-empty map-style dataset of (image, label) with integer ``targets``; returns the targets."""
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"{name} must be a map-style dataset of (image, label) pairs, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"{name} is empty: it holds no sample")
    if not hasattr(dataset, "targets"):
        raise TypeError(f"{name} ({type(dataset).__name__}) has no .targets (the label of every sample), "
                        "which class-wise fitting needs")
    targets = check_labels(f"{name}.targets", dataset.targets)
    if len(targets) != len(dataset):
        raise ValueError(f"{name} has {len(dataset)} samples but {len(targets)} targets")
    return targets


__all__ = ["check_int", "check_number", "check_choice", "check_size", "check_finite_rows", "check_images",
           "check_class_targets", "check_labels", "check_dataset"]
