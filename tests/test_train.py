"""The training recipe's determinism and the checkpoint cache (atomic write, lock, corrupt file)."""

import multiprocessing as mp
import time

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from protolib.core import data, features, store, train
from protolib.core.models import build_model


def _tiny_fit(seed: int) -> dict:
    torch.manual_seed(123)  # same initial weights; only the training seed varies
    model = build_model("resnet18", 10)
    subset = Subset(data.load("digits", "train"), range(96))
    train.fit(model, subset, train.Recipe(epochs=1, batch_size=32), seed=seed, progress=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = _tiny_fit(0), _tiny_fit(0), _tiny_fit(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_accuracies_are_fractions_of_a_hand_made_case():
    x, y = torch.zeros(4, 3), torch.tensor([0, 0, 0, 1])
    head = torch.nn.Linear(3, 2)                       # always class 0: three of four right
    torch.nn.init.zeros_(head.weight)
    head.bias.data = torch.tensor([1.0, 0.0])
    assert train.accuracy(head, TensorDataset(x, y), device="cpu") == 0.75
    emb = features.Embeddings(torch.zeros(4, 2), torch.tensor([[1.0, 0.0]] * 4), y)
    assert emb.accuracy() == 0.75


def test_fit_leaves_the_global_rng_alone():
    model = build_model("resnet18", 10)
    state = torch.random.get_rng_state()
    subset = Subset(data.load("digits", "train"), range(32))
    train.fit(model, subset, train.Recipe(epochs=1, batch_size=32), progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    real_save = torch.save

    def crash_midway(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        store.atomic_save({"state_dict": {}}, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(torch, "save", real_save)
    store.atomic_save({"state_dict": {"w": torch.ones(2)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))


def test_corrupt_checkpoint_is_rebuilt_not_a_crash(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"\x00garbage")
    calls = []

    def build():
        calls.append(1)
        return {"state_dict": {"w": torch.zeros(1)}, "meta": {}}

    with pytest.warns(UserWarning, match="unreadable"):
        ckpt, cached = store.load_or_build(path, build)
    assert not cached and calls == [1]
    ckpt, cached = store.load_or_build(path, build)
    assert cached and calls == [1]


def _build_in_process(path, log):
    def build():
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.0)  # long enough for the other process to reach the lock
        return {"state_dict": {"w": torch.arange(3.0)}, "meta": {}}

    ckpt, _ = store.load_or_build(path, build)
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))


def test_two_processes_build_once(tmp_path):
    path, log = tmp_path / "m.pt", tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_in_process, args=(path, log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text() == "built\n"


def test_cache_key_changes_with_what_matters():
    base = dict(dataset="mnist", arch="resnet18", seed=0, recipe={"epochs": 3})
    assert store.key("backbone", **base) == store.key("backbone", **base)
    assert store.key("backbone", **base) != store.key("backbone", **{**base, "seed": 1})
    assert store.key("backbone", **base) != store.key("backbone", **{**base, "recipe": {"epochs": 4}})


@pytest.mark.slow
def test_load_or_train_caches_and_reloads(tmp_path):
    recipe = train.Recipe(epochs=1)
    first = train.load_or_train("digits", recipe=recipe, progress=False, cache_dir=tmp_path)
    assert not first.from_cache and first.path.exists()
    assert first.meta["profile"] == "quick" and "seed 0" in first.meta["data"]
    second = train.load_or_train("digits", recipe=recipe, progress=False, cache_dir=tmp_path)
    assert second.from_cache and second.meta == first.meta
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
