"""The chapters' first step: one backbone with its splits, and the one description they print."""

from pathlib import Path
from types import SimpleNamespace

import torch

from protolib.core import backbone, data, train


def _trained(from_cache: bool) -> train.TrainResult:
    meta = {"arch": "resnet18", "pretrained": False, "profile": "quick", "seed": 3, "recipe": {"epochs": 7},
            "test_accuracy": 91.25, "train_seconds": 12.4, "device": "cpu"}
    return train.TrainResult(torch.nn.Identity(), Path("m.pt"), from_cache, meta)


def test_describe_says_which_data_model_and_run_in_three_lines():
    b = backbone.Backbone("birds", _trained(True), SimpleNamespace(title="birds train"),
                          SimpleNamespace(title="birds test"))
    assert b.describe() == ("train data : birds train\n"
                            "test data  : birds test\n"
                            "backbone   : resnet18 (random init), profile quick, seed 3, 7 epochs, CNN test accuracy "
                            "91.2 % (loaded from the cache; trained in 12 s on cpu)")
    fresh = backbone.Backbone("birds", _trained(False), b.train_set, b.test_set)
    assert fresh.describe().endswith("(trained now; trained in 12 s on cpu)")
    assert fresh.meta["seed"] == 3 and isinstance(fresh.model, torch.nn.Identity)


def test_load_returns_the_cached_backbone_and_both_splits():
    recipe = train.Recipe(epochs=1)
    b = backbone.load("digits", recipe=recipe, progress=False)
    again = train.load_or_train("digits", recipe=recipe, progress=False)
    assert again.from_cache and again.path == b.trained.path and not b.trained.from_cache
    assert len(b.train_set) == len(data.load("digits", "train")) and b.test_set.title == data.load("digits", "test").title
    assert b.dataset == "digits" and b.meta["seed"] == 0
