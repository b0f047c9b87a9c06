"""Explanation maps (eq. 6-10) on a hand-built network where every number is known."""

import math

import pytest
import torch
import torchvision
from tiny_nets import GAP_CNN_STAGES, A, B, C, D, NoiseImages, TinyImages, TinyNet, gap_cnn, paint

from protolib.core import store
from protolib.core.hooks import block_outputs
from protolib.method.explain import blocks, maps, maps_multi


def test_block_sets_are_named_as_in_the_paper():
    assert blocks.resolve_blocks("B234") == ("layer2", "layer3", "layer4")
    assert blocks.resolve_blocks("B4") == ("layer4",) and blocks.resolve_blocks("B23") == ("layer2", "layer3")
    assert blocks.resolve_blocks(["features.5", "features.7"]) == ("features.5", "features.7")
    assert blocks.block_set_name(("layer3", "layer4")) == "B34" and blocks.block_set_name(["a", "b"]) == "a+b"
    with pytest.raises(ValueError):
        blocks.resolve_blocks([])


def test_upsample_is_bilinear_without_corner_alignment():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2)
    up = blocks.upsample(x, 4)
    assert up[0, 0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]  # source coords -0.25, 0.25, 0.75, 1.25 clamped
    assert blocks.upsample(x, (2, 2)) is x


def test_composite_by_hand_pixel_and_block_norms():
    a = torch.tensor([[3.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    a[0, 1, 0, 0] = 4.0                      # block a (D=2): pixel (0,0) = (3,4), the others 0
    b = torch.ones(1, 4, 1, 1)               # block b (D=4): one pixel (1,1,1,1), upsampled to 2x2
    h = blocks.composite([a, b], norm="pixel")
    assert h.shape == (1, 6, 2, 2)
    torch.testing.assert_close(h[0, :, 0, 0], torch.tensor([3 / 10, 4 / 10, 1 / 8, 1 / 8, 1 / 8, 1 / 8]))
    torch.testing.assert_close(h[0, :, 1, 1], torch.tensor([0.0, 0.0, 1 / 8, 1 / 8, 1 / 8, 1 / 8]))  # zero stays zero
    hb = blocks.composite([a, b], norm="block")
    # block a: Frobenius norm 5 -> /(2*5); block b: 4 pixels of (1,1,1,1), Frobenius norm 4 -> /(4*4)
    torch.testing.assert_close(hb[0, :, 0, 0], torch.tensor([3 / 10, 4 / 10, 1 / 16, 1 / 16, 1 / 16, 1 / 16]))
    with pytest.raises(ValueError, match="norm"):
        blocks.normalise(a, "l1")


def test_features_of_the_tiny_network():
    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2", "layer4"], progress=False)
    x = paint({A: slice(0, 4), B: slice(4, 8)}).unsqueeze(0)
    h = ex.features(x)
    # layer4: 2x2 map, left column (1,0,1) (A through the 1x1 conv), right column (0,1,1)
    assert h.shape == (1, 2 + 3, 8, 8)
    torch.testing.assert_close(h[0, :2, 0, 0], torch.tensor([0.5, 0.0]))          # A / (2 * 1)
    torch.testing.assert_close(h[0, 2:, 0, 0], torch.tensor([1.0, 0.0, 1.0]) / (3 * math.sqrt(2)))
    # bilinear between the two layer4 columns at column 3 (source coordinate 0.875): 1/8 of the way
    mid = torch.tensor([1.0, 0.0, 1.0]) * 0.625 + torch.tensor([0.0, 1.0, 1.0]) * 0.375
    torch.testing.assert_close(h[0, 2:, 0, 3], mid / (3 * mid.norm()))


@pytest.fixture
def fitted():
    return maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, progress=False).fit(TinyImages())


def _proto(ex, colour):
    """Index of the prototype equal to the normalised colour."""
    target = torch.tensor(colour) / (2 * torch.tensor(colour).norm())
    hits = [k for k, p in enumerate(ex.prototypes_) if torch.allclose(p, target)]
    assert len(hits) == 1
    return hits[0]


def test_class_wise_prototypes_are_the_parts(fitted):
    assert fitted.prototypes_.shape == (4, 2) and fitted.prototype_classes_.tolist() == [0, 0, 1, 1]
    assert {_proto(fitted, A), _proto(fitted, B)} == {0, 1} and {_proto(fitted, C), _proto(fitted, D)} == {2, 3}
    assert fitted.inertia_.abs().max() < 1e-6 and fitted.n_fit_pixels_.tolist() == [192, 192]
    assert fitted.grid_ == (8, 8)
    # nearest training pixel: the first pixel of that colour in the first image of the class
    assert fitted.patch_index_[_proto(fitted, A)].tolist() == [0, 0, 0]
    assert fitted.patch_index_[_proto(fitted, B)].tolist() == [0, 0, 4]
    assert fitted.patch_index_[_proto(fitted, D)].tolist() == [1, 4, 0]


def test_explanation_map_counts_and_prediction(fitted):
    x = torch.stack([
        paint({A: slice(0, 5), C: slice(5, 8)}),                    # 40 A, 24 C -> scores (20, 12)
        paint({C: slice(0, 5), A: slice(5, 8)}),                    # 40 C, 24 A -> (12, 20)
        paint({A: slice(0, 4), C: slice(4, 8)}),                    # 32 A, 32 C -> tie (16, 16)
        paint({B: slice(0, 2), D: slice(2, 8)}),                    # 16 B, 48 D -> (8, 24)
    ])
    out = fitted.explain(x)
    a, c = _proto(fitted, A), _proto(fitted, C)
    assert out.segments.shape == (4, 8, 8) and out.segments.dtype == torch.long
    assert (out.segments[0, :, :5] == a).all() and (out.segments[0, :, 5:] == c).all()
    assert out.counts[0, a] == 40 and out.counts[0, c] == 24 and out.counts.sum(1).tolist() == [64] * 4
    assert out.scores.tolist() == [[20.0, 12.0], [12.0, 20.0], [16.0, 16.0], [8.0, 24.0]]
    assert out.prediction.tolist() == [0, 1, 0, 1]  # the tie goes to the lowest class index
    assert out.segment_classes[3, 0, 0] == 0 and out.segment_classes[3, 0, 7] == 1
    assert out.binary().shape == (4, 64, 4) and out.binary().sum() == 4 * 64
    assert fitted.predict(x).tolist() == [0, 1, 0, 1]
    assert fitted.score(TinyImages()) == 1.0  # a fraction, as scikit-learn's score


def test_subsampling_determinism_and_errors():
    kw = dict(blocks=["layer2"], k_per_class=2, progress=False, max_pixels_per_class=50, max_images_per_class=2)
    one = maps.ExplanationMaps(TinyNet(), random_state=3, **kw).fit(TinyImages())
    two = maps.ExplanationMaps(TinyNet(), random_state=3, **kw).fit(TinyImages())
    assert one.n_fit_pixels_.tolist() == [50, 50] and torch.equal(one.prototypes_, two.prototypes_)
    with pytest.raises(RuntimeError, match="not fitted"):
        maps.ExplanationMaps(TinyNet(), progress=False).explain(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="class 2"):
        maps.ExplanationMaps(TinyNet(), blocks=["layer2"], progress=False).fit(TinyImages(), num_classes=3)
    with pytest.raises(ValueError, match="norm"):
        maps.ExplanationMaps(TinyNet(), norm="frobenius").fit(TinyImages())


def test_fit_features_recovers_planted_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    per_class = [centres[2 * c:2 * c + 2].repeat_interleave(50, 0) + 0.1 * torch.randn(100, 2, generator=g)
                 for c in range(2)]
    ex = maps.ExplanationMaps(TinyNet(), k_per_class=2, progress=False).fit_features(per_class)
    found = ex.prototypes_.view(2, 2, 2).sort(dim=1).values.view(4, 2)
    torch.testing.assert_close(found, centres, atol=0.05, rtol=0)


@pytest.mark.parametrize("norm", ["pixel", "block"])
def test_resnet_shapes_norms_and_shared_forward_pass(norm):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    ex234 = maps.ExplanationMaps(model, "B234", k_per_class=2, norm=norm, progress=False)
    ex4 = maps.ExplanationMaps(model, "B4", k_per_class=2, norm=norm, progress=False)
    x = torch.randn(2, 3, 64, 64)
    h = ex234.features(x)
    assert h.shape == (2, 128 + 256 + 512, 8, 8) and ex4.features(x).shape == (2, 512, 2, 2)
    if norm == "pixel":  # every pixel of block b has length 1/D_b
        for lo, hi in ((0, 128), (128, 384), (384, 896)):
            torch.testing.assert_close(h[:, lo:hi].norm(dim=1), torch.full((2, 8, 8), 1 / (hi - lo)))
    else:                # the whole block of one image has length 1/D_b
        torch.testing.assert_close(h[:, :128].flatten(1).norm(dim=1), torch.full((2,), 1 / 128))
    g = torch.Generator().manual_seed(1)
    for ex, d in ((ex234, 896), (ex4, 512)):
        ex.fit_features([torch.randn(40, d, generator=g) for _ in range(3)])
    multi = maps_multi.explain_all({"B234": ex234, "B4": ex4}, x)
    both, acts = multi.maps, multi.activations
    torch.testing.assert_close(multi.logits, model(x))
    assert set(acts) == {"layer2", "layer3", "layer4"}
    assert torch.equal(both["B234"].segments, ex234.explain(x).segments)
    assert both["B4"].segments.shape == (2, 2, 2) and both["B234"].scores.shape == (2, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_keeps_tensors_on_the_device(fitted):
    ex = maps.ExplanationMaps(TinyNet().cuda(), blocks=["layer2"], k_per_class=2, device="cuda", progress=False)
    ex.fit(TinyImages())
    out = ex.explain(TinyImages().images)
    assert out.segments.device.type == "cuda" and torch.equal(out.segments.cpu(), fitted.explain(TinyImages().images).segments)


def test_fit_all_and_explain_dataset_all_share_passes_and_agree_with_single_fits():
    net, ds = TinyNet(), TinyImages()
    kw = dict(k_per_class=2, progress=False, random_state=1)
    joint = maps_multi.fit_all({"B34": maps.ExplanationMaps(net, "B34", **kw), "B234": maps.ExplanationMaps(net, "B234", **kw)}, ds)
    for name, ex in joint.items():
        alone = maps.ExplanationMaps(net, name, **kw).fit(ds)
        assert torch.equal(ex.prototypes_, alone.prototypes_) and torch.equal(ex.patch_index_, alone.patch_index_)
    out, logits = maps_multi.explain_dataset_all(joint, ds, indices=[1, 2, 5])
    torch.testing.assert_close(logits, net(ds.images[[1, 2, 5]]))
    assert torch.equal(out["B234"].segments, joint["B234"].explain(ds.images[[1, 2, 5]]).segments)
    assert all(not m._forward_hooks for m in net.modules())  # every hook was removed
    with pytest.raises(ValueError, match="one max_images_per_class"):
        maps_multi.fit_all({"a": maps.ExplanationMaps(net, "B4", max_images_per_class=1),
                      "b": maps.ExplanationMaps(net, "B4")}, ds)
    with pytest.raises(ValueError, match="share one model"):
        maps_multi.fit_all({"a": maps.ExplanationMaps(net, "B4"), "b": maps.ExplanationMaps(TinyNet(), "B4")}, ds)


def test_load_or_fit_caches_the_fitted_state(tmp_path):
    from protolib.method.explain.maps_cache import load_or_fit

    net, ds = TinyNet(), TinyImages()
    make = lambda: {"B4": maps.ExplanationMaps(net, "B4", k_per_class=2, progress=False),  # noqa: E731
                    "B234": maps.ExplanationMaps(net, "B234", k_per_class=2, progress=False)}
    first, cached = load_or_fit(make(), ds, "tiny.pt", cache_dir=tmp_path)
    again, cached_again = load_or_fit(make(), ds, "tiny.pt", cache_dir=tmp_path)
    assert not cached and cached_again
    for k in first:
        assert torch.equal(first[k].prototypes_, again[k].prototypes_) and again[k].grid_ == first[k].grid_
        assert torch.equal(first[k].explain(ds.images).segments, again[k].explain(ds.images).segments)
    other, cached_other = load_or_fit({"B4": maps.ExplanationMaps(net, "B4", k_per_class=1, progress=False)},
                                      ds, "tiny.pt", cache_dir=tmp_path)
    assert not cached_other and len(other["B4"].prototypes_) == 2
    changed = TinyNet()
    with torch.no_grad():
        changed.fc.weight.mul_(2)  # same file name, other weights: no stale reuse
    _, cached_changed = load_or_fit({"B4": maps.ExplanationMaps(changed, "B4", k_per_class=1, progress=False)},
                                    ds, "tiny.pt", cache_dir=tmp_path)
    assert not cached_changed
    # the data's fingerprint, given or computed
    _, given_same = load_or_fit(make(), ds, "tiny.pt", cache_dir=tmp_path, content=store.fingerprint(ds))
    _, given_other = load_or_fit(make(), ds, "tiny.pt", cache_dir=tmp_path, content="0123456789abcdef")
    assert given_same and not given_other


def test_streaming_backend_fits_one_forward_pass_at_a_time_and_finds_the_same_parts_and_patches(fitted):
    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, batch_size=1, kmeans_backend="streaming",
                              progress=False)
    seen = []
    real = ex._features
    ex._features = lambda x: seen.append(len(x)) or real(x)
    ex.fit(TinyImages())
    assert seen and max(seen) == 1                     # one image per forward pass: the class is never held
    assert ex.prototypes_.shape == (4, 2) and ex.prototype_classes_.tolist() == [0, 0, 1, 1]
    for colour in (A, B, C, D):                         # the same parts as the exact backend, to float precision
        target = torch.tensor(colour) / (2 * torch.tensor(colour).norm())
        assert min((p - target).norm() for p in ex.prototypes_) < 1e-6
    assert ex.inertia_.abs().max() < 1e-6 and ex.n_fit_pixels_.tolist() == [192, 192]
    for colour in (A, B, D):                            # nearest training pixel found in the stream: the same
        k = min(range(4), key=lambda i: (ex.prototypes_[i] - torch.tensor(colour) / (2 * torch.tensor(colour).norm())).norm())
        assert ex.patch_index_[k].tolist() == fitted.patch_index_[_proto(fitted, colour)].tolist()
    assert ex.patch_distance_.max() < 1e-10
    with pytest.raises(ValueError, match="never holds them"):
        maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, max_pixels_per_class=10,
                             kmeans_backend="streaming", progress=False).fit(TinyImages())


def test_init_only_stores_the_parameters_and_the_fit_checks_them():
    net = TinyNet().train()
    ex = maps.ExplanationMaps(net, blocks="B9", k_per_class=0, norm="l2")  # refused at fit, not here
    assert (ex.model, ex.blocks, ex.k_per_class, ex.norm, ex.device) == (net, "B9", 0, "l2", None)
    assert net.training and not hasattr(ex, "device_")                     # the model is left as it was
    with pytest.raises(ValueError, match="norm must be one of"):
        ex.fit(TinyImages())


def test_public_per_class_steps_give_the_fit_and_the_state_dict_restores_it(fitted):
    ds = TinyImages()
    ex = maps.ExplanationMaps(TinyNet(), blocks=["layer2"], k_per_class=2, progress=False, device="cpu")
    ex.prepare()
    targets = torch.as_tensor(ds.targets)
    steps = []
    for c in range(2):
        idx = ex.class_images(targets, c)
        acts = maps_multi.class_activations(ex, ds, idx, ex.layers)
        steps.append(ex.fit_class(c, idx, activations=acts))
    ex.set_prototypes(steps, input_size=(8, 8))
    for name in maps.ExplanationMaps.FITTED:                                 # the same as fit(), exactly
        assert torch.equal(getattr(ex, name).cpu(), getattr(fitted, name).cpu()), name
    state = fitted.state_dict()
    again = maps.ExplanationMaps(fitted.model, blocks=["layer2"], k_per_class=2, progress=False).load_state_dict(state)
    x = ds.images[:4]
    assert torch.equal(again.explain(x).segments, fitted.explain(x).segments)
    with pytest.raises(KeyError, match="not a state_dict"):
        again.load_state_dict({"prototypes_": state["prototypes_"]})


@pytest.mark.parametrize("kind", ["three", "densenet121", "efficientnet_b0"])
def test_block_sets_on_non_resnet_cnns_are_their_last_stages(kind):
    net, ds = gap_cnn(kind), NoiseImages(32)
    last3 = GAP_CNN_STAGES[kind][-3:]
    ex = {n: maps.ExplanationMaps(net, n, k_per_class=2, progress=False) for n in ("B4", "B234")}
    maps_multi.fit_all(ex, ds)
    assert ex["B234"].layers == last3 and ex["B4"].layers == last3[-1:] and ex["B234"].name == "B234"
    x = ds.images[:4]
    acts = block_outputs(net, x, last3)
    channels = sum(acts[n].shape[1] for n in last3)
    assert ex["B234"].features(x).shape == (4, channels, *acts[last3[0]].shape[-2:])  # the shallowest grid
    out = maps_multi.explain_all(ex, x)
    assert out.maps["B234"].segments.shape == (4, *acts[last3[0]].shape[-2:])
    assert out.maps["B4"].segments.shape == (4, *acts[last3[-1]].shape[-2:])
    # every pixel of the grid is assigned to one prototype
    assert torch.equal(out.maps["B234"].counts.sum(1), torch.full((4,), out.maps["B234"].segments[0].numel()))
