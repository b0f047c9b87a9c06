"""A narrow ResNet: torchvision's block structure, strides and module names at a smaller width.

torchvision's ``BasicBlock`` refuses ``base_width != 64``, so this small builder writes the
network out. Stage widths are ``w, 2w, 4w, 8w`` (torchvision: 64, 128, 256, 512); everything
else is ResNet's: a 7x7 stride-2 stem, a 3x3 stride-2 max pool, stride 2 in the first block of
``layer2``-``layer4``, a 1x1 stride-2 projection on the shortcut where the shape changes, global
average pooling and one linear layer (here without bias, like every protolib head). The grids
and receptive fields are those of ResNet18/34: at 224 px ``layer4`` is 7x7, ``layer3`` 14x14
and ``layer2`` 28x28. The modules are named ``conv1 bn1 relu maxpool layer1..layer4 avgpool
fc`` as in torchvision, so every protolib layer name (``"layer4"``, ``"layer2.1.conv2"``) works.

The cost of a forward pass falls with the square of the width: ResNet18 at width 16 costs
0.135 GMAC per 224 px image against 1.81 for width 64 (``shared/research/evaluation-at-224.md``).

>>> net = narrow_resnet(width=16, depths=(2, 2, 2, 2), num_classes=10)
>>> tuple(net(torch.zeros(1, 3, 224, 224)).shape)
(1, 10)
"""

from __future__ import annotations

import re

import torch
from torch import nn

from protolib.core.checks import check_int

DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
NAME = re.compile(r"^(resnet18|resnet34)_w(\d+)$")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (a 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class NarrowResNet(nn.Module):
    """ResNet with BasicBlocks, stage widths ``(w, 2w, 4w, 8w)`` and ``depths`` blocks per stage."""

    def __init__(self, width: int, depths: tuple[int, int, int, int], num_classes: int):
        super().__init__()
        check_int("width", width, 1), check_int("num_classes", num_classes, 1)
        if len(depths) != 4 or any(int(d) < 1 for d in depths):
            raise ValueError(f"depths must be four positive block counts, got {depths!r}")
        self.width, self.depths = width, tuple(int(d) for d in depths)
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, depth in enumerate(self.depths):
            cout = width * 2 ** i
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(depth)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes, bias=False)
        self._init()

    def _init(self) -> None:
        """torchvision's initialisation: Kaiming-normal convolutions, unit batch-norm scales."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight), nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def narrow_resnet(width: int = 16, depths: tuple[int, int, int, int] = DEPTHS["resnet18"],
                  num_classes: int = 10) -> NarrowResNet:
    """A :class:`NarrowResNet` (random initialisation; no ImageNet weights exist for it)."""
    return NarrowResNet(width, depths, num_classes)


def is_narrow(arch: str) -> bool:
    """Whether ``arch`` names a narrow ResNet: ``resnet18_w16``, ``resnet34_w32``, ..."""
    return isinstance(arch, str) and NAME.match(arch) is not None


def build(arch: str, num_classes: int = 10, pretrained: bool = False) -> NarrowResNet:
    """The narrow ResNet named ``arch`` (``resnet18_w16`` = ResNet18's depths at width 16)."""
    match = NAME.match(arch) if isinstance(arch, str) else None
    if match is None:
        raise ValueError(f"arch: {arch!r} names no narrow ResNet; use resnet18_w<width> or resnet34_w<width>")
    if pretrained:
        raise ValueError(f"arch: no ImageNet weights exist for the narrow {arch}; train it from scratch "
                         "(pretrained=False) or use a full-width torchvision ResNet")
    return narrow_resnet(int(match.group(2)), DEPTHS[match.group(1)], num_classes)


__all__ = ["BasicBlock", "NarrowResNet", "narrow_resnet", "is_narrow", "build", "DEPTHS"]
