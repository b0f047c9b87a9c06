"""Explanation-quality metrics on hand-built models and masks whose answers are known exactly."""

import math

import pytest
import torch
from tiny_nets import GAP_CNN_STAGES, A, B, NoiseImages, TinyImages, TinyNet, gap_cnn, paint
from torch import nn

from protolib.evaluation import baselines, evaluate, methods, sanity
from protolib.evaluation import faithfulness as fa
from protolib.evaluation import localisation as lo
from protolib.evaluation.stats import above, markdown_table, mean_ci
from protolib.method.explain import cam, maps

W = torch.tensor([[4.0, 3.0], [2.0, 1.0]])  # a 2 x 2 image, one channel


class WeightedSum(nn.Module):
    """Logits (sum_ij W_ij x_ij, 0): class 0's logit is a known weighted sum of the pixels."""

    def __init__(self, w=W):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        s = (x[:, 0] * self.w).sum((1, 2))
        return torch.stack([s, torch.zeros_like(s)], 1)


ONES = torch.ones(1, 1, 2, 2)


def test_deletion_and_insertion_in_the_right_order_by_hand():
    model = WeightedSum()
    dele = fa.curve(model, ONES, W[None], 0, "deletion", steps=4, baseline="mean", score="logit")
    ins = fa.curve(model, ONES, W[None], 0, "insertion", steps=4, baseline="mean", score="logit")
    assert dele.tolist() == [[10, 6, 3, 1, 0]] and ins.tolist() == [[0, 4, 7, 9, 10]]
    # trapezoids: (8 + 4.5 + 2 + 0.5) / 4 and (2 + 5.5 + 8 + 9.5) / 4
    assert fa.area(dele).item() == 3.75 and fa.area(ins).item() == 6.25
    worst = fa.curve(model, ONES, -W[None], 0, "deletion", steps=4, baseline="mean", score="logit")
    assert worst.tolist() == [[10, 9, 7, 4, 0]] and fa.area(worst).item() == 6.25
    two = fa.curve(model, ONES, W[None], 0, "deletion", steps=2, baseline="mean", score="logit")
    assert two.tolist() == [[10, 3, 0]] and fa.area(two).item() == 4.0  # two pixels a step
    prob = fa.curve(model, ONES, W[None], 0, "deletion", steps=4, baseline="mean")
    torch.testing.assert_close(prob, torch.sigmoid(dele))  # softmax of (s, 0) is sigmoid(s)


def test_baseline_and_ties():
    x = torch.full((2, 3, 16, 16), 0.7)
    torch.testing.assert_close(fa.baseline_image(x, "blur"), x)  # blurring a constant image keeps it
    assert torch.equal(fa.baseline_image(x, "mean"), torch.zeros_like(x))
    flat = torch.zeros(1, 4, 4)
    r0, r1 = fa.ranking(flat, seed=0), fa.ranking(flat, seed=1)
    assert sorted(r0[0].tolist()) == list(range(16)) and torch.equal(r0, fa.ranking(flat, seed=0))
    assert not torch.equal(r0, r1)  # ties are broken by the seed, not by raster order
    m = torch.zeros(1, 4, 4)
    m[0, 3, 3] = 1.0
    assert fa.ranking(m)[0, 0].item() == 15
    assert fa.to_size(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), (4, 4))[0, 3].tolist() == [3, 3, 4, 4]
    with pytest.raises(ValueError, match="baseline"):
        fa.baseline_image(x, "zero")
    with pytest.raises(ValueError, match="maps"):
        fa.curve(WeightedSum(), ONES, W, 0)


def test_spearman_and_ssim_known_values():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert sanity.spearman(a, a).item() == 1.0 and sanity.spearman(a, -a).item() == pytest.approx(-1.0, abs=1e-12)
    assert sanity.spearman(a, a ** 3).item() == pytest.approx(1.0)  # ranks only
    const = torch.ones(1, 4)
    assert sanity.spearman(const, const).item() == 1.0 and math.isnan(sanity.spearman(const, a).item())
    assert math.isnan(sanity.spearman(const, 2 * const).item())  # no ranking to compare
    nearly = torch.tensor([[1.0, 1.0 + 1e-7, 1.0, 1.0]])  # flat up to float rounding: no ranking either
    assert sanity.flat(nearly).item() and math.isnan(sanity.spearman(nearly, a).item())
    assert math.isnan(sanity.ssim(nearly, 2 * const).item()) and sanity.ssim(const, const).item() == 1.0
    assert sanity.ssim(a, a).item() == pytest.approx(1.0) and sanity.ssim(a, 2 * a + 1).item() == pytest.approx(1.0)
    # rescaled a = (0, 1/3, 2/3, 1) against its reverse: means equal, cov = -var
    v = torch.tensor([0, 1 / 3, 2 / 3, 1.0]).var(unbiased=False).item()
    c2 = 0.03 ** 2
    assert sanity.ssim(a, a.flip(1)).item() == pytest.approx((-2 * v + c2) / (2 * v + c2))


def test_cascading_randomisation_flags_a_map_that_ignores_the_model():
    torch.manual_seed(0)
    net = TinyNet()
    x = torch.cat([paint({A: slice(0, 3), B: slice(3, 8)}), paint({B: slice(0, 5), A: slice(5, 8)})])[:, None]
    x = x.view(2, 2, 8, 8)
    fixed = baselines.centred_gaussian(2, (8, 8))

    def explain(model):
        return {"blind": fixed, "grad-cam": cam.grad_cam(model, x, 0, layer="layer4", relu=False)}

    out = sanity.cascade(net, ["fc", "layer4"], explain, seed=0)
    assert list(out) == ["fc", "layer4"]
    for stage in out.values():
        rho, s = stage["blind"]
        assert rho.tolist() == [1.0, 1.0] and s.tolist() == pytest.approx([1.0, 1.0])  # fails the check
    assert (out["layer4"]["grad-cam"][0] < 0.99).any()  # a map of the model changes
    r = sanity.randomised(net, ["fc"], seed=3)
    assert not torch.equal(r.fc.weight, net.fc.weight)
    assert torch.equal(r.layer4[1].weight, net.layer4[1].weight)  # only the named layers change
    assert torch.equal(r.fc.weight, sanity.randomised(net, ["fc"], seed=3).fc.weight)  # seeded


def test_part_shares_and_pointing_game_on_hand_made_masks():
    masks = torch.zeros(1, 4, 4, dtype=torch.long)
    masks[0, :2, :2] = 1      # part 1: the top-left cell of a 2 x 2 map
    masks[0, 0, 2:] = 2       # part 2: half of the top-right cell
    top_left = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(lo.shares(top_left, masks, 3), torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    const = torch.ones(1, 2, 2)  # blind: each part's share of area
    torch.testing.assert_close(lo.shares(const, masks, 3), lo.area_shares(masks, 3))
    assert lo.area_shares(masks, 3).tolist() == [[10 / 16, 4 / 16, 2 / 16]]
    top_right = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    assert lo.pointing_game(top_left, masks == 1).item() == 1.0
    assert lo.pointing_game(top_right, masks == 2).item() == 0.5  # tied maximum over 4 pixels, 2 inside
    assert lo.pointing_game(top_right, masks == 1).item() == 0.0
    fine = torch.zeros(1, 4, 4)
    fine[0, 3, 0] = 5.0
    assert lo.pointing_game(fine, masks == 0).item() == 1.0
    ps = lo.shares(torch.tensor([[[3.0, 2.0], [1.0, 1.0]]]), masks, 3)
    # rescaled (1, 0.5; 0, 0): part 1 gets 4 x 1, part 2 2 x 0.5, background 2 x 0.5, total 6
    torch.testing.assert_close(ps, torch.tensor([[1 / 6, 4 / 6, 1 / 6]], dtype=torch.float64))
    assert lo.deciding_share(ps, [[2]]).item() == pytest.approx(0.2)  # 1/6 of the bird's 5/6


def test_baselines_and_interval():
    g = baselines.centred_gaussian(2, (5, 5))
    assert g[0, 2, 2] == 1.0 and g[0, 0, 0] < g[0, 1, 1] and torch.equal(g[0], g[1])
    r = baselines.random_map(3, (2, 2), seed=0)
    assert torch.equal(r, baselines.random_map(3, (2, 2), seed=0)) and r.shape == (3, 2, 2)
    m, h = mean_ci(torch.tensor([1.0, 2.0, 3.0]))
    assert m == 2.0 and h == pytest.approx(4.302653 / math.sqrt(3))  # t(0.975, 2) x sd 1 / sqrt 3


def test_methods_on_the_tiny_net():
    net, ds = TinyNet(), TinyImages()
    ex = {n: maps.ExplanationMaps(net, n, k_per_class=2, progress=False).fit(ds) for n in ("B4", "B34", "B234")}
    x = torch.stack([ds[i][0] for i in range(6)])
    targets = torch.tensor([0, 1, 0, 1, 0, 1])
    out = methods.compare(ex, x, targets, n_components=3)
    imp = cam.importance_maps(ex, x, targets)
    for n in ("B4", "B34", "B234"):
        assert torch.equal(out[f"ours {n}"], imp.maps[n])
    assert out["Grad-CAM layer2"].shape == (6, 8, 8) and out["random 8 x 8"].shape == (6, 8, 8)
    assert methods.head_name(net) == "fc"
    # DFF with as many concepts as channels factorises layer4 (non-negative here) almost exactly, so its
    # class map is eq. 11 up to the constant of the offset it subtracts
    d = methods.dff(net, x, "layer4", n_components=3)
    att, _ = cam.last_block_attribution(net, x)
    diff = out["DFF layer4"] - att[torch.arange(6), targets]
    assert (diff - diff.mean((1, 2), keepdim=True)).abs().max() < 1e-2
    assert d.segments.shape == (6, 2, 2) and d.concept_maps.shape == (6, 3, 2, 2)


def test_localisation_rows_tables_and_paired_margins():
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[:, :2, :2] = 1
    masks[:, 2:, 2:] = 2
    on_part1 = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).expand(2, 2, 2)
    rows = evaluate.localisation({"m": on_part1}, masks, 3, [[1], None])
    assert rows["m"]["bird share"].tolist() == [1.0, 1.0] and rows["m"]["pointing game"].tolist() == [1.0, 1.0]
    assert rows["m"]["deciding-part share"].tolist() == [1.0]  # only image 0 has a twin
    assert rows["area (blind map)"]["bird share"].tolist() == [0.5, 0.5]
    assert rows["area (blind map)"]["deciding-part share"].tolist() == [0.5]
    assert above(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.1])).holds
    assert not above(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 3.5, 3.0])).holds
    table = markdown_table({"m": {"a": torch.tensor([1.0, 3.0]), "b": 0.25}}, digits=2)
    assert table.splitlines() == ["| method | a | b |", "| --- | --- | --- |",
                                  "| m | 2.00 ± 12.71 | 0.25 |"]  # t(0.975, 1) x sd sqrt 2 / sqrt 2


def test_randomisation_table_lists_every_spearman_then_the_first_and_last_ssim():
    t = torch.tensor
    stages = {"fc": {"m": (t([1.0]), t([0.9])), "n": (t([0.5]), t([0.4]))},
              "layer4": {"m": (t([0.8]), t([0.7])), "n": (t([0.3]), t([0.2]))},
              "layer3": {"m": (t([0.6]), t([0.5])), "n": (t([0.1]), t([0.0]))}}
    rows = evaluate.randomisation_table(stages)
    assert list(rows) == ["m", "n"]
    assert list(rows["m"]) == ["Spearman after fc", "Spearman after layer4", "Spearman after layer3",
                               "SSIM after fc", "SSIM after layer3"]
    assert [v.item() for v in rows["n"].values()] == pytest.approx([0.5, 0.3, 0.1, 0.4, 0.0])
    one = evaluate.randomisation_table({"fc": stages["fc"]})   # one stage: its SSIM once
    assert list(one["m"]) == ["Spearman after fc", "SSIM after fc"]
    with pytest.raises(ValueError, match="no randomisation stage"):
        evaluate.randomisation_table({})


def test_toy_mean_channel_net_has_closed_form_curves_and_shares():
    from protolib.evaluation import toy
    net, x, mask = toy.mean_channel_net(), toy.ramp_image(), toy.corner_bird()
    assert net(x).tolist() == [[7.5, 0.0]]                    # mean of 0..15, and 0
    dele = fa.curve(net, x, x[:, 0], 0, "deletion", steps=4, baseline="mean", score="logit")
    ins = fa.curve(net, x, x[:, 0], 0, "insertion", steps=4, baseline="mean", score="logit")
    assert dele[0].tolist() == [7.5, 66 / 16, 28 / 16, 6 / 16, 0.0]
    assert fa.area(dele).item() == 2.5 and fa.area(ins).item() == 5.0
    local = evaluate.localisation({"fine": x[:, 0]}, mask, 3, [[1]])
    assert abs(local["fine"]["bird share"].item() - 1 / 3) < 1e-12
    assert local["fine"]["pointing game"].item() == 1.0
    assert abs(local["area (blind map)"]["bird share"].item() - 3 / 16) < 1e-12
    with pytest.raises(ValueError, match="channel 2"):
        toy.mean_channel_net(in_channels=2, channel=2)


@pytest.mark.parametrize("kind", ["three", "densenet121", "efficientnet_b0"])
def test_randomisation_cascade_on_non_resnet_cnns(kind):
    net, ds = gap_cnn(kind), NoiseImages(32)
    names = GAP_CNN_STAGES[kind]
    head = {"three": "fc", "densenet121": "classifier", "efficientnet_b0": "classifier.1"}[kind]
    ex = {n: maps.ExplanationMaps(net, n, k_per_class=2, progress=False) for n in ("B4", "B234")}
    for e in ex.values():
        e.fit(ds)
    top_down = (head, names[-1], names[-2], names[-3])   # the head, then the stages of B234 from the top
    assert sanity.top_down(net) == top_down and methods.layers(net) == (names[-1], names[-3])
    x, targets = ds.images[:4], torch.tensor([0, 1, 0, 1])
    out = evaluate.randomisation(ex, x, targets, n_components=2)
    assert tuple(out) == top_down
    labels = {"ours B4", "ours B234", f"Grad-CAM {names[-1]}", f"Grad-CAM {names[-3]}", f"DFF {names[-1]}"}
    assert labels <= set(out[head])
    for stage in out.values():
        assert all(rho.shape == (4,) and s.shape == (4,) for rho, s in stage.values())
    # a network whose every layer of B234 is re-initialised explains otherwise: the finest Grad-CAM
    # map of the last stage differs from the trained one
    assert (out[names[-3]][f"Grad-CAM {names[-3]}"][0].nan_to_num(0.0) < 1).any()
