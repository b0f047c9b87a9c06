"""The reproduction (protolib.reproduce): aggregation, resume after a crash, provenance, missing data, CLI, tables."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from fractions import Fraction

import pytest
import torch

from protolib import reproduce
from protolib.core import config, data, store
from protolib.core.data import digits
from protolib.core.data.base import DatasetNotFoundError, TensorImages
from protolib.reproduce import cli, keys, protocol, records, steps, tables

TINY = config.Profile(name="tiny", arch="resnet18", pretrained=False, epochs={"default": 1},
                      k_per_class_by_dataset={"default": 2}, runs=2, batch_size=32)
SETTINGS = reproduce.Settings(images_per_class=4, eval_train=20, kmex_n_init=1,
                              protopnet=dict(warm_epochs=1, epochs=1, push_every=1, last_layer_epochs=1, dim=8,
                                             batch_size=20, test_batch_size=40, push_batch_size=40),
                              protopnet_init="cnn")


def _tiny_digits(spec, split, augment, root, seed):
    """60 training / 30 test images of scikit-learn's digits (6 per class in training)."""
    full = digits.build(data.get_spec("digits"), split, False, root, seed)
    n = 60 if split == "train" else 30
    keep = torch.cat([torch.nonzero(full.targets == c).flatten()[: n // 10] for c in range(10)]).sort().values
    return TensorImages(spec, split, full.images[keep], full.targets[keep], full.classes, f"tiny digits, {split}")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(config.PROFILES, "tiny", TINY)
    spec = replace(data.get_spec("digits"), name="tinydigits", build=_tiny_digits, version="tiny-1")
    monkeypatch.setitem(data.REGISTRY, "tinydigits", spec)
    return spec


def _row(seed, value, row="CNN", metric="test", table=2, dataset="d"):
    return {"table": table, "row": row, "metric": metric, "dataset": dataset, "seed": seed, "value": value}


def test_aggregate_mean_and_sample_std_by_hand():
    rows = [_row(0, 90.0), _row(1, 92.0), _row(2, 97.0), _row(0, 0.5, "KMEx K/C=1", "class", 1)]
    cells = reproduce.aggregate(rows)
    c = cells[(2, "CNN", "d", "test")]
    # mean 93, deviations -3, -1, 4: sum of squares 26, over n - 1 = 2: variance 13
    assert c.mean == 93.0 and c.std == pytest.approx(math.sqrt(13.0), abs=1e-12) and c.n == 3 and c.seeds == (0, 1, 2)
    assert c.format(1) == "93.0 ± 3.6"
    one = cells[(1, "KMEx K/C=1", "d", "class")]
    assert one.n == 1 and math.isnan(one.std) and one.format(2) == "0.50"


def test_aggregate_counts_a_seed_once():
    cells = reproduce.aggregate([_row(0, 1.0), _row(0, 1.0), _row(1, 3.0)])
    assert cells[(2, "CNN", "d", "test")].n == 2 and cells[(2, "CNN", "d", "test")].mean == 2.0


def test_markdown_table_puts_the_papers_value_beside_ours():
    rows = [{**_row(s, v, "Ours B234", "test", dataset="mnist"), "profile": "quick", "data": "m", "n_train": 1,
             "n_test": 1} for s, v in ((0, 97.0), (1, 99.0))]
    text = reproduce.markdown_table(rows, 2)
    assert "| mnist train | mnist test |" in text
    assert "| Ours B234 | – (98.9) | 98.0 ± 1.4 (98.5) |" in text
    cap = tables.caption(rows, 2)
    assert "profile **quick**" in cap and "n = 2 run(s), seeds 0, 1" in cap


def test_seed_is_the_run_index():
    assert [reproduce.seed_for(r) for r in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        reproduce.seed_for(-1)


def test_missing_dataset_is_a_clear_error_before_any_work(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        reproduce.run(["stl10"], 1, "quick", tmp_path / "out", progress=False)
    assert "stl10" in str(err.value) and "How to get it" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert cli.main(["--datasets", "stl10", "--runs", "1", "--out", str(tmp_path / "out")]) == 2


@pytest.mark.slow
def test_resume_after_a_crash_recomputes_only_what_is_missing(tiny, tmp_path, monkeypatch):
    calls = []
    real = steps.STEP_FUNCTIONS["kmex"]

    def flaky(job):
        calls.append(job.seed)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(job)

    monkeypatch.setitem(steps.STEP_FUNCTIONS, "kmex", flaky)
    kw = dict(profile="tiny", steps=("cnn", "kmex"), settings=SETTINGS, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        reproduce.run(["tinydigits"], 2, out=tmp_path / "a", keep_going=False, **kw)
    stored = sorted(p.name for p in (tmp_path / "a" / "steps").iterdir())
    assert stored == ["tiny-tinydigits-seed0-cnn.json", "tiny-tinydigits-seed0-kmex.json",
                      "tiny-tinydigits-seed1-cnn.json"]
    resumed = reproduce.run(["tinydigits"], 2, out=tmp_path / "a", **kw)
    assert resumed.computed == [("tinydigits", 1, "kmex")] and resumed.ok
    again = reproduce.run(["tinydigits"], 2, out=tmp_path / "a", **kw)
    assert again.computed == [] and calls == [0, 1, 1]

    fresh = reproduce.run(["tinydigits"], 2, out=tmp_path / "b", **kw)       # an uninterrupted run
    key = lambda r: (r["seed"], r["step"], r["table"], r["row"], r["metric"])  # noqa: E731
    assert [(key(r), r["value"]) for r in resumed.results] == [(key(r), r["value"]) for r in fresh.results]
    assert len(fresh.results) == 2 * (4 + 4 + 2)      # per seed: CNN 4 cells, KMEx 1 and 5: 2 + 4


@pytest.mark.slow
def test_every_row_has_its_provenance_and_every_table_cell_is_filled(tiny, tmp_path):
    outcome = reproduce.run(["tinydigits"], 2, "tiny", tmp_path, settings=SETTINGS, progress=False)
    assert outcome.ok and len(outcome.computed) == 8
    for r in outcome.results:
        assert r["profile"] == "tiny" and r["dataset"] == "tinydigits" and r["data"] == "tiny digits, test"
        assert (r["n_train"], r["n_test"]) == (60, 30) and r["seed"] in (0, 1) and r["device"] == "cpu"
        assert r["commit"] and r["wall_seconds"] >= 0 and "k_per_class" in r
    cells = reproduce.aggregate(outcome.results)
    for row in reproduce.TABLE1_ROWS:
        for m in ("class", "out"):
            assert cells[(1, row, "tinydigits", m)].n == 2
    for row in reproduce.TABLE2_ROWS:
        for m in ("train", "test"):
            assert cells[(2, row, "tinydigits", m)].n == 2
            assert 0.0 <= cells[(2, row, "tinydigits", m)].mean <= 100.0
    by = {(r["seed"], r["step"]): r for r in outcome.results}
    assert by[(0, "maps")]["k_per_class"] == 2 and by[(0, "kmex")]["k_per_class"] == [1, 5]
    assert by[(0, "cnn")]["info_epochs"] == 1

    paths = reproduce.write_outputs(outcome.results, outcome.out)
    rows = list(csv.DictReader(io.StringIO(paths["results"].read_text())))
    assert len(rows) == len(outcome.results) == 2 * (4 + 6 + 4 + 4)
    assert {r["run"] for r in rows} == {"0", "1"} and all(r["commit"] and r["profile"] == "tiny" for r in rows)
    assert float(rows[0]["value"]) == outcome.results[0]["value"]                   # full precision
    t2 = paths["table2"].read_text()
    assert "| Ours B4 |" in t2 and "n = 2 run(s), seeds 0, 1" in t2
    stored = json.loads(records.step_path(tmp_path, "tiny", "tinydigits", 1, "cnn").read_text())
    assert stored["provenance"]["seed"] == 1 and stored["key"]["epochs"] == 1


def test_a_stored_step_made_with_other_settings_is_not_reused(tiny, tmp_path):
    key = keys.step_key("tiny", "tinydigits", 0, "maps", SETTINGS)
    path = records.step_path(tmp_path, "tiny", "tinydigits", 0, "maps")
    store.atomic_write_text(path, json.dumps({"key": key, "metrics": [], "provenance": {}}))
    assert records.load_step(path, key) is not None
    other = keys.step_key("tiny", "tinydigits", 0, "maps", replace(SETTINGS, images_per_class=5))
    assert other != key and records.load_step(path, other) is None
    path.write_text("{ half a file")
    assert records.load_step(path, key) is None


def test_read_returns_the_record_and_names_what_is_missing_or_stale(tiny, tmp_path):
    kw = dict(profile="tiny", steps=("cnn", "kmex"), settings=SETTINGS)
    made = reproduce.run(["tinydigits"], 1, out=tmp_path, progress=False, **kw)
    results, missing = reproduce.read(["tinydigits"], 2, out=tmp_path, **kw)
    key = lambda r: (r["seed"], r["step"], r["row"], r["metric"], r["value"])  # noqa: E731
    assert sorted(map(key, results)) == sorted(map(key, made.results))
    assert missing == [("tinydigits", 1, "cnn"), ("tinydigits", 1, "kmex")]
    other = replace(SETTINGS, kmex_n_init=2)                                      # other settings: kmex is stale
    _, stale = reproduce.read(["tinydigits"], [0], out=tmp_path, profile="tiny", steps=("cnn", "kmex"), settings=other)
    assert stale == [("tinydigits", 0, "kmex")]


def test_any_data_reads_a_record_without_the_datas_files(tiny, tmp_path):
    key = keys.step_key("tiny", "tinydigits", 0, "cnn", SETTINGS, ("made", "elsewhere"))  # other files
    path = records.step_path(tmp_path, "tiny", "tinydigits", 0, "cnn")
    store.atomic_write_text(path, json.dumps({"key": key, "metrics": [records.result(2, "CNN", "test", 90.0)],
                                              "provenance": {"seed": 0, "dataset": "tinydigits"}}))
    kw = dict(profile="tiny", steps=("cnn",), settings=SETTINGS)
    _, missing = reproduce.read(["tinydigits"], 1, out=tmp_path, **kw)        # the files here differ
    assert missing == [("tinydigits", 0, "cnn")]
    rows, none = reproduce.read(["tinydigits"], 1, out=tmp_path, any_data=True, **kw)
    assert none == [] and [(r["row"], r["value"]) for r in rows] == [("CNN", 90.0)]
    del data.REGISTRY["tinydigits"]   # a name that is not registered is still an error
    with pytest.raises(ValueError, match="tinydigits"):
        reproduce.read(["tinydigits"], 1, out=tmp_path, any_data=True, **kw)


def test_a_step_key_holds_the_content_of_the_data(tiny):
    a = keys.step_key("tiny", "tinydigits", 0, "cnn", SETTINGS, ("aaaa", "bbbb"))
    b = keys.step_key("tiny", "tinydigits", 0, "cnn", SETTINGS, ("aaaa", "cccc"))     # new test files
    assert a != b and a["data_content"] == ["aaaa", "bbbb"]
    assert keys.step_key("tiny", "tinydigits", 0, "cnn", SETTINGS)["data_content"] == list(
        keys.data_fingerprints("tinydigits"))


def test_captions_say_which_weights_and_epochs_made_the_numbers():
    base = {"profile": "paper", "data": "d", "n_train": 1, "n_test": 1, "epochs": 1, "epochs_override": 1,
            "weights": "NOT the official ImageNet weights: w.pth ($PROTOLIB_WEIGHTS_UNOFFICIAL=1)"}
    text = tables.caption([{**base, **_row(0, 90.0)}], 2)
    assert "NOT the official ImageNet weights" in text and "PROTOLIB_EPOCHS=1 override" in text
    plain = tables.caption([{**base, "epochs_override": None, "weights": "random init", **_row(0, 90.0)}], 2)
    assert "override" not in plain and "random init" in plain


def test_paired_gap_pairs_rows_by_seed():
    rows = [_row(0, 90.0), _row(1, 94.0), _row(2, 95.0),                                   # CNN
            _row(0, 89.0, "Ours B4"), _row(1, 92.0, "Ours B4"), _row(2, 95.0, "Ours B4"),   # B4
            _row(3, 50.0, "Ours B4")]                                                      # no CNN for seed 3
    g = tables.paired_gap(rows, "d", "Ours B4", "CNN")
    # gaps -1, -2, 0: mean -1, squares of deviations 0 + 1 + 1 = 2, over n - 1 = 2: variance 1
    assert (g.mean, g.std, g.n, g.seeds, g.values) == (-1.0, 1.0, 3, (0, 1, 2), (-1.0, -2.0, 0.0))
    with pytest.raises(ValueError, match="no run of 'd' has both"):
        tables.paired_gap(rows, "d", "ProtoPNet", "CNN")


def test_cell_spread_and_description_for_one_and_several_runs():
    three = tables.Cell(2.0, 1.5, 3, (0, 1, 2), (1.0, 1.5, 3.5))
    assert three.spread == 1.5 and three.describe("B4 test", 1) == "B4 test 2.0 ± 1.5 (n=3)"
    one = tables.Cell(2.0, float("nan"), 1, (0,), (2.0,))
    assert one.spread == 0.0 and one.describe("CNN") == "CNN 2.00 (n=1)"


def test_a_nonzero_spread_never_prints_as_zero():
    assert tables.Cell(0.3316, 0.0012, 3, (0, 1, 2)).format(2) == "0.332 ± 0.001"
    assert tables.Cell(0.3316, 0.00004, 3, (0, 1, 2)).format(2) == "0.33160 ± 0.00004"
    assert tables.Cell(0.3316, 0.0, 3, (0, 1, 2)).format(2) == "0.33 ± 0.00"         # a true zero stays
    assert tables.Cell(99.44, 0.03, 3, (0, 1, 2)).format(1) == "99.44 ± 0.03"


def test_a_table2_cell_is_an_accuracy_in_percent():
    assert records.percent(0.75) == 75.0                    # the library's fraction, Table 2's percent
    assert 100 * (2856 / 3000) != 95.2 == records.percent(Fraction(2856, 3000))   # a count ratio: one rounding
    assert records.accuracy_result("CNN", "test", 0.75) == {"table": 2, "row": "CNN", "metric": "test", "value": 75.0}


def test_record_is_a_cell_the_tables_read():
    rows = [reproduce.record(1, "CNN", "digits", m, v, seed=0) for m, v in (("class", 0.123), ("out", -0.01))]
    assert reproduce.markdown_table(rows, 1, rows=["CNN"]).splitlines() == [
        "| model | digits class | digits out |", "| --- | ---: | ---: |", "| CNN | 0.12 | -0.01 |"]


def test_with_record_computes_run_0_and_reads_the_other_runs_from_the_record(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(steps.STEP_FUNCTIONS, "cnn",
                        lambda art: ([records.result(2, "CNN", "test", 90.0 + art.seed)], {}))
    kw = dict(steps=("cnn",), settings=SETTINGS, progress=False)
    reproduce.run(["tinydigits"], 3, "tiny", tmp_path / "rec", **kw)              # the shipped record
    monkeypatch.setattr(protocol, "record_dir", lambda name: tmp_path / "rec")
    rep = reproduce.with_record(["tinydigits"], 3, "tiny", **kw)
    assert rep.live.computed == [("tinydigits", 0, "cnn")] and len(rep.recorded) == 3
    assert [(r["seed"], r["value"]) for r in rep.results] == [(0, 90.0), (1, 91.0), (2, 92.0)]
    assert rep.live.out == store.folder("reproduce") and rep.paths["table2"].parent == rep.live.out
    assert "| CNN | – | 91.0 ± 1.0 |" in rep.paths["table2"].read_text()
    assert "seeds 1, 2 read from the record, made by this code version" in rep.summary()
    records.step_path(tmp_path / "rec", "tiny", "tinydigits", 2, "cnn").unlink()
    with pytest.raises(ValueError, match=r"1 recorded steps are missing.*make the record again"):
        reproduce.with_record(["tinydigits"], 3, "tiny", **kw)
    monkeypatch.setattr(protocol, "record_dir", lambda name: tmp_path / "none")   # no record: all computed
    alone = reproduce.with_record(["tinydigits"], 2, "tiny", **kw)
    assert alone.recorded == [] and alone.live.computed == [("tinydigits", 1, "cnn")]
    assert [r["value"] for r in alone.results] == [90.0, 91.0]
