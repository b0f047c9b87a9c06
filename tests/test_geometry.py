"""The 224 px testbed: birds at 224 px, the narrow ResNet's geometry, bad input, and the record command."""

import json

import pytest
import torch

from protolib.core import data, gap, hooks, models, store
from protolib.core.data.birds import make_species, render
from protolib.core.data.birds.species import PART_NAMES, part_id
from protolib.core.narrow_resnet import narrow_resnet
from protolib.evaluation.consistency import check_masks
from protolib.method.explain.maps import ExplanationMaps
from protolib.reproduce.geometry import RECIPES, check_image_size


@pytest.fixture(scope="module")
def birds224():
    """Four birds at 224 px without noise, colour jitter or occlusion: every part one flat colour."""
    species = make_species(10, 0)
    attrs = torch.from_numpy(species.table).long()[:4]
    return render.draw(attrs, 224, torch.Generator().manual_seed(0), occlusion=0.0, noise=0.0, jitter=0.0)


def test_birds224_masks_align_with_the_drawing(birds224):
    d = birds224
    assert d.image.shape == (4, 3, 224, 224) and d.mask.shape == (4, 224, 224)
    for part in ("head", "beak", "body", "tail", "legs", "eye"):  # the wing carries a pattern
        k = part_id(part)
        for i in range(4):
            inside = d.mask[i] == k
            assert inside.any(), part
            expected = (d.colours[i, k] * 255).round().to(torch.uint8).view(3, 1)
            assert torch.equal(d.image[i][:, inside], expected.expand(3, int(inside.sum()))), part


def test_birds224_parts_span_a_layer4_cell(birds224):
    for part in ("head", "body", "wing", "legs"):
        for i in range(4):
            rows, cols = (birds224.mask[i] == part_id(part)).nonzero(as_tuple=True)
            side = max(int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
            assert side >= 32, (part, i, side)  # one cell of the 7x7 grid covers 32 px


def test_birds224_is_registered():
    spec = data.get_spec("birds224")
    assert (spec.image_size, spec.num_classes) == (224, 10) and spec.version == data.get_spec("birds").version
    assert "60 train / 20 test" in spec.description and len(PART_NAMES) == 7


@pytest.mark.parametrize("arch,params", [("resnet18_w16", 0.70e6), ("resnet18_w32", 2.80e6)])
def test_narrow_resnet_keeps_resnet_geometry(arch, params):
    net = models.build_model(arch, 10).eval()
    names = [n for n, _ in net.named_children()]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    out = hooks.block_outputs(net, torch.zeros(1, 3, 224, 224), ["layer1", "layer2", "layer3", "layer4"])
    w = int(arch.rsplit("w", 1)[1])
    assert [tuple(o.shape[1:]) for o in out.values()] == [
        (w, 56, 56), (2 * w, 28, 28), (4 * w, 14, 14), (8 * w, 7, 7)]
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - params) / params < 0.01  # as measured for the research note (10-class head)
    split = gap.split_gap_linear(net)
    assert split.head is net.fc and net.fc.bias is None
    x = torch.randn(2, 3, 224, 224)
    assert torch.allclose(split.head(split.pooled(x)), net(x), atol=1e-5)


def test_narrow_resnet_matches_torchvision_resnet18_at_width_64():
    import torchvision

    ours, theirs = narrow_resnet(64, (2, 2, 2, 2), 10), torchvision.models.resnet18(num_classes=10)
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in m.state_dict().items() if k != "fc.bias"]  # noqa: E731
    assert shapes(ours) == shapes(theirs)  # same layers, same names, same shapes


def test_bad_input_is_refused_with_sizes():
    with pytest.raises(ValueError, match=r"shape \(1, 3, 64, 64\) do not match the recipe 'w16'.*224 x 224"):
        check_image_size(torch.zeros(1, 3, 64, 64), RECIPES["w16"])
    with pytest.raises(ValueError, match=r"masks \(1, 64, 64\) do not match 224 x 224 images"):
        check_masks(torch.zeros(1, 64, 64), (224, 224), 1)
    net = narrow_resnet(4, (1, 1, 1, 1), 2).eval()
    ex = ExplanationMaps(net, "B4", k_per_class=3, progress=False, device="cpu")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ds = data.TensorImages(data.get_spec("birds"), "train", images, torch.tensor([0, 1]), ["a", "b"], "two images")
    with pytest.raises(ValueError, match=r"class 0: 1 image\(s\) x the 1 x 1 grid of B4 give 1 cells, fewer than "
                                         r"the k_per_class=3"):
        ex.fit(ds)
    with pytest.raises(ValueError, match="no ImageNet weights exist for the narrow resnet18_w16"):
        models.build_model("resnet18_w16", 10, pretrained=True)
    with pytest.raises(ValueError, match="unknown geometry recipe 'w8'"):
        from protolib.reproduce.geometry import get_recipe
        get_recipe("w8")


@pytest.fixture
def one_thread():
    """Tiny tensors run far faster on one thread than on two contended ones (the shared CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_record_command_end_to_end(tmp_path, monkeypatch, one_thread):
    from protolib.reproduce.geometry.__main__ import main
    from protolib.reproduce.geometry.record import run

    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "cache"))
    assert main(["--recipe", "tiny", "--seeds", "0", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    stored = json.loads((tmp_path / "out" / "tiny-seed0.json").read_text())
    prov = stored["provenance"]
    assert prov["seed"] == 0 and prov["recipe"] == "tiny" and prov["code"] == store.code_digest() and prov["torch"] == torch.__version__
    acc = stored["steps"]["table2"]["accuracy"]
    assert set(acc) == {f"{m} {s}" for m in ("CNN", "KMEx", "B4", "B234") for s in ("train", "test")}
    ev = stored["steps"]["evaluation"]
    assert ev["grids"]["ours B4"] == [2, 2] and ev["grids"]["ours B234"] == [8, 8]  # 64 px: 2x2 ... 8x8
    assert len(ev["localisation"]["ours B234"]["bird share"]) == RECIPES["tiny"].n_local
    assert len(ev["road"]["ours B4"]["ROAD combined"]) == RECIPES["tiny"].n_road
    assert set(ev["consistency"]["ours B234"]) >= {"consistency exact", "stability literal", "consistency segments"}
    assert {"ours B234", "DFF layer4", "grid 8 x 8"} <= set(ev["parts"])
    said = []
    run("tiny", [0], tmp_path / "out", progress=False, say=said.append)
    assert said == ["tiny-seed0.json: every step recorded by this code version; kept"]  # resumed, not recomputed
    again = run("tiny", [0], tmp_path / "again", progress=False, say=said.append)[0]  # cached backbone and maps
    assert again["steps"]["table2"]["info"]["backbone_from_cache"] and again["steps"]["table2"]["info"]["maps_from_cache"]
    assert again["steps"]["table2"]["accuracy"] == acc and again["steps"]["evaluation"] == ev  # same seed, same numbers


def fake_record(seed: int, commit: str, cnn: float, share: list) -> dict:
    """A stored seed with known values: CNN test accuracy ``cnn``, per-image bird shares ``share``."""
    acc = {f"{m} {s}": cnn for m in ("CNN", "KMEx", "B4", "B234") for s in ("train", "test")}
    ev = {s: {} for s in ("localisation", "areas", "road", "randomisation", "parts", "consistency")}
    ev["localisation"] = {"ours B4": {"bird share": share}}
    ev["consistency"] = {"ours B4": {"consistency exact": 50.0 + seed}}
    return {"provenance": {"seed": seed, "code": commit, "commit": "c" + commit}, "steps": {"table2": {"accuracy": acc}, "evaluation": ev}}


def test_summary_means_over_seeds_and_reports_versions(tmp_path):
    from protolib.reproduce.geometry import summary

    for seed, (commit, cnn, share) in enumerate([("a", 80.0, [0.2, 0.4]), ("a", 90.0, [0.5, None]),
                                                 ("b", 85.0, [0.3, 0.3])]):
        (tmp_path / f"w16-seed{seed}.json").write_text(json.dumps(fake_record(seed, commit, cnn, share)))
    records = summary.load_records(tmp_path, "w16")
    assert [r["provenance"]["seed"] for r in records] == [0, 1, 2]
    assert summary.versions(records) == ["seed 2: recorded by code version b (commit cb), not a"]
    t2 = summary.across_seeds(records, "table2")
    assert t2["CNN"]["test"].tolist() == [80.0, 90.0, 85.0]
    local = summary.across_seeds(records, "localisation")["ours B4"]["bird share"]
    assert local.tolist() == pytest.approx([0.3, 0.5, 0.3])  # per-seed means, the missing value dropped
    assert summary.across_seeds(records, "consistency")["ours B4"]["consistency exact"].tolist() == [50, 51, 52]
    # mean 85 and the Student-t half-width over 3 seeds: t(0.975, 2) * 5 / sqrt(3) = 12.42
    assert "85.0 ± 12.4" in summary.table(records, "table2", 1)
    with pytest.raises(FileNotFoundError, match="no recorded seed of recipe 'w32'"):
        summary.load_records(tmp_path, "w32")


def test_birds224_at64_draws_the_same_birds():
    """The 64 px twin differs from birds224 in resolution alone: same classes, counts and birds."""
    spec64, spec224 = data.get_spec("birds224-at64"), data.get_spec("birds224")
    assert (spec64.image_size, spec224.image_size) == (64, 224) and spec64.num_classes == spec224.num_classes
    species = make_species(10, 0)
    attrs = torch.from_numpy(species.table).long()[:6]
    small, large = (render.draw(attrs, s, torch.Generator().manual_seed(0)) for s in (64, 224))
    down = torch.nn.functional.interpolate(large.mask[:, None].float(), size=64, mode="nearest")[:, 0].long()
    assert ((down > 0) == (small.mask > 0)).double().mean() > 0.95  # the same bird, pixel for pixel up to edges


def test_stage_rows_give_resnet18_receptive_fields():
    from protolib.reproduce.geometry.grids import stage_rows, truncated

    rows = {(r["image"], r["stage"]): r for r in stage_rows("resnet18_w4", (64, 224), images_per_class=2)}
    for stage, grid64, grid224, stride, rf in (("layer2", 8, 28, 8, 99), ("layer3", 4, 14, 16, 211),
                                              ("layer4", 2, 7, 32, 435)):
        assert rows["64 px", stage]["grid"] == f"{grid64} x {grid64}" and rows["224 px", stage]["grid"] == f"{grid224} x {grid224}"
        assert rows["224 px", stage]["cell stride (px)"] == stride and rows["64 px", stage]["receptive field (px)"] == rf
        assert rows["224 px", stage]["pixel vectors per class"] == 2 * grid224 ** 2
    with pytest.raises(ValueError, match="'layer9' is not a top-level child"):
        truncated(models.build_model("resnet18_w4", 2), "layer9")


def grid_record(seed: int, gap: float) -> dict:
    """A stored seed at a 2x2 / 8x8 geometry whose B234 segments beat the 8 x 8 grid by ``gap``."""
    ev = {"grids": {"ours B4": [2, 2], "ours B34": [4, 4], "ours B234": [8, 8]},
          "parts": {"ours B234": {"NMI bird": 0.5 + gap}, "ours B4": {"NMI bird": 0.1}, "grid 8 x 8": {"NMI bird": 0.5}}}
    acc = {"KMEx test": 90.0 + 0.1 * seed, "CNN test": 90.0, "B4 test": 95.0 - seed, "B234 test": 80.0}
    return {"provenance": {"seed": seed}, "steps": {"table2": {"accuracy": acc}, "evaluation": ev}}


def test_claims_are_judged_over_seeds_with_grid_named_rows():
    from protolib.reproduce.geometry import claims, summary

    records = [grid_record(s, g) for s, g in enumerate((0.10, 0.12, 0.14))]
    by_key = {c.key: c for c in claims.CLAIMS}
    assert claims.row_name("grid {B234}", records[0]) == "grid 8 x 8"
    assert claims.row_name("random {B4}", records[0]) == "random 2 x 2"
    p1 = claims.judge(by_key["P1"], records)  # gaps 0, 0.1, 0.2: inside +-1 point
    assert p1.holds and p1.n == 3 and p1.mean == pytest.approx(0.1)
    assert claims.judge(by_key["P3"], records).holds  # B234 80 below B4 95, 94, 93
    c5 = claims.judge(by_key["C5"], records)  # "the grid beats B234": B234 is above it every seed
    assert c5.outcome == "fails" and c5.mean == pytest.approx(-0.12)
    assert claims.judge(by_key["P4"], records).holds
    table = claims.markdown({"P1": {"64 px": p1, "224 px": p1}})
    assert "| P1: KMEx's test accuracy equals the CNN's (margin 1 point) | paper | **holds**" in table
    side = summary.side_by_side({"64 px": records, "224 px": records}, "parts")
    assert "| grid (B234's grid) |" in side and "| ours B234 |" in side


def test_live_slice_checks_against_a_tiny_record(tmp_path, monkeypatch, one_thread):
    from protolib.reproduce.geometry import live, summary
    from protolib.reproduce.geometry.record import run

    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "record"
    run("tiny", [0, 1, 2], out, progress=False, say=lambda s: None)
    assert sorted(p.name for p in out.glob("*.pt")) == ["tiny-seed0.pt"]  # seed 0's weights kept
    records = summary.load_records(out, "tiny")
    rows, trained, _ = live.live_slice("tiny", out, seed=0, n_local=4, n_curve=2, progress=False)
    assert trained.path == out / "tiny-seed0.pt" and trained.from_cache
    exact = live.check(rows, records, n_local=4, n_curve=2)
    assert exact.exact and exact.ok and exact.compared == len(rows)  # same setup: identical to the last bit
    assert not any(r["row"].startswith("DFF") for r in rows)  # batch-dependent, left out of the slice
    for r in records:
        r["provenance"]["code"] = "another"
    other = live.check(rows, records, n_local=4, n_curve=2)
    assert not other.exact and other.differs == ("code",) and other.ok
    for r in records:  # a recorded cell far from what the code computes now is caught
        r["steps"]["table2"]["accuracy"]["CNN test"] = 0.0
    assert not live.check(rows, records, n_local=4, n_curve=2).ok


def _shipped() -> list[str]:
    from protolib.reproduce.geometry.record import record_folder

    return [n for n in sorted(RECIPES) if record_folder(n).is_dir()]


def test_the_chapters_geometries_are_shipped():
    assert {"w16", "w16-at64"} <= set(_shipped())


@pytest.mark.parametrize("name", _shipped())
def test_shipped_records_keep_seed_0s_weights(name):
    """Every shipped geometry record carries the weights its live slice loads (none is trained in the
    chapter), they are tracked by git (not swallowed by an ignore rule), and they load into the recipe's
    network with the record's recipe and seed."""
    import subprocess

    from protolib.reproduce.geometry import live, summary
    from protolib.reproduce.geometry.record import record_folder

    folder = record_folder(name)
    recipe = RECIPES[name]
    (seed,) = live.WEIGHTS_SEEDS
    path = live.weights_path(folder, recipe, seed)
    assert path.is_file(), f"{path} is missing: the live slice would train the backbone"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=folder, capture_output=True)
    assert ignored.returncode == 1, f"{path} is ignored by git, so it never ships"
    trained = live.load_backbone(recipe, seed, folder, device="cpu", progress=False)
    assert trained.from_cache and trained.path == path
    provenance = summary.load_records(folder, name)[seed]["provenance"]
    assert trained.meta["seed"] == provenance["seed"] == seed
    assert trained.meta["recipe"] == provenance["settings"]["train"]
