"""embed_cached: same numbers as embed, computed once, then read from the cache."""

from __future__ import annotations

import torch

from protolib.core import data, features, store
from protolib.core.models import build_model
from protolib.core.run import Run
from protolib.core.train import TrainResult


def test_embed_cached_matches_embed_and_reads_the_cache(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = build_model("resnet18", 10).eval()
    trained = TrainResult(model, tmp_path / "cache" / "models" / "digits-test.pt", False, {"train_seconds": 1.0})
    first = features.embed_cached(trained, "digits", "test", progress=False)
    direct = features.embed(model, data.load("digits", "test"), progress=False)
    assert torch.equal(first.z, direct.z) and torch.equal(first.logits, direct.logits)
    calls = []
    monkeypatch.setattr(features, "embed", lambda *a, **k: calls.append(1))
    second = features.embed_cached(trained, "digits", "test", progress=False)
    assert calls == [] and torch.equal(first.z, second.z) and torch.equal(first.labels, second.labels)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 1
    # a retrained checkpoint (new training record) gets new features
    trained.meta = {"train_seconds": 2.0}
    monkeypatch.undo()
    features.embed_cached(trained, "digits", "test", progress=False)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 2


def test_a_run_keys_its_features_by_its_own_fingerprints(tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = TrainResult(build_model("resnet18", 10).eval(), tmp_path / "cache" / "models" / "digits-test.pt", False,
                          {"train_seconds": 1.0})
    by_name = features.embed_cached(trained, "digits", "test", progress=False)
    run = Run.resolve("digits", "quick", device="cpu")
    assert run.fingerprints["test"] == store.fingerprint(data.load("digits", "test"))
    monkeypatch.setattr(store, "fingerprint", lambda ds: 1 / 0)   # the run's, computed once above, are used
    monkeypatch.setattr(features, "embed", lambda *a, **k: 1 / 0)  # and the file written by name is read
    by_run = features.embed_cached(trained, run, "test", progress=False)
    assert torch.equal(by_name.z, by_run.z)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 1


def test_fingerprint_sees_pixels_and_labels():
    ds = data.load("digits", "test")
    before = store.fingerprint(ds)
    assert before == store.fingerprint(data.load("digits", "test"))
    ds.images[0, 0, 0, 0] ^= 1
    assert store.fingerprint(ds) != before
    ds.images[0, 0, 0, 0] ^= 1
    ds.targets[0] = (ds.targets[0] + 1) % 10
    assert store.fingerprint(ds) != before
