"""How training runs on the device at hand: bfloat16 autocast and channels-last where they pay.

On a CPU with native bfloat16 (AVX512_BF16 or AMX), oneDNN's convolutions run in bfloat16 about
twice as fast as in float32 and read NHWC (channels-last) tensors without reordering them. Only
*training* takes this path. Every explanation, feature and equality the book asserts is computed
in float32 from the trained weights, so bfloat16 moves what is learnt (one more draw of training
noise), never an identity.

Where it pays, measured on our 2-core EPYC (``benchmarks/train_throughput.py``, ResNet18, batch
128): 1.9x at 64 px and 2.3x at 224 px, but 1.16x at 32 px. ``benchmarks/precision_record.py``
compared the quick record (three seeds) trained both ways: every birds (64 px) cell moved by less
than its 90 % two-sample band, but MNIST's test accuracy (32 px) rose by 0.5 points against a seed
spread of 0.1. So images smaller than :data:`MIN_IMAGE_SIZE` train in float32: the path that
would change their numbers would save them almost nothing. ``torch.compile`` is not used: on the
same CPU, compiling a training step of the fast path took 33 to 59 s and the compiled step was
no faster (0.92x to 1.00x; ``benchmarks/train_throughput.py --compile``).

``$PROTOLIB_TRAIN_PRECISION`` chooses: ``auto`` (default: bfloat16 + channels-last on a CPU with
native bfloat16 for images of at least :data:`MIN_IMAGE_SIZE` px, mixed precision on CUDA, float32
otherwise), ``float32`` (IEEE float32 everywhere, as before this path existed) or ``bfloat16``
(every image size). A CPU without native bfloat16 trains in float32 and says so in one line;
never a crash. The name of the path is part of a trained model's cache key and of its record, so
a float32 checkpoint is never served for a bfloat16 one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import torch

from protolib.core import config

PRECISION_ENV = "PROTOLIB_TRAIN_PRECISION"
CHOICES = ("auto", "float32", "bfloat16")
MIN_IMAGE_SIZE = 64  # px, the smaller side: below it "auto" trains in float32 (see the module docstring)
_said: set[str] = set()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX tiles); without it, oneDNN emulates
    bfloat16 and it is slower than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # an older or stripped torch build: take the safe path
        return False


def choice() -> str:
    """``$PROTOLIB_TRAIN_PRECISION``, checked: one of :data:`CHOICES` (default ``auto``)."""
    raw = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if raw not in CHOICES:
        raise ValueError(f"${PRECISION_ENV} must be one of {', '.join(CHOICES)}; got {raw!r}")
    return raw


@dataclass(frozen=True)
class TrainingPath:
    """The dtype autocast runs in (None: float32) and whether tensors are channels-last, on ``device``."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        """What the cache key and the records say: ``float32``, ``bfloat16 channels-last``, ``cuda float16``..."""
        if self.dtype is None:
            return "float32"
        prefix = "cuda " if self.device.type == "cuda" else ""
        return prefix + str(self.dtype).removeprefix("torch.") + (" channels-last" if self.channels_last else "")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        """The autocast context of this path (a no-op context in float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch in this path's memory format (images only: 4-D tensors)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only for float16 (bfloat16 keeps float32's exponent range)."""
        return torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)


def for_training(device: str | torch.device | None = None, amp: bool = True,
                 image_size: int | None = None) -> TrainingPath:
    """The training path on ``device`` for images of ``image_size`` px (None: unknown, taken as large
    enough); ``amp=False`` (a recipe's choice) always gives float32. See the module docstring."""
    device = config.get_device(device)
    wanted = choice()
    if not amp or wanted == "float32":
        return TrainingPath(device, None, False)
    if device.type == "cuda":
        return TrainingPath(device, config.amp_dtype(device), False)
    if wanted == "auto" and image_size is not None and image_size < MIN_IMAGE_SIZE:
        return TrainingPath(device, None, False)
    if device.type == "cpu" and cpu_has_bf16():
        return TrainingPath(device, torch.bfloat16, True)
    _say_once(f"protolib: this {device.type} has no native bfloat16 (AVX512_BF16 or AMX): training in float32"
              + (f" although ${PRECISION_ENV}=bfloat16" if wanted == "bfloat16" else ""))
    return TrainingPath(device, None, False)


def image_size(dataset) -> int | None:
    """The smaller side of ``dataset``'s first image, or None when its items are not images. Reading an
    item may draw augmentation randomness: call it where the random state is reset afterwards."""
    x = dataset[0][0]
    return int(min(x.shape[-2:])) if isinstance(x, torch.Tensor) and x.dim() == 3 else None


__all__ = ["PRECISION_ENV", "CHOICES", "MIN_IMAGE_SIZE", "TrainingPath", "choice", "cpu_has_bf16", "for_training",
           "image_size"]
