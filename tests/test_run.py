"""The run object: resolved once from the arguments and the environment, then passed down."""

from __future__ import annotations

import pytest
import torch

from protolib.baselines import protopnet
from protolib.core import config, data, store
from protolib.core.run import Run, as_run
from protolib.reproduce import table2_maps


def test_resolve_reads_the_environment_once(monkeypatch):
    monkeypatch.setenv("PROTOLIB_PROFILE", "paper")
    monkeypatch.setenv("PROTOLIB_EPOCHS", "2")
    monkeypatch.setenv("PROTOLIB_DEVICE", "cpu")
    run = Run.resolve("cub200", seed=3)
    assert (run.profile.name, run.profile.arch, run.seed, run.device) == ("paper", "resnet34", 3, torch.device("cpu"))
    assert run.epochs == 2 and run.k_per_class == 10 and run.spec.num_classes == 200
    monkeypatch.setenv("PROTOLIB_PROFILE", "quick")       # resolved: a later change does not move it
    assert run.profile.name == "paper"
    assert Run.resolve("stl10").epochs == 2 and Run.resolve("digits", "quick", epochs=5).epochs == 5
    monkeypatch.delenv("PROTOLIB_EPOCHS")
    assert Run.resolve("digits").epochs == 12 and Run.resolve("stl10", "paper").epochs == 30


def test_bad_runs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        Run.resolve("imagenet")
    with pytest.raises(ValueError, match="seed"):
        Run.resolve("digits", seed=-1)
    with pytest.raises(TypeError, match="registered dataset's name"):
        Run.resolve(data.load("digits", "test"))
    with pytest.raises(ValueError, match="unknown profile"):
        Run.resolve("digits", "fast")
    run = Run.resolve("digits", device="cpu")
    assert as_run(run) is run and as_run("digits", "quick", 2, "cpu") == Run.resolve("digits", "quick", 2, "cpu")
    with pytest.raises(TypeError, match="a Run already says its seed"):
        as_run(run, seed=1)


def test_fingerprints_are_the_datas_computed_once(monkeypatch):
    run = Run.resolve("digits", device="cpu")
    expected = {s: store.fingerprint(data.load("digits", s)) for s in ("train", "test")}
    assert run.fingerprints == expected == data.fingerprints("digits")
    calls = []
    monkeypatch.setattr(data, "fingerprints", lambda *a, **k: calls.append(a) or {})
    assert run.fingerprints == expected and calls == []       # kept on the run


def test_profile_facts_live_on_the_profile():
    quick, paper = config.get_profile("quick"), config.get_profile("paper")
    assert table2_maps.budget(quick) == (30, 600) and table2_maps.budget(paper) == (None, None)
    assert protopnet.recipe_for(quick, "digits").epochs == 12 and protopnet.recipe_for(paper, "cub200").epochs == 30
    assert protopnet.recipe_for(paper, "cub200").k_per_class == 10
    assert (quick.protopnet_init, paper.protopnet_init) == ("cnn", "imagenet")
    run = Run.resolve("birds", "paper", device="cpu")
    train_set, push_set, _ = protopnet.datasets_for(run, n_train=1, n_test=1)
    assert train_set is not push_set and train_set.augment is not None
    quick_run = Run.resolve("birds", "quick", device="cpu")
    train_set, push_set, _ = protopnet.datasets_for(quick_run, n_train=1, n_test=1)
    assert train_set is push_set


def test_the_docstring_example_runs():
    import doctest

    import protolib.core.run

    result = doctest.testmod(protolib.core.run)
    assert result.attempted == 5 and result.failed == 0  # the module's example and the class's
