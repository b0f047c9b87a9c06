"""Theorem 1 on hand-built, random and trained networks."""

import pytest
import torch
import torchvision
from torch import nn

from protolib.core import data, train
from protolib.method import theorem1


class TinyCNN(nn.Module):
    """One 1x1 convolution (identity on 2 channels), ReLU, GAP, linear: evidence known by hand."""

    def __init__(self, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3, bias=bias)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]))
            if bias:
                self.fc.bias.copy_(torch.tensor([0.5, -1.0, 0.0]))

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def test_evidence_maps_of_a_hand_built_network():
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, -4.0]]]])  # (1, 2, 1, 2): pixels (1, 2) and (3, -4)
    model = TinyCNN()
    h, maps = theorem1.evidence_maps(model, x)
    assert torch.equal(h, torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]]))  # ReLU clips -4
    # h_r . c_j for pixels (1,2) and (3,0): c_1=(1,0) -> 1, 3; c_2=(0,2) -> 4, 0; c_3=(1,-1) -> -1, 3
    assert torch.equal(maps[0, :, 0], torch.tensor([[1.0, 3.0], [4.0, 0.0], [-1.0, 3.0]]))
    assert torch.equal(maps.mean((2, 3)), model(x)) and torch.equal(model(x), torch.tensor([[2.0, 2.0, 1.0]]))
    assert torch.equal(theorem1.classifier_prototypes(model), model.fc.weight)


def test_a_bias_is_carried_by_every_pixel():
    model = TinyCNN(bias=True)
    x = torch.randn(3, 2, 4, 5)
    check = theorem1.theorem1_check(model, x, torch.float64)
    assert check.max_abs_error < 1e-12


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "efficientnet_b0", "mobilenet_v2"])
def test_theorem1_across_families(arch):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    model.train()  # the check must switch to eval itself (dropout in efficientnet / mobilenet)
    x = torch.randn(2, 3, 64, 64)
    check64 = theorem1.theorem1_check(model, x, torch.float64)
    assert check64.max_abs_error < 1e-10 and check64.dtype == torch.float64
    check32 = theorem1.theorem1_check(model, x, torch.float32)
    assert check32.max_abs_error < 1e-4 * max(1.0, check32.logits.abs().max().item())
    assert model.training  # mode restored


def test_head_must_be_affine_for_the_identity():
    torch.manual_seed(0)
    h = torch.rand(4, 8, 3, 3)
    linear = nn.Linear(8, 5)
    assert theorem1.head_commutes_with_mean(linear, h) < 1e-6
    bn = nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 5)).eval()
    with torch.no_grad():
        bn[0].running_mean.uniform_(); bn[0].running_var.uniform_(0.5, 2)
    assert theorem1.head_commutes_with_mean(bn, h) < 1e-6           # eval BatchNorm is affine: still holds
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5))
    assert theorem1.head_commutes_with_mean(mlp, h) > 1e-3           # a ReLU between breaks it
    ln = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 5))
    assert theorem1.head_commutes_with_mean(ln, h) > 1e-3            # so does a LayerNorm


@pytest.mark.slow
def test_theorem1_on_a_trained_network():
    result = train.load_or_train("digits", recipe=train.Recipe(epochs=2), progress=False)
    assert result.meta["test_accuracy"] > 50 and result.test_accuracy == result.meta["test_accuracy"] / 100
    assert result.test_accuracy == pytest.approx(train.accuracy(result.model, data.load("digits", "test")), abs=1e-12)
    x = torch.stack([data.load("digits", "test")[i][0] for i in range(32)])
    x = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")  # 64 px: a 2 x 2 last block
    assert theorem1.evidence_maps(result.model, x)[1].shape[2:] == (2, 2)
    check32 = theorem1.theorem1_check(result.model, x, torch.float32)
    check64 = theorem1.theorem1_check(result.model, x, torch.float64)
    assert check32.max_abs_error < 1e-4
    assert check64.max_abs_error < 1e-10
