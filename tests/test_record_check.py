"""The record check can fail: a code change reruns a step on a warm cache, a moved number is named."""

from __future__ import annotations

import importlib.util
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from protolib import reproduce
from protolib.core import config, data, store
from protolib.core.data import digits
from protolib.core.data.base import TensorImages
from protolib.reproduce import check, steps

TINY = config.Profile(name="tiny", arch="resnet18", pretrained=False, epochs={"default": 1},
                      k_per_class_by_dataset={"default": 2}, runs=2, batch_size=32)
STEP = "VALUE = {value}\n\n\ndef step(art):\n    return [dict(table=2, row='CNN', metric='test', value=VALUE + art.seed)], {{}}\n"


def _tiny_digits(spec, split, augment, root, seed):
    full = digits.build(data.get_spec("digits"), split, False, root, seed)
    keep = torch.arange(0, len(full.targets), 12)
    return TensorImages(spec, split, full.images[keep], full.targets[keep], full.classes, f"tiny digits, {split}")


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A tiny dataset, the tiny profile, and protolib's code digest taken over a copy of the package."""
    monkeypatch.setitem(config.PROFILES, "tiny", TINY)
    spec = replace(data.get_spec("digits"), name="tinydigits", build=_tiny_digits, version="tiny-1")
    monkeypatch.setitem(data.REGISTRY, "tinydigits", spec)
    code = tmp_path / "code"
    shutil.copytree(store.CODE_ROOT, code, ignore=shutil.ignore_patterns("__pycache__", "results"))
    monkeypatch.setattr(store, "CODE_ROOT", code)
    return code


def _use_step(monkeypatch, file: Path):
    """Import the step function from ``file`` (inside the hashed package copy) and plug it in as ``cnn``."""
    spec = importlib.util.spec_from_file_location("tiny_step", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(steps.STEP_FUNCTIONS, "cnn", module.step)


def test_a_changed_step_function_reruns_on_a_warm_cache_and_fails_the_check(tiny, tmp_path, monkeypatch):
    file = tiny / "tiny_step.py"
    file.write_text(STEP.format(value=90.0))
    _use_step(monkeypatch, file)
    kw = dict(profile="tiny", steps=("cnn",), out=tmp_path / "cache", progress=False)
    made = reproduce.run(["tinydigits"], 3, **kw)
    assert len(made.computed) == 3 and made.ok
    assert reproduce.run(["tinydigits"], 3, **kw).computed == []                   # warm: read back
    same = check.check(made.results[:1], made.results)
    assert same.exact and same.ok and "identical" in same.report() and "1 of 1 equal" in same.report()

    file.write_text(STEP.format(value=120.0))                                       # the step's code changes
    _use_step(monkeypatch, file)
    live = reproduce.run(["tinydigits"], 1, **kw)
    assert live.computed == [("tinydigits", 0, "cnn")]                              # rerun, not read back
    assert live.results[0]["value"] == 120.0 and live.results[0]["code"] != made.results[0]["code"]
    result = check.check(live.results, made.results)
    assert not result.exact and result.differs == ("code",) and not result.ok
    with pytest.raises(AssertionError, match=r"tinydigits seed 0 Table 2 CNN test: now 120, recorded 90"):
        result.assert_ok()

    old, missing = reproduce.read(["tinydigits"], 3, out=tmp_path / "cache", profile="tiny", steps=("cnn",))
    assert [m[1] for m in missing] == [1, 2]                         # made by other code: not this code's
    anyc, none = reproduce.read(["tinydigits"], 3, out=tmp_path / "cache", profile="tiny", steps=("cnn",),
                                any_code=True)
    assert none == [] and len(check.versions(anyc)) == 2                   # two code versions named


def _rows(values, **setup):
    base = {"torch": "2.9", "machine": "cpu x", "threads": 2, "device": "cpu", "code": "abc", "n_test": 200}
    return [{**base, **setup, "dataset": "d", "table": 2, "row": "CNN", "metric": "test", "seed": s, "value": v}
            for s, v in enumerate(values)]


def test_tolerance_is_the_t_prediction_interval_of_the_record():
    rec = _rows([90.0, 92.0, 97.0])                                  # mean 93, sd sqrt(13)
    live = _rows([93.0 + 41.0], code="new")[:1]
    out = check.check(live, rec)
    q = 0.99 / math.sqrt(2 * 0.995 * 0.005)        # t(0.995, 2) = (2p - 1) / sqrt(2p(1 - p))
    assert q == pytest.approx(9.924843, abs=1e-6)
    half = q * math.sqrt(13.0) * math.sqrt(4 / 3)
    cell = out.cells[0]
    assert cell.reference == 93.0 and cell.tolerance == pytest.approx(half, abs=1e-9)
    assert cell.ok == (41.0 <= half) and not out.exact and out.differs == ("code",)


def test_exact_on_the_same_setup_and_a_moved_number_is_named():
    rec = _rows([90.0, 92.0, 97.0]) + [{**_rows([0.5])[0], "table": 1, "row": "KMEx K/C=1", "metric": "class"}]
    assert check.check([dict(r) for r in rec[:1]], rec).ok
    moved = [{**rec[0], "value": 90.25}]
    result = check.check(moved, rec)
    assert result.exact and not result.ok and result.cells[0].tolerance == 0.0
    with pytest.raises(AssertionError, match=r"d seed 0 Table 2 CNN test: now 90.25, recorded 90"):
        result.assert_ok()
    with pytest.raises(AssertionError, match="no cell"):
        check.check(_rows([1.0])[:0], rec).assert_ok()


def test_a_flat_accuracy_cell_gets_one_test_image_and_one_run_gives_no_tolerance():
    assert check.tolerance([100.0, 100.0, 100.0], True, 200)[0] == 0.5
    with pytest.raises(ValueError, match="at least 2 recorded runs, got 1"):
        check.tolerance([1.0], False, None)


def test_the_code_digest_follows_the_source(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = store.code_digest(tmp_path)
    assert first == store.code_digest(tmp_path) and len(first) == 12
    (tmp_path / "a.py").write_text("x = 2\n")
    assert store.code_digest(tmp_path) != first
