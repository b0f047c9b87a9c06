"""The ProtoPNet network (Chen et al., 2019): backbone, add-on layers, prototypes, last layer.

    x (B,3,H,W) --backbone--> f (B,D_b,H',W') --add-on--> z (B,D,H',W') in (0,1)
    d[b,j,u,v] = ||z[b,:,u,v] - p_j||^2              squared L2 to every prototype p_j (D,)
    dmin[b,j]  = min_{u,v} d[b,j,u,v]                  min-pooling over space
    s[b,j]     = log((dmin + 1) / (dmin + 1e-4))       similarity, large when close
    logits     = s @ W.T                               W: (C, P) last layer, no bias

The add-on is the reference's ``regular`` type (1x1 conv, ReLU, 1x1 conv, sigmoid). Prototypes
are ``(P, D, 1, 1)`` with P = M * C, prototype j belonging to class ``j // M``, initialised
uniformly in [0, 1). The last layer starts at +1 for a prototype's own class and -0.5 elsewhere.

Distances are computed as ||z||^2 - 2 z.p + ||p||^2 with 1x1 convolutions, clamped at 0 (the
reference does the same), always in float32 even under mixed precision: the subtraction
cancels catastrophically in half precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protolib.core import gap, models
from protolib.method.similarity import log_similarity


@dataclass
class ProtoPNetOutput:
    """One forward pass: logits (B, C), min_distances (B, P), distances (B, P, H', W')."""

    logits: torch.Tensor
    min_distances: torch.Tensor
    distances: torch.Tensor

    @property
    def similarities(self) -> torch.Tensor:
        """s = log((dmin + 1) / (dmin + eps)): (B, P)."""
        return log_similarity(self.min_distances)


def squared_distances(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """||z[b,:,u,v] - p_j||^2 for z: (B, D, H, W), prototypes: (P, D, 1, 1) -> (B, P, H, W).

    Expanded as ||z||^2 - 2 z.p + ||p||^2 (three convolutions, no (B, P, D, H, W) tensor),
    clamped at 0 against rounding, in float32 whatever the autocast state.
    """
    if z.ndim != 4 or prototypes.ndim != 4 or z.shape[1] != prototypes.shape[1]:
        raise ValueError(f"z must be (B, D, H, W) and prototypes (P, D, 1, 1); got {tuple(z.shape)}, {tuple(prototypes.shape)}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        z, p = z.float(), prototypes.float()
        z2 = (z * z).sum(dim=1, keepdim=True)                   # (B, 1, H, W)
        zp = F.conv2d(z, p)                                      # (B, P, H, W)
        p2 = (p * p).sum(dim=(1, 2, 3)).view(1, -1, 1, 1)        # (1, P, 1, 1)
        return F.relu(z2 - 2 * zp + p2)


def add_on_layers(in_channels: int, dim: int) -> nn.Sequential:
    """The reference's ``regular`` add-on: 1x1 conv, ReLU, 1x1 conv, sigmoid (D_b -> D -> D)."""
    layers = nn.Sequential(
        nn.Conv2d(in_channels, dim, kernel_size=1), nn.ReLU(),
        nn.Conv2d(dim, dim, kernel_size=1), nn.Sigmoid(),
    )
    for m in layers:  # the reference initialises the add-on convolutions with Kaiming normal
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return layers


class ProtoPNet(nn.Module):
    """ProtoPNet with ``k_per_class`` prototypes of dimension ``dim`` for each of ``num_classes``.

    ``backbone`` maps images to a feature map (B, D_b, H', W'); ``backbone_channels`` is D_b.
    Build one from a torchvision name with :func:`build_protopnet` or from a trained CNN with
    :meth:`from_cnn`.
    """

    def __init__(self, backbone: nn.Module, backbone_channels: int, num_classes: int,
                 k_per_class: int = 10, dim: int = 128, incorrect_weight: float = -0.5):
        super().__init__()
        if num_classes < 2 or k_per_class < 1 or dim < 1:
            raise ValueError("need num_classes >= 2, k_per_class >= 1 and dim >= 1")
        self.num_classes, self.k_per_class, self.dim = num_classes, k_per_class, dim
        self.backbone = backbone
        self.add_on = add_on_layers(backbone_channels, dim)
        self.prototypes = nn.Parameter(torch.rand(num_classes * k_per_class, dim, 1, 1))
        self.last_layer = nn.Linear(num_classes * k_per_class, num_classes, bias=False)
        classes = torch.arange(num_classes).repeat_interleave(k_per_class)
        self.register_buffer("prototype_class", classes)                                   # (P,)
        self.register_buffer("class_identity", F.one_hot(classes, num_classes).float())   # (P, C)
        self.reset_last_layer(incorrect_weight)

    @property
    def num_prototypes(self) -> int:
        return self.prototypes.shape[0]

    @torch.no_grad()
    def reset_last_layer(self, incorrect_weight: float = -0.5) -> None:
        """W[c, j] = 1 if prototype j belongs to class c, else ``incorrect_weight``."""
        ident = self.class_identity.t()                           # (C, P)
        self.last_layer.weight.copy_(ident + incorrect_weight * (1 - ident))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """z = add_on(backbone(x)): (B, D, H', W'), values in (0, 1)."""
        return self.add_on(self.backbone(x))

    def forward_latent(self, z: torch.Tensor) -> ProtoPNetOutput:
        """Everything after the add-on, from z: (B, D, H', W')."""
        d = squared_distances(z, self.prototypes)
        dmin = d.flatten(2).min(dim=2).values
        logits = self.last_layer(log_similarity(dmin).to(self.last_layer.weight.dtype))
        return ProtoPNetOutput(logits, dmin, d)

    def forward(self, x: torch.Tensor) -> ProtoPNetOutput:
        return self.forward_latent(self.latent(x))

    @classmethod
    def from_cnn(cls, cnn: nn.Module, num_classes: int, k_per_class: int = 10, dim: int = 128) -> "ProtoPNet":
        """A ProtoPNet whose backbone is the encoder of a GAP + linear CNN (its head is dropped).

        The backbone shares its parameters with ``cnn``; pass a copy to keep ``cnn`` intact.
        """
        split = gap.gap_split(cnn)
        return cls(split.encoder, split.head.in_features, num_classes, k_per_class, dim)


def build_protopnet(arch: str, num_classes: int, k_per_class: int = 10, dim: int = 128,
                    pretrained: bool = False) -> ProtoPNet:
    """A ProtoPNet on a torchvision backbone (ImageNet weights when ``pretrained``)."""
    cnn = models.build_model(arch, num_classes, pretrained=pretrained)
    return ProtoPNet.from_cnn(cnn, num_classes, k_per_class, dim)
