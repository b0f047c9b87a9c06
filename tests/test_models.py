import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from protolib.core import gap, hooks
from protolib.core.gap import UnsupportedHeadError, split_gap_linear
from protolib.core.hooks import capture
from protolib.core.models import WeightsUnavailableError, build_model

GAP_FAMILIES = ["resnet18", "densenet121", "efficientnet_b0", "mobilenet_v2", "regnet_y_400mf"]


@pytest.mark.parametrize("arch", GAP_FAMILIES)
def test_split_reproduces_the_model(arch):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None).eval()
    split = split_gap_linear(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(split.head(split.pooled(x)), model(x), atol=1e-5)
    assert isinstance(split.head, nn.Linear) and split.head is model.get_submodule(split.head_name)


def test_split_shares_parameters_with_the_model():
    model = build_model("resnet18", 3).eval()
    split = split_gap_linear(model)
    x = torch.randn(1, 3, 32, 32)
    before = split.features(x).clone()
    with torch.no_grad():
        model.layer4[1].conv2.weight.mul_(2)
    assert not torch.allclose(split.features(x), before)


def test_gap_split_is_traced_once_per_model_and_again_when_a_layer_is_replaced():
    import gc
    import weakref
    model = build_model("resnet18", 3).eval()
    first = gap.gap_split(model)
    assert gap.gap_split(model) is first and gap.gap_split(build_model("resnet18", 3)) is not first
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(first.head(first.pooled(x)), model(x))
        in_eval = first.features(x)
        model.train()                                   # batch statistics now: the split follows
        assert not torch.allclose(gap.gap_split(model).features(x), in_eval)
    model.eval()
    model.fc = nn.Linear(512, 5, bias=False)            # a new head: traced again
    second = gap.gap_split(model)
    assert second is not first and second.head is model.fc
    model.layer4 = nn.Sequential(model.layer4[0])       # a new block: traced again
    third = gap.gap_split(model)
    assert third is not second
    with torch.no_grad():
        assert torch.equal(third.head(third.pooled(x)), model(x))
    alive = weakref.ref(model)
    del model, first, second, third
    gc.collect()
    assert alive() is None                              # the cache does not keep the model


@pytest.mark.parametrize("arch,culprit", [
    ("vgg11", "ReLU"),                 # an MLP head
    ("mobilenet_v3_small", "Hardswish"),
    ("convnext_tiny", r"classifier\.0 \(LayerNorm2d"),  # the layer, not an fx node such as permute_45
])
def test_other_heads_are_refused_with_the_reason(arch, culprit):
    model = torchvision.models.get_model(arch, weights=None)
    with pytest.raises(UnsupportedHeadError, match=culprit):
        split_gap_linear(model)


def test_googlenet_is_gap_dropout_linear_with_or_without_its_auxiliary_heads():
    torch.manual_seed(0)
    aux = torchvision.models.get_model("googlenet", weights=None, init_weights=False)  # aux heads, training mode
    split = split_gap_linear(aux)
    assert split.head_name == "fc" and aux.training and split.encoder.training
    model = build_model("googlenet", 7)
    assert model.aux1 is None and model.fc.bias is None and model.fc.out_features == 7
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    split = split_gap_linear(model)
    with torch.no_grad():
        torch.testing.assert_close(split.head(split.pooled(x)), model(x))
    model.train()
    assert model(x).shape == (2, 7)  # a plain tensor of logits in training mode too (trainable as is)


def test_a_model_that_does_not_end_in_linear_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Softmax(dim=1))
    with pytest.raises(UnsupportedHeadError, match="not a linear layer"):
        split_gap_linear(model)


def test_build_model_has_a_bias_free_head():
    model = build_model("resnet18", 7)
    assert model.fc.out_features == 7 and model.fc.bias is None
    dense = build_model("densenet121", 4)
    assert dense.classifier.out_features == 4 and dense.classifier.bias is None
    with pytest.raises(ValueError, match="unknown torchvision architecture"):
        build_model("resnet19")


def test_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match=r"(?s)resnet34.*resnet34-.*\.pth.*checkpoints"):
        build_model("resnet34", 10, pretrained=True)


def test_capture_records_blocks_and_removes_hooks():
    model = build_model("resnet18", 10).eval()
    with capture(model, ["layer2", model.layer4]) as acts:
        model(torch.zeros(2, 3, 64, 64))
    assert acts["layer2"].shape == (2, 128, 8, 8) and acts["layer4"].shape == (2, 512, 2, 2)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no module 'layer9'"):
        with capture(model, ["layer9"]):
            pass
    with pytest.raises(RuntimeError):
        with capture(model, ["layer1"]):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules())


def test_block_outputs_matches_manual_forward():
    model = build_model("resnet18", 10).eval()
    x = torch.randn(1, 3, 32, 32)
    outs = hooks.block_outputs(model, x, ["layer1", "layer4"])
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        assert torch.equal(outs["layer1"], model.layer1(y))
