"""Exact float32 for the book's equality checks, and tolerances that follow the dtype in use.

On a CPU, float32 matmuls and convolutions are IEEE float32 and repeatable. On a GPU they need
not be: TF32 rounds matmul and convolution inputs to 10 mantissa bits, cuDNN may pick a
non-deterministic kernel, and autocast runs layers in bfloat16 or float16. A check such as
"the logits equal the mean of the evidence maps to 1e-4" then fails for reasons that have
nothing to do with the maths. :func:`exact` switches all of that off for a block of code and
restores the previous settings afterwards; :func:`tolerance` gives a bound that scales with the
precision actually used, for checks that run outside it.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from typing import Iterator

import torch

# cuBLAS needs this for deterministic results once deterministic algorithms are on (CUDA >= 10.2).
CUBLAS_ENV, CUBLAS_DETERMINISTIC = "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
TF32_EPS = 2.0 ** -10       # TF32 keeps 10 mantissa bits (float32 keeps 23)


def state() -> dict:
    """The global torch settings that :func:`exact` changes, as a dict (for saving and comparing)."""
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_env": os.environ.get(CUBLAS_ENV),
    }


def _restore(saved: dict) -> None:
    torch.backends.cuda.matmul.allow_tf32 = saved["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn_tf32"]
    torch.set_float32_matmul_precision(saved["matmul_precision"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    if saved["cublas_env"] is None:
        os.environ.pop(CUBLAS_ENV, None)
    else:
        os.environ[CUBLAS_ENV] = saved["cublas_env"]


@contextmanager
def exact() -> Iterator[None]:
    """Deterministic IEEE float32 inside the block, on every device; the previous state after.

    Inside: TF32 off for matmuls and cuDNN, ``torch.use_deterministic_algorithms(True)``, cuDNN
    deterministic with benchmarking off, autocast disabled (CPU and CUDA). On a CPU this changes
    nothing numerically: the CPU kernels are already exact and repeatable.
    """
    saved = state()
    try:
        os.environ.setdefault(CUBLAS_ENV, CUBLAS_DETERMINISTIC)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        with ExitStack() as stack:
            stack.enter_context(torch.autocast("cpu", enabled=False))
            if torch.cuda.is_available():
                stack.enter_context(torch.autocast("cuda", enabled=False))
            yield
    finally:
        _restore(saved)


def eps(dtype: torch.dtype, device: str | torch.device = "cpu") -> float:
    """The unit roundoff that computations in ``dtype`` on ``device`` really get right now.

    float32 on CUDA counts as TF32 while TF32 is allowed for matmuls or cuDNN (outside
    :func:`exact`); every other case is ``torch.finfo(dtype).eps``."""
    if not dtype.is_floating_point:
        raise ValueError(f"a tolerance needs a floating-point dtype, got {dtype}")
    on_cuda = torch.device(device).type == "cuda"
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32 \
        or torch.get_float32_matmul_precision() != "highest"
    if dtype == torch.float32 and on_cuda and tf32:
        return TF32_EPS
    return torch.finfo(dtype).eps


def tolerance(dtype: torch.dtype, device: str | torch.device = "cpu", scale: float = 1.0,
              factor: float = 1000.0) -> float:
    """An absolute tolerance for comparing two computations of the same quantity of size ``scale``.

    ``factor * eps(dtype, device) * scale``: 1000 roundings of slack, enough for sums of a few
    thousand terms. float32 on a CPU: 1.2e-4 * scale; float64: 2.2e-13 * scale; TF32: 0.98 * scale.
    """
    if scale < 0 or factor <= 0:
        raise ValueError(f"scale must be >= 0 and factor > 0, got scale={scale}, factor={factor}")
    return factor * eps(dtype, device) * scale
