"""The encoder's stages found from the model, and the block sets resolved on them, on ResNet,
DenseNet, EfficientNet and hand-built GAP + linear CNNs whose stages are known by construction."""

from collections import OrderedDict

import pytest
import torch
from tiny_nets import GAP_CNN_STAGES, ThreeStages, conv_relu, gap_cnn
from torch import nn

from protolib.core import stages
from protolib.core.gap import UnsupportedHeadError
from protolib.core.models import build_model
from protolib.method.explain import blocks, maps


def wrapped() -> nn.Sequential:
    """The same layers inside one ``features`` container, which spans all three grids."""
    features = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, 2, 1), nn.ReLU(),
                             nn.Conv2d(6, 8, 3, 2, 1), nn.ReLU())
    return nn.Sequential(OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
                                     fc=nn.Linear(8, 2)))


def test_hand_built_stages_and_block_sets():
    net = ThreeStages()
    info = stages.stage_info(net)
    assert info.names == ("stem", "down1", "down2") and stages.stages(net) == info.names
    assert info.grids == ((128, 128), (64, 64), (32, 32)) and info.probe == (128, 128)
    assert info.head == "fc" and info.encoder_output == "down2"
    assert blocks.resolve_blocks("B234", net) == ("stem", "down1", "down2")
    assert blocks.resolve_blocks("B34", net) == ("down1", "down2") and blocks.resolve_blocks("B4", net) == ("down2",)
    assert blocks.resolve_blocks("B24", net) == ("stem", "down2")
    assert blocks.block_set_name(("down1", "down2"), net) == "B34" and blocks.block_set_name(["stem", "x"], net) == "stem+x"
    assert maps.ExplanationMaps(net, ["down1", "down2"]).name == "B34"
    assert stages.stage_info(net, 16).grids == ((16, 16), (8, 8), (4, 4))
    with pytest.raises(ValueError, match=r"'B1234' needs the last 4 stages, but ThreeStages has 3: stem \(128 x 128\), "
                                         r"down1 \(64 x 64\), down2 \(32 x 32\)"):
        blocks.resolve_blocks("B1234", net)
    with pytest.raises(ValueError, match="ResNet stage numbers 1 to 4"):
        blocks.resolve_blocks("B5", net)


def test_a_container_spanning_several_grids_is_never_a_stage():
    net = wrapped()
    info = stages.stage_info(net)
    assert info.names == ("features.1", "features.3", "features.5")  # the ReLUs, last at each grid
    assert info.head == "fc" and info.encoder_output == "features.5"


def test_without_a_model_the_resnet_names_are_the_default():
    assert blocks.resolve_blocks("B234") == ("layer2", "layer3", "layer4")
    assert blocks.resolve_blocks("B1234") == ("layer1", "layer2", "layer3", "layer4")
    assert blocks.block_set_name(("layer2", "layer3", "layer4")) == "B234"


def test_resnet_stages_match_torchvision_names():
    net = build_model("resnet18", 3)
    info = stages.stage_info(net)
    assert info.names == ("relu", "layer1", "layer2", "layer3", "layer4")
    assert info.grids == ((64, 64), (32, 32), (16, 16), (8, 8), (4, 4))
    assert info.encoder_output == "layer4" and info.head == "fc"
    assert blocks.resolve_blocks("B234", net) == ("layer2", "layer3", "layer4")
    assert blocks.resolve_blocks("B1234", net) == ("layer1", "layer2", "layer3", "layer4")


def test_densenet_and_efficientnet_stages():
    dense = gap_cnn("densenet121")
    info = stages.stage_info(dense)
    assert info.names == ("features.relu0", "features.denseblock1", "features.denseblock2",
                          "features.denseblock3", "features.norm5") == GAP_CNN_STAGES["densenet121"]
    assert info.grids == ((64, 64), (32, 32), (16, 16), (8, 8), (4, 4)) and info.head == "classifier"
    # DenseNet's functional ReLU after norm5 is in place: the captured output of norm5 is h
    assert info.encoder_output == "features.norm5"
    eff = gap_cnn("efficientnet_b0")
    info = stages.stage_info(eff)
    # features.2 shrinks the grid in one step (its 1x1 expansion still runs at 64 x 64), so it ends the
    # 32 x 32 stage; the squeeze-and-excitation 1 x 1 maps are side branches
    assert info.names == ("features.1", "features.2", "features.3", "features.5", "features.8")
    assert info.names == GAP_CNN_STAGES["efficientnet_b0"]
    assert info.grids == ((64, 64), (32, 32), (16, 16), (8, 8), (4, 4)) and info.encoder_output == "features.8"


def test_stages_are_cached_deterministic_and_leave_the_model_as_it_was():
    net = build_model("resnet18", 3).train()
    net.layer1.eval()  # a frozen part stays frozen
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = stages.stage_info(net)
    assert stages.stage_info(net) is first and stages.stage_info(build_model("resnet18", 3)) == first
    assert net.training and not net.layer1.training and net.layer2.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # batch-norm statistics too
    small = ThreeStages()
    old = stages.stage_info(small)
    small.down2 = conv_relu(6, 8, 1)  # a new layer, stride 1: the stages are found again
    assert old.names == ("stem", "down1", "down2") and stages.stages(small) == ("stem", "down2")
    with pytest.raises(ValueError, match="'B234' needs the last 3 stages, but ThreeStages has 2"):
        blocks.resolve_blocks("B234", small)


def test_a_model_without_gap_and_linear_head_is_refused_clearly():
    mlp_head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(),
                             nn.Linear(4, 2))
    with pytest.raises(UnsupportedHeadError, match="not a linear layer|sits"):
        stages.stages(mlp_head)
    with pytest.raises(UnsupportedHeadError):
        blocks.resolve_blocks("B4", mlp_head)
    assert blocks.resolve_blocks(["0"], mlp_head) == ("0",)  # explicit names need no head
    assert maps.ExplanationMaps(mlp_head, ["0"]).name == "0"
    with pytest.raises(TypeError, match="torch.nn.Module"):
        stages.stages("resnet18")
