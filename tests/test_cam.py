"""Eq. 11 attribution, its propagation and Grad-CAM on a hand-built network."""

import pytest
import torch
import torchvision
from tiny_nets import GAP_CNN_STAGES, A, B, NoiseImages, TinyImages, TinyNet, gap_cnn, paint

from protolib.core.gap import split_gap_linear
from protolib.core.hooks import block_outputs
from protolib.core.models import build_model
from protolib.method.explain import cam, maps

AB = paint({A: slice(0, 4), B: slice(4, 8)}).unsqueeze(0)  # layer4: left column (1,0,1), right (0,1,1)


def test_eq11_by_hand():
    att, logits = cam.last_block_attribution(TinyNet(), AB)
    # c_0 = (1,0,1), |c_0|^2 = 2: left (1+1)/2 = 1, right 1/2; c_1 = (0,2,0), |c_1|^2 = 4: left 0, right 1/2
    assert att[0, 0].tolist() == [[1.0, 0.5], [1.0, 0.5]] and att[0, 1].tolist() == [[0.0, 0.5], [0.0, 0.5]]
    assert logits.tolist() == [[1.5, 1.0]]
    torch.testing.assert_close(att.mean((2, 3)), logits / torch.tensor([2.0, 4.0]))  # Theorem 1, rescaled
    c = TinyNet().fc.weight
    self_att = cam.attribution(c.T.reshape(1, 3, 2, 1), c)  # the prototypes themselves as two pixels
    assert self_att[0, 0, 0, 0] == 1.0 and self_att[0, 1, 1, 0] == 1.0  # att(c_j, c_j) = 1


def test_mean_of_the_last_block_map_is_the_rescaled_logit_on_a_resnet():
    torch.manual_seed(0)
    model = build_model("resnet18", 5).eval()
    x = torch.randn(2, 3, 64, 64)
    att, logits = cam.last_block_attribution(model, x)
    c_sq = (model.fc.weight ** 2).sum(1)
    torch.testing.assert_close(att.mean((2, 3)), logits / c_sq, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # for a ResNet, the output of layer4 is the encoder output h of Theorem 1
        assert torch.equal(split_gap_linear(model).features(x), block_outputs(model, x, ["layer4"])["layer4"])


def test_propagation_by_hand_is_piecewise_constant_and_keeps_the_mean():
    att = torch.tensor([[[1.0, 0.5], [1.0, 0.5]]])
    seg = torch.zeros(1, 8, 8, dtype=torch.long)
    seg[:, :, 4:] = 1
    out = cam.propagate(att, seg)
    # bilinear columns 1, 1, .9375, .8125 | .6875, .5625, .5, .5 -> segment means .9375 and .5625
    assert torch.equal(out[0, :, :4], torch.full((8, 4), 0.9375)) and torch.equal(out[0, :, 4:], torch.full((8, 4), 0.5625))
    assert out.mean().item() == pytest.approx(att.mean().item())
    steps = cam.propagate_chain(att, [seg[:, ::2, ::2], seg])
    assert [tuple(s.shape) for s in steps] == [(1, 4, 4), (1, 8, 8)]
    with pytest.raises(ValueError, match="shape"):
        cam.segment_average(att, seg)


def test_segment_average_on_random_segments():
    g = torch.Generator().manual_seed(0)
    vals, seg = torch.randn(3, 6, 6, generator=g), torch.randint(0, 5, (3, 6, 6), generator=g)
    out = cam.segment_average(vals, seg)
    for b in range(3):
        for k in seg[b].unique():
            inside = seg[b] == k
            assert torch.allclose(out[b][inside], vals[b][inside].mean().expand(int(inside.sum())))


def test_importance_maps_chain_through_the_block_sets():
    net, ds = TinyNet(), TinyImages()
    ex = {name: maps.ExplanationMaps(net, name, k_per_class=2, progress=False).fit(ds) for name in ("B234", "B4", "B34")}
    x = torch.stack([ds[i][0] for i in range(4)])
    imp = cam.importance_maps(ex, x, targets=0)
    assert list(imp.maps) == ["B4", "B34", "B234"]  # from the smallest grid to the largest
    att, _ = cam.last_block_attribution(net, x)
    assert torch.equal(imp.maps["B4"], att[:, 0]) and imp.targets.tolist() == [0] * 4
    seg34, seg234 = imp.explanations["B34"].segments, imp.explanations["B234"].segments
    assert torch.equal(imp.maps["B34"], cam.propagate(att[:, 0], seg34))
    assert torch.equal(imp.maps["B234"], cam.propagate(imp.maps["B34"], seg234))
    for b in range(4):
        for k in seg234[b].unique():
            assert imp.maps["B234"][b][seg234[b] == k].unique().numel() == 1  # constant on each segment
    default = cam.importance_maps(ex, x)
    assert torch.equal(default.targets, default.logits.argmax(1))


def test_grad_cam_at_the_last_block_is_relu_of_rescaled_eq11():
    net = TinyNet()
    x = torch.cat([AB, paint({B: slice(0, 4), A: slice(4, 8)}).unsqueeze(0)])
    for j, c_sq in ((0, 2.0), (1, 4.0)):
        gc = cam.grad_cam(net, x, targets=j, layer="layer4")
        att, _ = cam.last_block_attribution(net, x)
        torch.testing.assert_close(gc, torch.relu(att[:, j] * c_sq / 4))  # R = 4 pixels
    assert cam.grad_cam(net, AB, 0, layer=net.layer4, size=(8, 8)).shape == (1, 8, 8)
    assert net.training  # grad_cam evaluates in eval mode and restores the mode it found


def test_other_cnns_work_with_explicit_layer_names():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    ex = {"deep": maps.ExplanationMaps(model, ["features"], k_per_class=2, progress=False),
          "multi": maps.ExplanationMaps(model, ["features.6", "features.13", "features"], k_per_class=2, progress=False)}
    for e in ex.values():
        d = e.features(x).shape[1]
        e.fit_features([torch.randn(20, d, generator=g) for _ in range(3)])
    assert ex["multi"].features(x).shape == (2, 32 + 96 + 1280, 4, 4)
    imp = cam.importance_maps(ex, x, last_layer="features")
    att, logits = cam.last_block_attribution(model, x)
    assert torch.equal(imp.maps["deep"], att[torch.arange(2), logits.argmax(1)])
    assert imp.maps["multi"].shape == (2, 4, 4)


@pytest.mark.parametrize("kind", ["three", "densenet121", "efficientnet_b0"])
def test_importance_maps_on_non_resnet_cnns(kind):
    net, ds = gap_cnn(kind), NoiseImages(32)
    names = GAP_CNN_STAGES[kind]
    assert cam.encoder_output_layer(net) == names[-1]
    ex = {n: maps.ExplanationMaps(net, n, k_per_class=2, progress=False) for n in ("B4", "B34", "B234")}
    for e in ex.values():
        e.fit(ds)
    x = ds.images[:3]
    imp = cam.importance_maps(ex, x, targets=1)
    att, logits = cam.last_block_attribution(net, x)   # eq. 11 on the GAP split's encoder output
    torch.testing.assert_close(imp.att, att, rtol=1e-5, atol=1e-6 * att.abs().max().item())
    torch.testing.assert_close(imp.logits, logits, rtol=1e-5, atol=1e-6 * logits.abs().max().item())
    assert torch.equal(imp.maps["B4"], imp.att[:, 1])           # B4 = the last stage: eq. 11 itself
    grids = {n: tuple(a.shape[-2:]) for n, a in block_outputs(net, x, names[-3:]).items()}
    assert imp.maps["B34"].shape == (3, *grids[names[-2]]) and imp.maps["B234"].shape == (3, *grids[names[-3]])
    for n in ("B34", "B234"):  # propagated maps are constant on every segment of their explanation map
        seg, m = imp.explanations[n].segments, imp.maps[n]
        torch.testing.assert_close(cam.segment_average(m, seg), m, rtol=1e-5, atol=0.0)
    gc = cam.grad_cam(net, x, 1)  # default layer: the first block of B234
    assert gc.shape == (3, *grids[names[-3]])
