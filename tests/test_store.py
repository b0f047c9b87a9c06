"""The cache keys by the data's content, per-kind format versions, local weights and the run options."""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import make_cub, make_mnist, write_resnet_weights

from protolib.core import config, data, models, store, train


def test_key_holds_the_kind_and_its_format_version(monkeypatch):
    k = store.key("backbone", seed=0)
    assert k == store.key("backbone", seed=0) and k != store.key("features", seed=0) != store.key("backbone", seed=1)
    monkeypatch.setitem(store.FORMATS, "backbone", store.FORMATS["backbone"] + 1)
    assert store.key("backbone", seed=0) != k
    with pytest.raises(ValueError, match="unknown cache kind 'weights'"):
        store.key("weights")


def test_new_data_files_train_a_new_model_not_the_cached_one(tmp_path):
    """Train on MNIST's test files alone, then add the official train files: a new model, scored
    on the official test split, never the old one (which saw those test images in training)."""
    root = tmp_path / "data"
    make_mnist(root, n_test=2050)  # test files only: 50 train / 2,000 test images split from them
    recipe = train.Recipe(epochs=1, batch_size=16)
    first = train.load_or_train("mnist", recipe=recipe, progress=False)
    assert not first.from_cache and "TEST split only" in first.meta["data"]
    again = train.load_or_train("mnist", recipe=recipe, progress=False)
    assert again.from_cache and again.path == first.path
    make_mnist(root, n_test=2050, n_train=50)
    second = train.load_or_train("mnist", recipe=recipe, progress=False)
    assert not second.from_cache and second.path != first.path
    assert second.meta["data"] == "MNIST (official test split, 32 px)"
    assert any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                      second.model.state_dict().values()) if a.is_floating_point())


def test_cub_fingerprint_sees_added_and_replaced_images(tmp_path):
    make_cub(tmp_path, classes=3, test_classes=2)
    before = {s: store.fingerprint(data.load("cub200", s, root=tmp_path)) for s in ("train", "test")}
    assert before["train"] != before["test"]
    assert before["test"] == store.fingerprint(data.load("cub200", "test", root=tmp_path))
    make_cub(tmp_path, classes=3, test_classes=3)  # one more test image
    after = {s: store.fingerprint(data.load("cub200", s, root=tmp_path)) for s in ("train", "test")}
    assert after["train"] == before["train"] and after["test"] != before["test"]
    ds = data.load("cub200", "train", root=tmp_path)
    ds.paths[0].write_bytes(ds.paths[0].read_bytes() + b"\0")  # same name, other file
    assert store.fingerprint(data.load("cub200", "train", root=tmp_path)) != after["train"]


def test_subset_fingerprint_follows_parent_and_indices():
    ds = data.load("digits", "test")
    a, b = torch.utils.data.Subset(ds, [0, 1]), torch.utils.data.Subset(ds, [0, 2])
    assert store.fingerprint(a) != store.fingerprint(b)
    assert store.fingerprint(a) == store.fingerprint(torch.utils.data.Subset(data.load("digits", "test"), [0, 1]))


def test_weights_file_checksum_against_torchvision(tmp_path, monkeypatch):
    path = write_resnet_weights(tmp_path / "resnet18.pth", "resnet18")
    assert models.official_hash_prefix("resnet18") == "f37072fd"  # resnet18-f37072fd.pth
    with pytest.raises(models.WeightsChecksumError, match=r"(?s)not torchvision's ImageNet resnet18.*f37072fd.*UNOFFICIAL"):
        models.build_model("resnet18", 10, pretrained=True, weights_path=path)
    expected = torch.load(path, weights_only=True)["layer1.0.conv1.weight"]
    model = models.build_model("resnet18", 10, pretrained=True, weights_path=path, unofficial_weights=True)
    assert torch.equal(model.layer1[0].conv1.weight, expected) and model.fc.out_features == 10
    # a file whose SHA-256 starts with the published prefix is accepted without the flag
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(models, "official_hash_prefix", lambda arch: sha[:8])
    monkeypatch.setenv("PROTOLIB_WEIGHTS", str(path))
    assert torch.equal(models.build_model("resnet18", 10, pretrained=True).layer1[0].conv1.weight, expected)
    assert models.weights_record("resnet18") == {"file": str(path), "sha256": sha, "official": True}
    with pytest.raises(models.WeightsUnavailableError, match="does not exist"):
        models.build_model("resnet18", 10, pretrained=True, weights_path=tmp_path / "missing.pth")


def test_unofficial_weights_are_named_in_the_banner(tmp_path, monkeypatch):
    monkeypatch.setenv("PROTOLIB_PROFILE", "paper")
    assert "ImageNet weights (torchvision)" in config.describe()
    monkeypatch.setenv("PROTOLIB_WEIGHTS", str(tmp_path / "w.pth"))
    assert f"ImageNet weights from {tmp_path / 'w.pth'}" in config.describe()
    monkeypatch.setenv("PROTOLIB_WEIGHTS_UNOFFICIAL", "1")
    assert "NOT the official ImageNet weights" in config.describe()


def test_epochs_override_leaves_the_profile_alone(monkeypatch):
    assert config.get_profile("paper").epochs_for("stl10") == 30
    assert config.get_profile("paper", epochs=2).epochs_for("stl10") == 2
    monkeypatch.setenv("PROTOLIB_EPOCHS", "1")
    prof = config.get_profile("paper")
    assert prof.epochs_for("mnist") == prof.epochs_for("cub200") == 1 and config.PROFILES["paper"].epochs["cub200"] == 30
    assert "1 for every dataset ($PROTOLIB_EPOCHS override" in config.describe("paper")
    from protolib.baselines.protopnet import recipe_for
    steps = [s.name for s in recipe_for("paper", "cub200").schedule()]
    assert steps == ["warm_up1-1", "joint2-2", "push", "last_layer"] and recipe_for("paper").last_layer_epochs == 1
    monkeypatch.setenv("PROTOLIB_EPOCHS", "zero")
    with pytest.raises(ValueError, match="PROTOLIB_EPOCHS must be a positive integer"):
        config.get_profile()


def test_loader_options_per_device_and_override(monkeypatch):
    assert config.loader_options("cpu") == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    monkeypatch.setattr(config.os, "cpu_count", lambda: 16)
    assert config.loader_options("cuda")["num_workers"] == 8 and config.loader_options("cuda")["pin_memory"]
    monkeypatch.setenv("PROTOLIB_WORKERS", "3")
    assert config.loader_options("cpu")["num_workers"] == 3
    monkeypatch.setenv("PROTOLIB_WORKERS", "-1")
    with pytest.raises(ValueError, match="PROTOLIB_WORKERS"):
        config.loader_options("cpu")


def test_key_fields_hold_the_format_and_the_code_digest_only_when_asked(monkeypatch):
    plain = store.key_fields("reproduce", seed=1, split=("train", "test"))
    assert plain == {"format": store.FORMATS["reproduce"], "seed": 1, "split": ["train", "test"]}
    monkeypatch.setattr(store, "code_digest", lambda: "c0de")
    assert store.key_fields("reproduce", code=True, seed=1)["code"] == "c0de"
    # the hash of the fields is the key: a file's name and the stored fields agree
    assert store.key("backbone", seed=0) == store.digest(kind="backbone", format=store.FORMATS["backbone"], seed=0)
    assert store.key("backbone", code=True, seed=0) != store.key("backbone", seed=0)


def test_listing_and_clearing_a_temporary_cache(tmp_path, capsys):
    root = tmp_path / "c"
    store.atomic_save({"state_dict": {"w": torch.zeros(250)}, "meta": {}}, store.path("backbone", "a", "k1", root))
    store.atomic_save({"state_dict": {"w": torch.zeros(10)}, "meta": {}}, store.path("backbone", "b", "k2", root))
    store.write_json(store.folder("reproduce", root) / "steps" / "s.json", {"key": {}, "metrics": []})
    (store.folder("backbone", root) / "a-k1.pt.lock").write_text("")          # locks are not artefacts
    sizes = {k: (f.stat().st_size) for k, f in ((f.name, f) for f in store.files("backbone", root))}
    listed = store.listing(root)
    assert listed["backbone"] == (2, sum(sizes.values())) and listed["reproduce"][0] == 1
    assert listed["features"] == (0, 0) and set(listed) == set(store.FOLDERS)
    assert store.main(["--list", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"cache root: {root}" and out[-1].split()[:2] == ["total", "3"]
    assert store.main(["--clear", "backbone", "--cache-dir", str(root)]) == 0
    assert "removed 2 file(s)" in capsys.readouterr().out
    assert store.listing(root)["backbone"] == (0, 0) and store.listing(root)["reproduce"][0] == 1
    assert not list(store.folder("backbone", root).glob("*.lock"))
    assert store.main(["--clear", "weights", "--cache-dir", str(root)]) == 2
    assert store.clear(cache_dir=root) == 1 and sum(c for c, _ in store.listing(root).values()) == 0


def test_the_cache_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "env"))
    assert store.path("maps", "m", "k") == tmp_path / "env" / "maps" / "m-k.pt"
    assert store.folder("reproduce") == tmp_path / "env" / "reproduce"
    with pytest.raises(ValueError, match="unknown cache kind 'weights'"):
        store.folder("weights")


def test_protopnet_stages_are_files_of_the_store(tmp_path):
    from protolib.baselines.protopnet import StageCache
    from protolib.baselines.protopnet.model import ProtoPNet
    model = ProtoPNet.from_cnn(models.build_model("resnet18", 2), 2, 1, 8)
    cache = StageCache(model, {"dataset": "d", "arch": "resnet18", "profile": "quick", "seed": 0}, cache_dir=tmp_path)
    file = cache.path(["warm_up1-1"])
    key = store.key("protopnet", dataset="d", arch="resnet18", profile="quick", seed=0, steps=["warm_up1-1"])
    assert file == tmp_path / "protopnet" / f"d-resnet18-quick-seed0-01-warm_up1-1-{key}.pt"
