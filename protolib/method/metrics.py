"""Prototype alignment cosines (the paper's Table 1) and plain accuracies (Table 2).

Alignment. For prototypes p_1..p_K, where p_k belongs to class j_k, and embeddings z_i with
labels y_i (one split, named by the caller),

    class_k = mean over {i : y_i = j_k}  of cos(p_k, z_i)
    out_k   = mean over {i : y_i != j_k} of cos(p_k, z_i)

and the table reports the averages of class_k and out_k over the K prototypes (each prototype
weighs the same). For the CNN the prototypes are the classifier columns c_j (K = C); for KMEx
they are the k-means centroids (K = C * K/C). A cosine near 1 for "class" means the prototype
points along the direction in which its class lies; "out" near 0 means it is orthogonal to
the other classes.

Because cos(p, z) = p/|p| . z/|z|, the mean cosine of p with a set of embeddings is p/|p|
dotted with the mean of their unit vectors: the computation is O((N + K) D), never (N, K).
A zero vector has cosine 0 with everything (norms are clamped at ``EPS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from protolib.core.convert import to_numpy

EPS = 1e-12


def _as_tensor(x, dtype=torch.float64) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows of x (N, D) scaled to unit norm (zero rows stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(EPS)


@dataclass
class Alignment:
    """Per-prototype alignment cosines (K,) and their means (the Table 1 entries)."""

    class_cos: np.ndarray
    out_cos: np.ndarray

    @property
    def class_mean(self) -> float:
        return float(self.class_cos.mean())

    @property
    def out_mean(self) -> float:
        return float(self.out_cos.mean())

    def __repr__(self) -> str:
        return f"Alignment(class={self.class_mean:.3f}, out={self.out_mean:.3f}, K={len(self.class_cos)})"


def alignment_cosines(prototypes, prototype_labels, z, y) -> Alignment:
    """Mean cosine of each prototype with the embeddings of its class and of all other classes.

    prototypes: (K, D); prototype_labels: (K,) class of each prototype; z: (N, D) embeddings of
    one split; y: (N,) their labels. Torch tensors (any device) or arrays; computed in float64.
    Every prototype's class must occur in y, and y must hold at least one other class.
    """
    P = _as_tensor(prototypes)
    Z = _as_tensor(z).to(P.device)
    labels_p, labels_z = to_numpy(prototype_labels), to_numpy(y)
    if P.ndim != 2 or Z.ndim != 2 or P.shape[1] != Z.shape[1]:
        raise ValueError(f"prototypes (K, D) and z (N, D) must share D; got {tuple(P.shape)} and {tuple(Z.shape)}")
    if len(labels_p) != len(P) or len(labels_z) != len(Z):
        raise ValueError("one label per prototype and one per embedding are needed")
    classes, inverse = np.unique(labels_z, return_inverse=True)
    missing = set(labels_p.tolist()) - set(classes.tolist())
    if missing or len(classes) < 2:
        raise ValueError(f"classes {sorted(missing)} of the prototypes are absent from y" if missing
                         else "y must hold at least two classes (else 'out' is undefined)")
    U = unit(Z)
    onehot = torch.zeros(len(classes), len(Z), dtype=U.dtype, device=U.device)
    onehot[torch.as_tensor(inverse, device=U.device), torch.arange(len(Z), device=U.device)] = 1
    class_sum, n_class = onehot @ U, onehot.sum(1, keepdim=True)             # (C, D), (C, 1)
    out_sum, n_out = U.sum(0, keepdim=True) - class_sum, len(Z) - n_class
    j = torch.as_tensor(np.searchsorted(classes, labels_p), device=U.device)
    Pu = unit(P)
    class_cos = (Pu * class_sum[j]).sum(1) / n_class[j, 0]
    out_cos = (Pu * out_sum[j]).sum(1) / n_out[j, 0]
    return Alignment(class_cos.cpu().numpy(), out_cos.cpu().numpy())


def rescale_to_class_norm(prototypes, prototype_labels, z, y) -> torch.Tensor:
    """Each prototype scaled to the mean norm of its class's embeddings: p / |p| * mean_i |z_i|.

    Used to place the classifier columns c_j, whose norm is unrelated to that of the data,
    among the embeddings (the triangles of the paper's Figure 2). Returns (K, D) float64.
    """
    P = _as_tensor(prototypes)
    norms = _as_tensor(z).to(P.device).norm(dim=1)
    labels_p, labels_z = to_numpy(prototype_labels), to_numpy(y)
    if missing := set(labels_p.tolist()) - set(labels_z.tolist()):
        raise ValueError(f"classes {sorted(missing)} of the prototypes are absent from y")
    scale = torch.stack([norms[torch.as_tensor(labels_z == lab, device=P.device)].mean() for lab in labels_p])
    return unit(P) * scale[:, None]


def neighbour_agreement(prototypes, prototype_labels, z, y, n_neighbours: int = 10) -> np.ndarray:
    """Share (K,) of each prototype's ``n_neighbours`` nearest embeddings (Euclidean) in its class.

    A prototype that lies inside its class's cluster scores near 1; one that sits among other
    classes, or far from all data, scores what its surroundings give. This is the measurable
    form of the paper's remark on Figure 2 (KMEx prototypes lie in their clusters, the c_j
    rarely do), computed in embedding space rather than in the 2-d UMAP picture.
    """
    P = _as_tensor(prototypes)
    Z = _as_tensor(z).to(P.device)
    labels_z = torch.as_tensor(to_numpy(y), device=P.device)
    labels_p = torch.as_tensor(to_numpy(prototype_labels), device=P.device)
    if not 1 <= n_neighbours <= len(Z):
        raise ValueError(f"n_neighbours must be in [1, {len(Z)}], got {n_neighbours}")
    idx = torch.cdist(P, Z).topk(n_neighbours, dim=1, largest=False).indices     # (K, n)
    return (labels_z[idx] == labels_p[:, None]).double().mean(1).cpu().numpy()


def accuracy(y_true, y_pred) -> float:
    """Plain top-1 accuracy, a fraction in [0, 1] (no Hungarian matching, unlike the KMEx code)."""
    y_true, y_pred = to_numpy(y_true), to_numpy(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError("y_true and y_pred must be non-empty 1-d arrays of one length; "
                         f"got {y_true.shape} and {y_pred.shape}")
    return float((y_true == y_pred).mean())


@dataclass
class TrainTest:
    """Train and test accuracy, each a fraction in [0, 1] (a row of the paper's Table 2, which
    prints them in percent)."""

    train: float
    test: float

    def __repr__(self) -> str:
        return f"TrainTest(train={self.train:.1%}, test={self.test:.1%})"


def train_test_accuracy(predict, z_train, y_train, z_test, y_test) -> TrainTest:
    """Accuracies of ``predict`` (a callable z -> labels, e.g. ``clf.predict``) on both splits,
    fractions in [0, 1]."""
    return TrainTest(accuracy(y_train, predict(z_train)), accuracy(y_test, predict(z_test)))


__all__ = ["Alignment", "TrainTest", "accuracy", "alignment_cosines", "neighbour_agreement", "rescale_to_class_norm",
           "train_test_accuracy", "unit"]
