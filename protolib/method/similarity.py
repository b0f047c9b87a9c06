"""The log-similarity of ProtoPNet (Chen et al., 2019), which KMEx also uses.

For a squared distance d >= 0 between a latent vector and a prototype,

    s(d) = log((d + 1) / (d + eps)),    eps = 1e-4,

decreasing in d, from log(1 / eps) at d = 0 towards 0 for far points. One function serves NumPy
arrays (KMEx) and torch tensors (ProtoPNet, differentiable).
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-4


def log_similarity(d, eps: float = EPS):
    """log((d + 1) / (d + eps)) elementwise, for a NumPy array or a torch tensor of squared distances."""
    ratio = (d + 1) / (d + eps)
    return torch.log(ratio) if isinstance(ratio, torch.Tensor) else np.log(ratio)
