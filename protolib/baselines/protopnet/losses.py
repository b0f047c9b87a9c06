"""ProtoPNet's training objective, written term by term.

    loss = CE(logits, y) + 0.8 * cluster - 0.08 * separation + 1e-4 * L1_wrong

    cluster    = mean_b  min_{j : class(j) =  y_b} dmin[b, j]   pull each image to a prototype of its class
    separation = mean_b  min_{j : class(j) != y_b} dmin[b, j]   push it away from the other classes'
    L1_wrong   = sum_{c, j : class(j) != c} |W[c, j]|             keep wrong-class evidence small

The reference code computes both minima as ``max_dist - max_j((max_dist - d_j) * mask_j)``
with ``max_dist = D`` (the largest squared distance between two points of [0, 1]^D). That is
the plain masked minimum written here whenever every distance is at most D, which always holds
when latent patches and prototypes lie in [0, 1]^D (the sigmoid guarantees the former, push the
latter); we write the clear form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protolib.baselines.protopnet.model import ProtoPNet, ProtoPNetOutput


@dataclass(frozen=True)
class Coefficients:
    """Weights of the loss terms (reference values); separation enters with a minus sign."""

    cross_entropy: float = 1.0
    cluster: float = 0.8
    separation: float = 0.08
    l1: float = 1e-4


@dataclass
class LossTerms:
    """The terms of one batch (scalars with gradient) and their weighted total."""

    cross_entropy: torch.Tensor
    cluster: torch.Tensor
    separation: torch.Tensor
    l1: torch.Tensor
    total: torch.Tensor

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """The five terms as detached 0-d tensors on their device (summing them needs no host sync)."""
        return {k: getattr(self, k).detach() for k in ("cross_entropy", "cluster", "separation", "l1", "total")}

    def as_floats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.as_tensors().items()}


def _own_class_mask(labels: torch.Tensor, prototype_class: torch.Tensor) -> torch.Tensor:
    """own[b, j] = class(j) == y_b: (B, P) bool."""
    return labels.view(-1, 1) == prototype_class.view(1, -1)


def cluster_cost(min_distances: torch.Tensor, labels: torch.Tensor, prototype_class: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the distance to the closest own-class prototype. min_distances: (B, P)."""
    own = _own_class_mask(labels, prototype_class)
    if not own.any(dim=1).all():
        raise ValueError("some labels have no prototype")
    return min_distances.masked_fill(~own, float("inf")).min(dim=1).values.mean()


def separation_cost(min_distances: torch.Tensor, labels: torch.Tensor, prototype_class: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the distance to the closest other-class prototype. min_distances: (B, P)."""
    own = _own_class_mask(labels, prototype_class)
    return min_distances.masked_fill(own, float("inf")).min(dim=1).values.mean()


def l1_wrong_class(weight: torch.Tensor, class_identity: torch.Tensor) -> torch.Tensor:
    """Sum of |W[c, j]| over the entries where prototype j is not of class c. weight: (C, P)."""
    return (weight * (1 - class_identity.t())).abs().sum()


def protopnet_loss(out: ProtoPNetOutput, labels: torch.Tensor, model: ProtoPNet,
                   coefs: Coefficients = Coefficients()) -> LossTerms:
    """All terms of the objective for one batch and their weighted sum."""
    ce = F.cross_entropy(out.logits.float(), labels)
    clst = cluster_cost(out.min_distances, labels, model.prototype_class)
    sep = separation_cost(out.min_distances, labels, model.prototype_class)
    l1 = l1_wrong_class(model.last_layer.weight, model.class_identity)
    total = coefs.cross_entropy * ce + coefs.cluster * clst - coefs.separation * sep + coefs.l1 * l1
    return LossTerms(ce, clst, sep, l1, total)
