import pytest
import torch

from protolib.core import config


def test_default_profile_is_quick():
    p = config.get_profile()
    assert p.name == "quick" and p.arch == "resnet18" and not p.pretrained


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("PROTOLIB_PROFILE", "paper")
    p = config.get_profile()
    assert (p.name, p.arch, p.pretrained, p.runs) == ("paper", "resnet34", True, 5)
    assert p.k_per_class("mnist") == 5 and p.k_per_class("stl10") == 5 and p.k_per_class("cub200") == 10
    assert p.epochs_for("mnist") == 10 and p.epochs_for("stl10") == 30


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PROTOLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'.*quick"):
        config.get_profile()


def test_roots_and_device_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROTOLIB_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("PROTOLIB_CACHE", str(tmp_path / "c"))
    assert config.data_root() == tmp_path / "d" and config.cache_root() == tmp_path / "c"
    assert config.get_device() == torch.device("cpu")
    monkeypatch.delenv("PROTOLIB_DATA")
    assert config.data_root().parts[-2:] == ("protolib", "data")


def test_describe_names_profile_and_roots():
    text = config.describe()
    assert "profile : quick" in text and "data root" in text and "cache root" in text


def test_a_resolved_profile_comes_back_unchanged(monkeypatch):
    monkeypatch.delenv(config.EPOCHS_ENV, raising=False)
    paper = config.get_profile("paper")
    monkeypatch.setenv(config.PROFILE_ENV, "quick")
    monkeypatch.setenv(config.EPOCHS_ENV, "2")          # the environment does not touch a resolved profile
    assert config.get_profile(paper) is paper and paper.epochs_override is None
    assert config.get_profile(paper, epochs=3).epochs_for("stl10") == 3
    assert config.get_profile("paper").epochs_override == 2
    assert config.get_profile(paper).k_per_class("cub200") == 10 and paper.k_per_class("mnist") == 5
    assert config.describe(paper).startswith("protolib profile : paper")
