"""Reading a trained ProtoPNet: "this looks like that" for one image, and prototype alignment.

Alignment cosines (the ProtoPNet row of the paper's Table 1), in ProtoPNet's latent space, the
space where its prototypes live (the add-on output, D dimensions, values in (0, 1)). With
z_i (D, H', W') the latent map of image i and p_j the prototype j of class c(j):

* ``mode="mean"``: e_i = mean over the H' x W' cells of z_i, the counterpart of the CNN's
  pooled embedding used for the CNN and KMEx rows; cos_ij = cos(p_j, e_i);
* ``mode="nearest"``: e_ij = z_i[:, u*, v*], the cell of image i closest to p_j (the patch that
  min-pooling hands to the similarity): cos_ij = cos(p_j, e_ij).

    class = mean_j  mean_{i : y_i =  c(j)} cos_ij        out = mean_j  mean_{i : y_i != c(j)} cos_ij

The sigmoid makes every latent coordinate positive, so every cosine is positive and "out"
sits far above the near-zero values of a CNN's classifier columns: the geometry, not the
alignment, drives the high numbers (the paper's remark on ProtoPNet's row).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from protolib.baselines.protopnet.model import ProtoPNet, squared_distances
from protolib.baselines.protopnet.push import high_activation_box
from protolib.core.inference import evaluating, map_batches, run_device
from protolib.method.similarity import log_similarity


@dataclass
class AlignmentCosines:
    """Mean cosines of prototypes with own-class (``class_``) and other-class (``out``) embeddings.

    per_prototype_class, per_prototype_out: (P,); class_ and out are their means.
    """

    class_: float
    out: float
    per_prototype_class: torch.Tensor
    per_prototype_out: torch.Tensor
    mode: str


def class_out_means(cos: torch.Tensor, labels: torch.Tensor, prototype_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-prototype means of cos (N, P) over images of its class and of the other classes: (P,), (P,)."""
    own = (labels.view(-1, 1) == prototype_class.view(1, -1)).to(cos.dtype)   # (N, P)
    inside = (cos * own).sum(0) / own.sum(0)
    outside = (cos * (1 - own)).sum(0) / (1 - own).sum(0)
    return inside, outside


@torch.no_grad()
def alignment_cosines(model: ProtoPNet, dataset: Dataset, mode: str = "mean", batch_size: int = 100,
                      device=None, progress: bool = False) -> AlignmentCosines:
    """The "class" and "out" cosines of the module docstring over ``dataset`` (evaluation transforms),
    the model run where it is (``device``, when given, must be the model's)."""
    if mode not in ("mean", "nearest"):
        raise ValueError(f"mode must be 'mean' or 'nearest', got {mode!r}")
    device = run_device(model, device)
    p = model.prototypes.flatten(1).float()                                  # (P, D)

    def run(x: torch.Tensor) -> torch.Tensor:
        z = model.latent(x).float()                                           # (B, D, H, W)
        if mode == "mean":
            return F.cosine_similarity(z.mean((2, 3))[:, None], p[None], dim=2)
        d = squared_distances(z, model.prototypes).flatten(2)                 # (B, P, HW)
        idx = d.argmin(2)                                                     # (B, P)
        patches = torch.gather(z.flatten(2), 2, idx[:, None].expand(-1, z.shape[1], -1))  # (B, D, P)
        return F.cosine_similarity(patches.transpose(1, 2), p[None], dim=2)

    with evaluating(model):
        cos, labels = map_batches(run, dataset, batch_size, device, "cosines", progress)
    inside, outside = class_out_means(cos.double(), labels, model.prototype_class.cpu())
    return AlignmentCosines(float(inside.mean()), float(outside.mean()), inside.float(), outside.float(), mode)


@dataclass
class Explanation:
    """Why the model predicted ``predicted`` for one image.

    logits: (C,); similarities: (P,); contributions: (P,) = W[predicted, j] * s_j, whose sum is
    logits[predicted]; top: prototype indices sorted by contribution (largest first);
    maps: (len(top), H, W) similarity maps upsampled to the image; boxes: (len(top), 4) the
    95th-percentile box of each map; cells: (len(top), 2) the closest grid cell.
    """

    logits: torch.Tensor
    predicted: int
    similarities: torch.Tensor
    contributions: torch.Tensor
    top: torch.Tensor
    maps: torch.Tensor
    boxes: torch.Tensor
    cells: torch.Tensor


@torch.no_grad()
def explain(model: ProtoPNet, image: torch.Tensor, top: int = 3, targets: int | None = None,
            percentile: float = 95.0) -> Explanation:
    """Top prototypes behind the logit of the class ``targets`` (default: the prediction) for one
    image (3, H, W)."""
    if image.ndim != 3:
        raise ValueError(f"expected one image (3, H, W), got {tuple(image.shape)}")
    x = image[None].to(model.prototypes.device)
    with evaluating(model):
        z = model.latent(x)
        out = model.forward_latent(z)
    logits, dmin = out.logits[0].float(), out.min_distances[0]
    c = int(logits.argmax()) if targets is None else int(targets)
    sims = log_similarity(dmin)
    contributions = model.last_layer.weight[c] * sims
    order = contributions.argsort(descending=True)[:top]
    H, W = out.distances.shape[-2:]
    cells = torch.stack([torch.div(out.distances[0, order].flatten(1).argmin(1), W, rounding_mode="floor"),
                         out.distances[0, order].flatten(1).argmin(1) % W], dim=1)
    maps = F.interpolate(log_similarity(out.distances[:, order]), size=image.shape[-2:], mode="bicubic", align_corners=False)[0]
    boxes = torch.tensor([high_activation_box(m.cpu(), percentile) for m in maps])
    return Explanation(logits.cpu(), c, sims.cpu(), contributions.cpu(), order.cpu(), maps.cpu(), boxes, cells.cpu())
