"""ProtoPNet: distances, loss terms by hand, push exactness, stage freezing, schedule, cache."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from protolib.baselines import protopnet
from protolib.baselines.protopnet import ProtoPNet, ProtoPNetRecipe, stages
from protolib.core import store


class TinySet(Dataset):
    """N random 8x8 RGB images with balanced labels and a ``targets`` attribute, like the registry's."""

    def __init__(self, n: int = 24, classes: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.targets = torch.arange(n) % classes

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], int(self.targets[i])

    def denormalize(self, x):
        return torch.sigmoid(x)


def tiny_model(classes: int = 3, k_per_class: int = 2, dim: int = 5, seed: int = 0) -> ProtoPNet:
    """Conv (stride 2) + batch-norm + ReLU backbone: 8x8 images -> 4x4 grid of 4 channels."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    return ProtoPNet(backbone, 4, classes, k_per_class, dim)


def tiny_recipe(**kw) -> ProtoPNetRecipe:
    base = dict(k_per_class=2, dim=5, warm_epochs=1, epochs=2, push_every=2, last_layer_epochs=1,
                batch_size=8, test_batch_size=8, push_batch_size=8)
    return ProtoPNetRecipe(**{**base, **kw})


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict, after: dict) -> set:
    return {k for k in before if not torch.equal(before[k], after[k])}


# --- distances, similarity, loss terms by hand --------------------------------------------------

# Two images of two latent cells each (D = 2); four prototypes, two per class.
Z = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]]],      # image 1: cells (0,0) and (1,0)
                  [[[0.0, 2.0]], [[2.0, 2.0]]]])     # image 2: cells (0,2) and (2,2)
P = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0], [3.0, 0.0]]).view(4, 2, 1, 1)
# squared distances, cell by cell:           p0      p1      p2      p3
D_HAND = torch.tensor([[[0.0, 1.0], [2.0, 1.0], [4.0, 5.0], [9.0, 4.0]],
                       [[4.0, 8.0], [2.0, 2.0], [0.0, 4.0], [13.0, 5.0]]]).unsqueeze(2)   # (2, 4, 1, 2)
DMIN_HAND = torch.tensor([[0.0, 1.0, 4.0, 4.0], [4.0, 2.0, 0.0, 5.0]])


def hand_model() -> ProtoPNet:
    model = ProtoPNet(nn.Identity(), 2, num_classes=2, k_per_class=2, dim=2)
    with torch.no_grad():
        model.prototypes.copy_(P)
    return model


def test_squared_distances_min_pool_and_similarity_by_hand():
    model = hand_model()
    out = model.forward_latent(Z)
    assert torch.equal(out.distances, D_HAND)
    assert torch.equal(out.min_distances, DMIN_HAND)
    s = lambda d: math.log((d + 1) / (d + 1e-4))
    assert out.similarities[0, 1].item() == pytest.approx(s(1.0)) == pytest.approx(math.log(2 / 1.0001))
    assert out.similarities[1, 2].item() == pytest.approx(math.log(1e4), rel=1e-6)    # d = 0: log(1/1e-4)
    # last layer +1 own class, -0.5 other class: logit_0 = s0 + s1 - (s2 + s3)/2 for image 1
    assert out.logits[0, 0].item() == pytest.approx(s(0) + s(1) - 0.5 * (s(4) + s(4)), rel=1e-6)
    assert out.logits[0, 1].item() == pytest.approx(-0.5 * (s(0) + s(1)) + s(4) + s(4), rel=1e-6)


def test_last_layer_starts_at_plus_one_and_minus_half():
    model = ProtoPNet(nn.Identity(), 2, num_classes=3, k_per_class=2, dim=2)
    expected = torch.tensor([[1, 1, -.5, -.5, -.5, -.5], [-.5, -.5, 1, 1, -.5, -.5], [-.5, -.5, -.5, -.5, 1, 1]])
    assert torch.equal(model.last_layer.weight, expected)
    assert model.last_layer.bias is None
    assert torch.equal(model.prototype_class, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert ((model.prototypes >= 0) & (model.prototypes < 1)).all()


def test_each_loss_term_by_hand():
    model = hand_model()
    labels = torch.tensor([0, 1])
    out = model.forward_latent(Z)
    # cluster: image 1 (class 0) nearest own prototype min(0, 1) = 0; image 2 (class 1) min(0, 5) = 0
    # separation: image 1 min over class-1 prototypes min(4, 4) = 4; image 2 min(4, 2) = 2
    assert protopnet.cluster_cost(out.min_distances, labels, model.prototype_class).item() == 0.0
    assert protopnet.separation_cost(out.min_distances, labels, model.prototype_class).item() == 3.0
    labels0 = torch.tensor([0, 0])   # image 2 as class 0: cluster min(4, 2) = 2, separation min(0, 5) = 0
    assert protopnet.cluster_cost(out.min_distances, labels0, model.prototype_class).item() == 1.0
    assert protopnet.separation_cost(out.min_distances, labels0, model.prototype_class).item() == 2.0
    # L1 on wrong-class weights: 4 entries of -0.5 at initialisation -> 2; own-class entries do not count
    assert protopnet.l1_wrong_class(model.last_layer.weight, model.class_identity).item() == 2.0
    with torch.no_grad():
        model.last_layer.weight[0, 0] = 7.0       # own class: ignored
        model.last_layer.weight[1, 0] = -3.0      # wrong class: |-3| replaces |-0.5|
    assert protopnet.l1_wrong_class(model.last_layer.weight, model.class_identity).item() == 4.5
    terms = protopnet.protopnet_loss(model.forward_latent(Z), labels, model)
    ce = torch.nn.functional.cross_entropy(model.forward_latent(Z).logits, labels).item()
    assert terms.cross_entropy.item() == pytest.approx(ce)
    assert terms.total.item() == pytest.approx(ce + 0.8 * 0.0 - 0.08 * 3.0 + 1e-4 * 4.5)


def _reference_trick(dmin, labels, proto_class, max_dist):
    """The official code's form: max_dist - max_j((max_dist - d_j) * mask_j)."""
    own = (labels[:, None] == proto_class[None]).float()
    clst = (max_dist - ((max_dist - dmin) * own).max(1).values).mean()
    sep = (max_dist - ((max_dist - dmin) * (1 - own)).max(1).values).mean()
    return clst, sep


def test_cluster_and_separation_equal_the_reference_max_trick_inside_the_unit_cube():
    g = torch.Generator().manual_seed(0)
    model = ProtoPNet(nn.Identity(), 6, num_classes=4, k_per_class=3, dim=6)   # prototypes in [0, 1)
    z = torch.sigmoid(torch.randn(16, 6, 3, 3, generator=g))                 # latent in (0, 1)
    labels = torch.arange(16) % 4
    dmin = model.forward_latent(z).min_distances
    clst, sep = _reference_trick(dmin, labels, model.prototype_class, max_dist=6)
    assert protopnet.cluster_cost(dmin, labels, model.prototype_class).item() == pytest.approx(clst.item(), rel=1e-6)
    assert protopnet.separation_cost(dmin, labels, model.prototype_class).item() == pytest.approx(sep.item(), rel=1e-6)
    # outside the cube (distances above D) the trick no longer computes a minimum: hand example above
    clst, sep = _reference_trick(DMIN_HAND, torch.tensor([0, 0]), torch.tensor([0, 0, 1, 1]), max_dist=2)
    assert sep.item() != 2.0


def test_distances_match_brute_force_and_stay_float32_under_autocast():
    g = torch.Generator().manual_seed(1)
    z, p = torch.rand(3, 7, 4, 5, generator=g), torch.rand(6, 7, 1, 1, generator=g)
    brute = ((z[:, None] - p[None, :, :, 0, 0, None, None]) ** 2).sum(2)    # (3, 6, 4, 5)
    d = protopnet.squared_distances(z, p)
    torch.testing.assert_close(d, brute, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):    # the CUDA path's mixed precision, on the CPU
        d16 = protopnet.squared_distances(z.bfloat16(), p)
    assert d16.dtype == torch.float32
    torch.testing.assert_close(d16, protopnet.squared_distances(z.bfloat16().float(), p), rtol=0, atol=0)
    with pytest.raises(ValueError, match="prototypes"):
        protopnet.squared_distances(z, torch.rand(6, 3, 1, 1))


def test_model_forward_under_cpu_autocast_matches_float32():
    model, x = tiny_model().eval(), TinySet().x[:4]
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.min_distances.dtype == torch.float32
    torch.testing.assert_close(out.min_distances, ref.min_distances, rtol=0.05, atol=0.05)


def test_amp_dtype_per_device(monkeypatch):
    assert protopnet.amp_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert protopnet.amp_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert protopnet.amp_dtype(torch.device("cuda")) == torch.float16


# --- push ---------------------------------------------------------------------------------------

@torch.no_grad()
def _latents(model, ds, batch_size):
    model.eval()
    return torch.cat([model.latent(x) for x, _ in DataLoader(ds, batch_size=batch_size)])


def test_push_makes_every_prototype_a_latent_patch_of_its_own_class_exactly():
    model, ds = tiny_model(), TinySet(n=30)
    z_before = _latents(model, ds, 8)                         # (N, D, 4, 4), same batches as push
    old = model.prototypes.detach().flatten(1).clone()
    result = protopnet.push_prototypes(model, ds, batch_size=8, progress=False)
    labels = ds.targets[result.image_index]
    assert torch.equal(labels, model.prototype_class) and torch.equal(result.label, labels)
    z_after = _latents(model, ds, 8)
    assert torch.equal(z_after, z_before)                      # push touches prototypes only
    for j in range(model.num_prototypes):
        i, (u, v) = int(result.image_index[j]), result.location[j].tolist()
        assert torch.equal(model.prototypes[j, :, 0, 0], z_after[i, :, u, v])
        # and it is the nearest own-class patch to the old prototype (brute force over all patches)
        own = z_before[ds.targets == model.prototype_class[j]].permute(0, 2, 3, 1).reshape(-1, model.dim)
        brute = ((own - old[j]) ** 2).sum(1).min()
        assert result.distance[j].item() == pytest.approx(brute.item(), rel=1e-5, abs=1e-6)
    assert result.grid == (4, 4) and result.image_size == (8, 8)
    # the prototype's own similarity map peaks on its cell, so the cell lies inside its box
    y0, y1, x0, x1 = result.act_box[0].tolist()
    c0, c1, c2, c3 = result.cell_box[0].tolist()
    assert y0 < c1 and c0 < y1 and x0 < c3 and c2 < x1


def test_patches_at_recomputes_the_patches_push_copied():
    model, ds = tiny_model(), TinySet(n=30)
    result = protopnet.push_prototypes(model, ds, batch_size=8, progress=False)
    patches = protopnet.patches_at(model, ds, result, batch_size=3)   # other chunks than push's batches
    assert patches.shape == (model.num_prototypes, model.dim)
    assert torch.allclose(patches, model.prototypes[:, :, 0, 0].detach(), atol=1e-6)
    z = _latents(model, ds, 30)
    j, i, (u, v) = 1, int(result.image_index[1]), result.location[1].tolist()
    assert torch.allclose(patches[j], z[i, :, u, v], atol=1e-6)
    with pytest.raises(ValueError, match="the push result has 2 prototypes"):
        protopnet.patches_at(model, ds, protopnet.PushResult.from_dict(
            {**result.to_dict(), "image_index": result.image_index[:2]}))


def test_run_label_names_a_run_by_its_key():
    key = {"dataset": "birds", "arch": "resnet18", "profile": "quick", "seed": 2, "recipe": {}}
    assert protopnet.run_label(key) == "birds-resnet18-quick-seed2"
    assert protopnet.run_label({"t": 1}) == "protopnet"
    assert protopnet.StageCache(tiny_model(), key).label == "birds-resnet18-quick-seed2"
    assert protopnet.StageCache(tiny_model(), key, label="x").label == "x"


def test_push_refuses_a_class_without_images():
    model, ds = tiny_model(classes=4), TinySet(classes=3)
    with pytest.raises(ValueError, match=r"class\(es\) \[3\]"):
        protopnet.push_prototypes(model, ds, progress=False)


def test_receptive_field_of_known_networks_and_its_gradient_support():
    from protolib.core.gap import split_gap_linear
    from protolib.core.models import build_model

    rf18 = protopnet.receptive_field(split_gap_linear(build_model("resnet18", 10)).encoder)
    assert (rf18.size, rf18.stride) == (435, 32)                       # the textbook ResNet18 value
    # a linear network: the field is exactly the support of the gradient of one output cell
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, stride=2))
    nn.init.constant_(net[0].weight, 1.0), nn.init.constant_(net[2].weight, 1.0)
    rf = protopnet.receptive_field(net)
    # size 1 + 2 (conv) + 1 (pool) + 2 * 2 (conv after a stride 2) = 8; cell 0 centred at 3.0
    assert (rf.size, rf.stride, rf.start) == (8, 4, 3.0)
    x = torch.rand(1, 1, 20, 20, requires_grad=True)
    net(x)[0, 0, 1, 2].backward()
    rows, cols = x.grad[0, 0].abs().sum(1).nonzero().flatten(), x.grad[0, 0].abs().sum(0).nonzero().flatten()
    assert rf.box(1, 2, (20, 20)) == [int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1] == [3, 11, 7, 15]
    with pytest.raises(ValueError, match="no local receptive field"):
        protopnet.receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)))


def test_boxes_by_hand():
    act = torch.zeros(10, 10)
    act[2:4, 5:9] = 1.0                 # 8 of 100 pixels above the 95th percentile
    assert protopnet.high_activation_box(act) == [2, 4, 5, 9]
    assert protopnet.cell_box(1, 1, (2, 2), (5, 5)) == [2, 5, 2, 5]
    assert protopnet.cell_box(0, 2, (3, 3), (96, 96)) == [0, 32, 64, 96]


# --- stages -------------------------------------------------------------------------------------

def test_last_layer_stage_changes_only_the_last_layer():
    model, ds = tiny_model(), TinySet()
    before = snapshot(model)
    res = protopnet.last_layer(model, ds, tiny_recipe(last_layer_lr=1e-2), epochs=2, progress=False)
    assert changed(before, snapshot(model)) == {"last_layer.weight"}     # batch-norm statistics included
    assert len(res.history) == 2 and res.history[0]["lr"] == [1e-2]


def test_last_layer_on_reused_distances_is_the_same_optimisation():
    ds = TinySet()
    a, b = tiny_model(), tiny_model()
    protopnet.last_layer(a, ds, tiny_recipe(last_layer_lr=1e-2), epochs=2, progress=False)
    protopnet.last_layer(b, ds, tiny_recipe(last_layer_lr=1e-2), epochs=2, progress=False, reuse_features=True)
    torch.testing.assert_close(a.last_layer.weight, b.last_layer.weight, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.last_layer.weight, tiny_model().last_layer.weight)


def test_warm_up_on_reused_backbone_features_is_the_same_optimisation():
    ds = TinySet()
    a, b = tiny_model(), tiny_model()
    protopnet.warm_up(a, ds, tiny_recipe(), epochs=2, progress=False)
    protopnet.warm_up(b, ds, tiny_recipe(), epochs=2, progress=False, reuse_features=True)
    for k, v in snapshot(a).items():
        torch.testing.assert_close(v, snapshot(b)[k], rtol=1e-4, atol=1e-5)
    assert changed(snapshot(tiny_model()), snapshot(b)) >= {"prototypes", "add_on.0.weight"}


def test_warm_up_freezes_backbone_and_last_layer_and_is_seeded():
    ds = TinySet()
    model = tiny_model()
    before = snapshot(model)
    protopnet.warm_up(model, ds, tiny_recipe(), epochs=1, seed=3, progress=False)
    assert changed(before, snapshot(model)) == {"prototypes", "add_on.0.weight", "add_on.0.bias",
                                                "add_on.2.weight", "add_on.2.bias"}
    again = tiny_model()
    protopnet.warm_up(again, ds, tiny_recipe(), epochs=1, seed=3, progress=False)
    assert not changed(snapshot(model), snapshot(again))


def test_joint_trains_all_but_the_last_layer_with_step_lr():
    ds, model = TinySet(), tiny_model()
    before = snapshot(model)
    recipe = tiny_recipe(warm_epochs=1, joint_step_size=1, epochs=4, push_every=4)
    res = protopnet.joint(model, ds, recipe, epochs=2, progress=False)
    diff = changed(before, snapshot(model))
    assert "last_layer.weight" not in diff and {"backbone.0.weight", "backbone.1.running_mean", "prototypes"} <= diff
    lrs = [h["lr"] for h in res.history]
    assert [h["epoch"] for h in res.history] == [2, 3]
    assert lrs[0] == pytest.approx([1e-4, 3e-3, 3e-3]) and lrs[1] == pytest.approx([1e-5, 3e-4, 3e-4])
    # continuing with the optimiser state gives the third step of the schedule
    res2 = protopnet.joint(model, ds, recipe, epochs=1, first_epoch=3, optimizer_state=res.optimizer_state, progress=False)
    assert res2.history[0]["lr"] == pytest.approx([1e-6, 3e-5, 3e-5])


def test_schedule_of_the_reference_recipe():
    names = [s.name for s in ProtoPNetRecipe().schedule()]
    assert names == ["warm_up1-5", "joint6-10", "push", "last_layer", "joint11-20", "push", "last_layer",
                     "joint21-30", "push", "last_layer"]
    with pytest.raises(ValueError, match="multiple of push_every"):
        ProtoPNetRecipe(epochs=25)
    quick = protopnet.recipe_for("quick")
    assert [s.kind for s in quick.schedule()] == ["warm_up", "joint", "push", "last_layer"]
    paper = protopnet.recipe_for("paper", "cub200")
    assert (paper.k_per_class, paper.dim, paper.batch_size, paper.push_batch_size) == (10, 128, 80, 75)


def test_recipe_key_fields_keep_the_former_name_so_cache_keys_do_not_change():
    fields = ProtoPNetRecipe(k_per_class=3, dim=64).key_fields()
    assert fields["per_class"] == 3 and "k_per_class" not in fields and fields["dim"] == 64
    # the key this recipe had when the field was still called per_class (format 2; format 3 stores
    # the history's accuracy as a fraction, a new key by design, with the same recipe fields)
    assert store.digest(kind="protopnet", format=2, recipe=fields) == "f92a010413a1"


def test_cached_schedule_resumes_to_the_same_model(tmp_path):
    ds, recipe = TinySet(), tiny_recipe()
    first = tiny_model()
    state = protopnet.run_schedule(first, ds, ds, recipe, protopnet.StageCache(first, {"t": 1}), progress=False)
    assert list(state.results) == ["warm_up1-1", "joint2-2", "push@2", "last_layer@2"]
    second = tiny_model(seed=99)                                   # different weights, same run key
    cache = protopnet.StageCache(second, {"t": 1})
    state2 = protopnet.run_schedule(second, ds, ds, recipe, cache, progress=False)
    assert cache.last_from_cache and not changed(snapshot(first), snapshot(second))
    assert torch.equal(state2.results["push@2"].image_index, state.results["push@2"].image_index)
    assert len(list((tmp_path / "cache" / "protopnet").glob("*.pt"))) == 4


def test_evaluate_and_explain_agree_with_the_logits():
    ds, model = TinySet(), tiny_model()
    ev = protopnet.evaluate(model, ds, batch_size=7)
    out = model.eval()(ds.x)
    assert ev.n == 24 and ev.correct == int((out.logits.argmax(1) == ds.targets).sum())
    assert ev.accuracy == ev.correct / 24                                               # a fraction
    e = protopnet.explain(model, ds.x[0], top=3)
    assert e.contributions.sum().item() == pytest.approx(e.logits[e.predicted].item(), rel=1e-5)
    assert e.predicted == int(out.logits[0].argmax())
    assert (e.contributions[e.top].diff() <= 0).all() and e.maps.shape == (3, 8, 8) and e.boxes.shape == (3, 4)


@pytest.mark.parametrize("mode", ["mean", "nearest"])
def test_alignment_cosines_match_their_definition(mode):
    ds, model = TinySet(), tiny_model()
    res = protopnet.alignment_cosines(model, ds, mode=mode, batch_size=5)
    z = _latents(model, ds, 24)
    p = model.prototypes.detach().flatten(1)
    inside, outside = [], []
    for j in range(model.num_prototypes):
        cos = []
        for i in range(len(ds)):
            cells = z[i].flatten(1).t()                                   # (HW, D)
            e = cells.mean(0) if mode == "mean" else cells[((cells - p[j]) ** 2).sum(1).argmin()]
            cos.append(torch.dot(e, p[j]) / (e.norm() * p[j].norm()))
        cos, own = torch.stack(cos), ds.targets == model.prototype_class[j]
        inside.append(cos[own].mean()), outside.append(cos[~own].mean())
    assert res.class_ == pytest.approx(torch.stack(inside).mean().item(), rel=1e-5)
    assert res.out == pytest.approx(torch.stack(outside).mean().item(), rel=1e-5)


def test_mean_mode_equals_protolib_metrics_on_averaged_latents():
    from protolib.method import metrics

    ds, model = TinySet(), tiny_model()
    ours = protopnet.alignment_cosines(model, ds, mode="mean")
    ref = metrics.alignment_cosines(model.prototypes.detach()[:, :, 0, 0], model.prototype_class,
                                    _latents(model, ds, 24).mean((2, 3)), ds.targets)
    assert ours.class_ == pytest.approx(ref.class_mean, abs=1e-7) and ours.out == pytest.approx(ref.out_mean, abs=1e-7)


def test_figures_draw_what_they_are_given():
    import matplotlib
    matplotlib.use("Agg")
    from protolib.viz import protopnet as viz

    ds, model = TinySet(), tiny_model()
    state = protopnet.run_schedule(model, ds, ds, tiny_recipe(), progress=False)
    push = state.results["push@2"]
    fig = viz.show_prototypes(ds, push, k_per_class=2, classes=[0, 2])
    assert len(fig.axes) == 4 and fig.axes[3].get_title() == f"p5 <- #{int(push.image_index[5])}"
    e = protopnet.explain(model, ds.x[1], top=2)
    fig = viz.show_explanation(ds.x[1], ds, e, push, ds, model.last_layer.weight.detach())
    assert len(fig.axes) == 6 and f"{float(e.logits[e.predicted]):.3f}" in fig._suptitle.get_text()
    fig = viz.plot_history(state.results)
    assert len(fig.axes[0].lines) == 3                       # warm-up, joint, last layer
    stages = [r for r in state.results.values() if isinstance(r, protopnet.StageResult)]
    assert all(0.0 <= h["accuracy"] <= 1.0 for r in stages for h in r.history)   # fractions


def test_class_out_means_by_hand():
    cos = torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.0, 0.2]])       # 3 images x 2 prototypes
    inside, outside = protopnet.class_out_means(cos, torch.tensor([0, 0, 1]), torch.tensor([0, 1]))
    assert torch.allclose(inside, torch.tensor([0.75, 0.2])) and torch.allclose(outside, torch.tensor([0.0, -0.5]))


@pytest.mark.slow
def test_load_or_train_end_to_end_on_tiny_birds_and_from_cache():
    recipe = tiny_recipe(k_per_class=1, dim=8, batch_size=20, test_batch_size=20, push_batch_size=20)
    run = protopnet.load_or_train("birds", recipe=recipe, init="random", progress=False, n_train=2, n_test=1)
    assert list(run.state.results) == ["warm_up1-1", "joint2-2", "push@2", "last_layer@2"]
    assert run.key["data_options"] == {"n_train": 2, "n_test": 1} and run.key["init"] == "random"
    assert torch.equal(run.push.label, torch.arange(20)) and not run.model.training
    again = protopnet.load_or_train("birds", recipe=recipe, init="random", progress=False, n_train=2, n_test=1)
    assert not changed(snapshot(run.model), snapshot(again.model))
    assert again.state.results["joint2-2"].history == run.state.results["joint2-2"].history


class NoisyTinySet(TinySet):
    """TinySet with random noise on every access: an augmented training set (global RNG)."""

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(3, 8, 8), int(self.targets[i])


def test_augmented_schedule_paper_path_is_seeded_and_keeps_stages_apart():
    train_set, push_set = NoisyTinySet(), TinySet()
    recipe = tiny_recipe()
    runs = []
    for _ in range(2):
        model = tiny_model()
        state = protopnet.run_schedule(model, train_set, push_set, recipe, seed=5, progress=False)
        runs.append((snapshot(model), state))
    assert not changed(runs[0][0], runs[1][0])                        # augmentation drawn from the seed
    push = runs[0][1].results["push@2"]
    assert torch.equal(push.label, tiny_model().prototype_class)
    # the last layer trained on augmented images, full forward passes: still only the last layer moved
    model = tiny_model()
    before = snapshot(model)
    protopnet.last_layer(model, train_set, recipe, epochs=1, progress=False)
    assert changed(before, snapshot(model)) == {"last_layer.weight"}


def test_paper_profile_trains_on_augmented_images_and_pushes_on_plain_ones():
    train_set, push_set, test_set = protopnet.datasets_for("birds", "paper", n_train=1, n_test=1)
    assert train_set is not push_set and train_set.augment is not None and push_set.augment is None
    assert test_set.augment is None and len(push_set) == 20
    quick = protopnet.datasets_for("birds", "quick", n_train=1, n_test=1)
    assert quick[0] is quick[1]


def test_cosines_and_explanations_leave_the_callers_model_as_it_was():
    ds, model = TinySet(), tiny_model()
    model.train()
    model.backbone.eval()                                          # a frozen part stays frozen
    before = [m.training for m in model.modules()]
    protopnet.alignment_cosines(model, ds, batch_size=5)
    protopnet.explain(model, ds[0][0])
    protopnet.evaluate(model, ds, batch_size=5)
    protopnet.min_distances(model, ds, batch_size=5)
    stages.backbone_features(model, ds, batch_size=5)
    assert [m.training for m in model.modules()] == before
    with pytest.raises(ValueError, match="not on meta"):
        protopnet.alignment_cosines(model, ds, device="meta")
    assert model.prototypes.device.type == "cpu"
