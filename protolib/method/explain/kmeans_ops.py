"""The kernels of a k-means pass over chunks of rows: row norms, centre sums, and the GEMM's padding.

Small and separate so that :mod:`protolib.method.explain.kmeans` (the algorithm) and
:mod:`protolib.method.explain.kmeans_backends` (the stream) share them; each is measured by
``benchmarks/kmeans_backends.py``.
"""

from __future__ import annotations

import torch

GEMM_COLUMNS = 16  # centre columns of a pass's GEMM are padded to a multiple of this (one AVX-512 register)


def padded_columns(w: torch.Tensor) -> torch.Tensor:
    """(D, m) -> (D, m') with zero columns up to a multiple of :data:`GEMM_COLUMNS`, as a view of a
    row-major (m', D) tensor. A thin GEMM's time on a CPU depends on its column count, not only on
    its work: on our 2-core EPYC (MKL, float32), 200,000 rows in chunks of 4,096 times (896 x m)
    took 1.5-2.5x longer at m = 6 or 11 than at m = 16. The padded columns' products are zeros,
    never read; ``benchmarks/kmeans_backends.py`` measures the whole fit."""
    m = w.shape[1]
    wide = -(-m // GEMM_COLUMNS) * GEMM_COLUMNS
    if w.device.type != "cpu" or wide == m:
        return w
    out = torch.zeros(wide, w.shape[0], dtype=w.dtype, device=w.device)
    out[:m] = w.T
    return out.T


def thin_columns(w: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` (D, m) and its ``bias`` (m,) as :func:`padded_columns` and zeros where that pays for a
    Lloyd step's GEMM (a column count 9 to 15 past a multiple of 16), else as they are. Measured
    here, 2,560 x 896 rows times (896 x m): 1.15 ms at m = 10 against 0.54 ms padded to 16, 1.12
    against 0.83 ms at m = 25; no gain at m = 4, 20 or 40."""
    if w.shape[1] % GEMM_COLUMNS <= GEMM_COLUMNS // 2:
        return w, bias
    wide = padded_columns(w)
    return wide, torch.cat([bias, bias.new_zeros(wide.shape[1] - len(bias))])


def add_rows(sums: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> None:
    """``sums[j] += sum of the rows labelled j`` (sums (k, D) float64, in place): the chunk is summed in
    its own dtype by ``index_add_`` (one read of the rows; a one-hot GEMM costs a thin GEMM more)."""
    part = torch.zeros(sums.shape, dtype=rows.dtype, device=rows.device).index_add_(0, labels, rows)
    sums += part.double()


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    """|x_i|^2 of every row of ``x`` (N, D) -> (N,), without an (N, D) temporary."""
    return torch.linalg.vector_norm(x, dim=1).square_()


__all__ = ["GEMM_COLUMNS", "padded_columns", "thin_columns", "add_rows", "sq_norms"]
