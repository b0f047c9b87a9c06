"""The explanation of a batch by one block set (paper eq. 9-10): segments, counts and class scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def class_scores(counts: torch.Tensor, k_per_class: int) -> torch.Tensor:
    """Eq. 10: counts (B, K) of pixels per prototype -> (B, C), the average over each class's K/C."""
    b, k = counts.shape
    if k % k_per_class:
        raise ValueError(f"{k} prototypes cannot be split into classes of {k_per_class}")
    return counts.float().view(b, k // k_per_class, k_per_class).mean(2)


@dataclass
class ExplanationMap:
    """The explanation of a batch by one block set (tensors on the device they were computed on).

    segments: (B, H', W') long, index of the nearest prototype of every pixel (eq. 9);
    counts: (B, K) pixels per prototype (= sum_r s-check_r); scores: (B, C) eq. 10;
    prototype_classes: (K,) the class of every prototype.
    """

    segments: torch.Tensor
    counts: torch.Tensor
    scores: torch.Tensor
    prototype_classes: torch.Tensor

    @property
    def prediction(self) -> torch.Tensor:
        """(B,) class with the largest score; a tie goes to the lowest class index."""
        return self.scores.argmax(1)

    @property
    def segment_classes(self) -> torch.Tensor:
        """(B, H', W') the class of the prototype of every pixel."""
        return self.prototype_classes[self.segments]

    def binary(self) -> torch.Tensor:
        """s-check of eq. 9 as a binary (B, R', K) matrix (small batches only)."""
        return F.one_hot(self.segments.flatten(1), len(self.prototype_classes))


__all__ = ["class_scores", "ExplanationMap"]
