"""A toy for checking the metrics by hand: a GAP + linear network whose class-0 logit is the mean
of one input channel (every other logit is 0), and a small image and part mask to run it on.

With a zero baseline the class-0 logit after deleting a set of pixels is the sum of the pixels
left divided by the number of pixels, so every deletion and insertion curve, and their areas,
have a closed form; the chapter "Are the explanations right?" derives them before it runs the
metrics on real birds, and the unit tests check the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn


def mean_channel_net(in_channels: int = 1, channel: int = 0, num_classes: int = 2) -> nn.Module:
    """GAP, then a bias-free linear layer with weight 1 from ``channel`` to class 0 and 0 elsewhere."""
    if not 0 <= channel < in_channels or num_classes < 2:
        raise ValueError(f"need 0 <= channel < in_channels and num_classes >= 2; got channel {channel}, "
                         f"in_channels {in_channels}, num_classes {num_classes}")
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes, bias=False))
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].weight[0, channel] = 1.0
    return net


def ramp_image(side: int = 4) -> torch.Tensor:
    """(1, 1, side, side) image whose pixels are 0, 1, ..., side^2 - 1 in raster order."""
    return torch.arange(side * side, dtype=torch.float32).view(1, 1, side, side)


def corner_bird(side: int = 4) -> torch.Tensor:
    """(1, side, side) part mask: a three-pixel "bird" in the bottom-right corner, head (id 1) on the
    corner pixel, body (id 2) on its two neighbours, background (id 0) elsewhere."""
    mask = torch.zeros(1, side, side, dtype=torch.long)
    mask[0, -1, -1] = 1
    mask[0, -2, -1] = mask[0, -1, -2] = 2
    return mask


__all__ = ["mean_channel_net", "ramp_image", "corner_bird"]
