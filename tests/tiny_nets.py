"""Hand-built networks with named blocks, tiny in-memory datasets, and small non-ResNet CNNs, shared
by the stage, map, CAM and quality tests."""

from __future__ import annotations

import functools

import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset

# Pixel colours (2 channels) of the four "parts": class 0 images are made of A and B, class 1 of C and D.
A, B, C, D = (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (2.0, 1.0)


class TinyNet(nn.Module):
    """8 x 8 inputs with 2 channels. layer2 = identity (8 x 8), layer3 = 2x2 average (4 x 4),
    layer4 = 2x2 average then a 1x1 convolution to 3 channels (2 x 2), then GAP and a bias-free
    linear head with 2 classes. Every activation is known by hand."""

    def __init__(self):
        super().__init__()
        self.layer2 = nn.Identity()
        self.layer3 = nn.AvgPool2d(2)
        self.layer4 = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(2, 3, 1, bias=False))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.layer4[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).view(3, 2, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]))

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.layer4(self.layer3(self.layer2(x)))), 1))


def paint(regions: dict[tuple[float, float], slice | tuple[slice, slice]]) -> torch.Tensor:
    """A (2, 8, 8) image; ``regions`` maps a colour to the (rows, cols) slices it fills."""
    img = torch.zeros(2, 8, 8)
    for colour, where in regions.items():
        rows, cols = where if isinstance(where, tuple) else (slice(None), where)
        img[:, rows, cols] = torch.tensor(colour).view(2, 1, 1)
    return img


class TinyImages(Dataset):
    """Three class-0 images (A left, B right, split after 4, 3, 5 columns) and three class-1 images
    (C on top, D below, split after 4, 2, 6 rows), interleaved: labels 0, 1, 0, 1, 0, 1."""

    def __init__(self):
        imgs, labels = [], []
        for split0, split1 in ((4, 4), (3, 2), (5, 6)):
            imgs.append(paint({A: slice(0, split0), B: slice(split0, 8)}))
            imgs.append(paint({C: (slice(0, split1), slice(None)), D: (slice(split1, 8), slice(None))}))
            labels += [0, 1]
        self.images, self.targets = torch.stack(imgs), torch.tensor(labels)
        self.classes = ["AB", "CD"]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])


def conv_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU())


class ThreeStages(nn.Module):
    """conv(3->4) stride 1, conv(4->6) stride 2, conv(6->8) stride 2, GAP, linear: three stages
    ``stem`` (H x W), ``down1`` (H/2), ``down2`` (H/4) by construction."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.stem, self.down1, self.down2 = conv_relu(3, 4, 1), conv_relu(4, 6, 2), conv_relu(6, 8, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.down2(self.down1(self.stem(x)))), 1))


@functools.lru_cache(maxsize=None)
def gap_cnn(kind: str) -> nn.Module:
    """One GAP + linear CNN per kind, built once per test session (seeded, random weights, 2
    classes): ``"three"`` (:class:`ThreeStages`), ``"densenet121"``, ``"efficientnet_b0"``."""
    torch.manual_seed(0)
    if kind == "three":
        return ThreeStages().eval()
    return torchvision.models.get_model(kind, weights=None, num_classes=2).eval()


# the stages each of them has (see tests/test_stages.py), deepest last
GAP_CNN_STAGES = {
    "three": ("stem", "down1", "down2"),
    "densenet121": ("features.relu0", "features.denseblock1", "features.denseblock2", "features.denseblock3",
                    "features.norm5"),
    "efficientnet_b0": ("features.1", "features.2", "features.3", "features.5", "features.8"),
}


class NoiseImages(Dataset):
    """Six seeded 3 x ``size`` x ``size`` noise images, labels 0, 1, 0, 1, 0, 1."""

    def __init__(self, size: int = 32):
        self.images = torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(0))
        self.targets = torch.tensor([0, 1, 0, 1, 0, 1])
        self.classes = ["a", "b"]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])
