"""The reproduction's records: a step's file, its provenance, reading runs back, the output files.

A step's result is one JSON file ``<out>/steps/<profile>-<dataset>-seed<seed>-<step>.json`` holding
``{"key", "metrics", "provenance"}``, written through :mod:`protolib.core.store` (atomic, locked). A
*result row* is one metric of one stored step with its provenance: what the tables aggregate
(:mod:`protolib.reproduce.tables`) and the record check compares (:mod:`protolib.reproduce.check`).
The quick profile's record ships with the package (:func:`record_dir`).
"""

from __future__ import annotations

import os
import platform
import subprocess
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch

from protolib.core import config, store
from protolib.reproduce.keys import Settings, data_fingerprints, seed_for, step_key
from protolib.reproduce.tables import caption, markdown_table, results_csv

STEPS = ("cnn", "kmex", "maps", "protopnet")


def git_commit() -> str:
    """The commit of the protolib checkout (``-dirty`` when it has changes), or ``"unknown"``."""
    here = Path(__file__).resolve().parents[1]   # the protolib package
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(here)], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    """The CPU model and core count (and the GPU's name on CUDA), for provenance."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f"; {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{model}, {os.cpu_count()} CPUs{gpu}"


def record_dir(profile: str) -> Path:
    """The folder of the reproduction record shipped with the package (``protolib/reproduce/results/<profile>``)."""
    return Path(str(resources.files("protolib.reproduce") / "results" / profile))


def default_out() -> Path:
    """Where a reproduction writes when no folder is given: the cache's ``reproduce`` folder."""
    return store.folder("reproduce")


def step_path(out: str | Path, profile: str, dataset: str, seed: int, step: str) -> Path:
    """The file of one stored step."""
    return Path(out) / "steps" / f"{profile}-{dataset}-seed{seed}-{step}.json"


def load_step(path: Path, key: dict, ignore: Sequence[str] = ()) -> dict | None:
    """The stored result at ``path`` when it exists, parses and was made with ``key`` (the fields
    in ``ignore`` not compared, e.g. ``"code"`` to read a record made by other code); else ``None``."""
    stored = store.read_json(path)
    if stored is None or not isinstance(stored.get("key"), dict):
        return None
    drop = lambda k: {a: b for a, b in k.items() if a not in ignore}  # noqa: E731
    return stored if drop(stored["key"]) == drop(key) else None


def result(table: int, row: str, metric: str, value: float) -> dict:
    """One metric a step computed: the table and row it fills, the metric's name, its value."""
    return {"table": table, "row": row, "metric": metric, "value": float(value)}


def percent(fraction: float | Fraction) -> float:
    """An accuracy (a fraction in [0, 1], as the library returns it) as a record's cell: Table 2
    prints percent, so the records, the tables built on them and their check keep percent. A count
    ratio given exactly (``Fraction(correct, n)``) is rounded once, as ``100 * correct / n``."""
    return float(100 * fraction)


def accuracy_result(row: str, split: str, fraction: float | Fraction) -> dict:
    """A Table 2 cell a step computed: ``row``'s accuracy on ``split`` (a fraction), stored in percent."""
    return result(2, row, split, percent(fraction))


def record(table: int, row: str, dataset: str, metric: str, value: float, seed: int = 0) -> dict:
    """One cell of one run as the tables read it: what a chapter passes to :func:`markdown_table`."""
    return {**result(table, row, metric, value), "dataset": dataset, "seed": seed}


def rows(stored: dict, step: str) -> list[dict]:
    """One result row per metric of a stored step, with its provenance."""
    prov = {"code": stored["key"].get("code"), **stored["provenance"]}
    return [{**prov, "step": step, "run": prov["seed"], **m} for m in stored["metrics"]]


def read(datasets: Sequence[str], runs: int | Sequence[int], profile: str | config.Profile | None = None,
         out: str | Path | None = None, steps: Sequence[str] = STEPS, settings: Settings | None = None,
         any_code: bool = False, any_data: bool = False) -> tuple[list[dict], list[tuple[str, int, str]]]:
    """The stored results of ``runs`` (a count, or run indices) in ``out``, computing nothing.

    Returns (results, missing): ``missing`` lists each (dataset, seed, step) that is absent or was
    made with other settings or data (its key differs). A step made by other code is missing too,
    unless ``any_code``: then it is read, and its rows carry the ``commit`` and ``code`` digest
    that made it (``code`` is ``None`` for steps stored before keys held one), so that a reader
    can say it is not this code's (:mod:`protolib.reproduce.check`). ``any_data`` reads a record
    without the data's files: the content fingerprints are neither computed nor compared (the
    rows' provenance still names the data that made them).
    """
    prof = config.get_profile(profile)
    settings = settings or Settings.for_profile(prof)
    out = Path(out) if out is not None else default_out()
    indices = range(runs) if isinstance(runs, int) else runs
    results, missing = [], []
    ignore = ("code",) * any_code + ("data_content",) * any_data
    for dataset in datasets:
        content = ("", "") if any_data else data_fingerprints(dataset)
        for seed in map(seed_for, indices):
            for step in steps:
                stored = load_step(step_path(out, prof.name, dataset, seed, step),
                                   step_key(prof, dataset, seed, step, settings, content), ignore)
                if stored is None:
                    missing.append((dataset, seed, step))
                else:
                    results += rows(stored, step)
    return results, missing


def provenance(art, seconds: float, info: dict, commit: str) -> dict:
    """Who made a step and how: profile, data (title, sizes), seed, K/C, commit, code digest, device,
    machine, wall time, epochs, weights, and the step's own ``info`` (prefixed ``info_``).
    ``art`` is the :class:`protolib.reproduce.steps.RunArtefacts` the step ran on."""
    train_set, test_set = art.split("train"), art.split("test")
    prof = art.profile
    k = info.get("k_per_class", prof.k_per_class(art.dataset))
    return {"profile": prof.name, "dataset": art.dataset, "data": test_set.title, "n_train": len(train_set),
            "n_test": len(test_set), "seed": art.seed, "k_per_class": k, "commit": commit,
            "code": store.code_digest(), "device": str(art.device), "machine": machine(),
            "threads": torch.get_num_threads(), "wall_seconds": round(seconds, 3), "torch": torch.__version__,
            "epochs": prof.epochs_for(art.dataset), "epochs_override": prof.epochs_override,
            "weights": config.weights_note() if prof.pretrained else "random init",
            **{f"info_{a}": b for a, b in info.items()}}


TITLES = {1: "Table 1: average cosine of prototypes with their class (class) and other classes (out)",
          2: "Table 2: train and test accuracy (%)"}


def write_outputs(results: Sequence[dict], out: str | Path) -> dict[str, Path]:
    """``results.csv``, ``table1.md`` and ``table2.md`` of ``results`` in ``out`` (atomic writes)."""
    out = Path(out)
    paths = {"results": out / "results.csv", "table1": out / "table1.md", "table2": out / "table2.md"}
    store.atomic_write_text(paths["results"], results_csv(results))
    for t in (1, 2):
        text = f"**{TITLES[t]}**\n\n{markdown_table(results, t)}\n\n{caption(results, t)}\n"
        store.atomic_write_text(paths[f"table{t}"], text)
    return paths


__all__ = ["STEPS", "git_commit", "machine", "record_dir", "default_out", "step_path", "load_step", "result",
           "percent", "accuracy_result", "record", "rows", "read", "provenance", "TITLES", "write_outputs"]
