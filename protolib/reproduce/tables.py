"""Cells over runs: mean and spread, paired gaps, and the Markdown Tables 1 and 2 with captions.

A *result row* is one number of one run (``table``, ``row``, ``dataset``, ``metric``, ``seed``,
``value`` and its provenance), as :mod:`protolib.reproduce.records` stores them. This module turns rows
into cells (mean and sample standard deviation over seeds) and cells into the paper's tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from protolib.core import config, tables
from protolib.reproduce import paper

TABLE1_ROWS = ("CNN", "KMEx K/C=1", f"KMEx K/C={paper.KMEX_TABLE_K}", "ProtoPNet")
TABLE2_ROWS = ("CNN", f"KMEx K/C={paper.KMEX_TABLE_K}", "ProtoPNet", "Ours B4", "Ours B234")

@dataclass(frozen=True)
class Cell:
    """Mean and sample standard deviation (ddof = 1; ``nan`` for one run) of one cell over ``n`` runs;
    ``values``: the runs' values, in the order of ``seeds``."""

    mean: float
    std: float
    n: int
    seeds: tuple[int, ...]
    values: tuple[float, ...] = ()

    def digits_for(self, digits: int) -> int:
        """``digits``, or more when a nonzero standard deviation would round to zero with it (the
        first significant digit of the sd is shown: 0.0012 needs 3)."""
        if self.n > 1 and self.std > 0 and round(self.std, digits) == 0:
            return max(digits, -math.floor(math.log10(self.std)))
        return digits

    def format(self, digits: int) -> str:
        """``mean ± std`` with ``digits`` decimals (more where the sd needs them); ``mean`` for one run."""
        if self.n == 1 or math.isnan(self.std):
            return f"{self.mean:.{digits}f}"
        d = self.digits_for(digits)
        return f"{self.mean:.{d}f} ± {self.std:.{d}f}"

    @property
    def spread(self) -> float:
        """The standard deviation, 0 for a single run (where ``std`` is ``nan``)."""
        return self.std if self.n > 1 else 0.0

    def describe(self, label: str, digits: int = 2) -> str:
        """``label mean ± std (n=runs)``: a cell quoted in running text."""
        return f"{label} {self.format(digits)} (n={self.n})"


def aggregate(results: Iterable[dict]) -> dict[tuple[int, str, str, str], Cell]:
    """{(table, row, dataset, metric): Cell} over the seeds present (each seed counted once)."""
    groups: dict[tuple, dict[int, float]] = {}
    for r in results:
        groups.setdefault((r["table"], r["row"], r["dataset"], r["metric"]), {})[int(r["seed"])] = float(r["value"])
    cells = {}
    for key, by_seed in groups.items():
        v = np.array([by_seed[s] for s in sorted(by_seed)], dtype=np.float64)
        std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        cells[key] = Cell(float(v.mean()), std, len(v), tuple(sorted(by_seed)), tuple(v.tolist()))
    return cells


def by_seed(results: Iterable[dict], dataset: str, row: str, metric: str = "test", table: int = 2) -> dict[int, float]:
    """{seed: value} of one cell over the runs present: what :func:`protolib.evaluation.verdict.verdict` pairs."""
    out = {int(r["seed"]): float(r["value"]) for r in results
           if (r["table"], r["row"], r["dataset"], r["metric"]) == (table, row, dataset, metric)}
    if not out:
        raise ValueError(f"no run of {dataset!r} has {row!r} ({metric}, Table {table})")
    return out


def run_seconds(results: Iterable[dict]) -> dict[tuple[str, int], float]:
    """{(dataset, seed): seconds} one run cost, from its steps' provenance: each step's wall time,
    plus the backbone's training and ProtoPNet's stages when the step read them from the cache
    (their wall time is then below the training time they report). A lower bound: maps read
    from the cache do not say what their k-means cost."""
    steps = {(r["dataset"], int(r["seed"]), r["step"]): r for r in results if "step" in r}
    out: dict[tuple[str, int], float] = {}
    for (d, s, _), r in steps.items():
        wall = float(r.get("wall_seconds") or 0.0)
        trained = float(r.get("info_train_seconds") or r.get("info_stage_seconds") or 0.0)
        out[(d, s)] = out.get((d, s), 0.0) + (wall + trained if wall < trained else wall)
    return out


def paired_gap(results: Iterable[dict], dataset: str, row: str, reference: str, metric: str = "test",
               table: int = 2) -> Cell:
    """``row - reference`` run by run (paired by seed), then mean and sample std of those gaps.

    Two rows of one run share its backbone, so their difference varies less than either row:
    pairing by seed is the right test, not the difference of two means with their own spreads.
    Only seeds that have both rows count.
    """
    by: dict[str, dict[int, float]] = {row: {}, reference: {}}
    for r in results:
        if r["table"] == table and r["dataset"] == dataset and r["metric"] == metric and r["row"] in by:
            by[r["row"]][int(r["seed"])] = float(r["value"])
    seeds = sorted(set(by[row]) & set(by[reference]))
    if not seeds:
        raise ValueError(f"no run of {dataset!r} has both {row!r} and {reference!r} ({metric}, Table {table})")
    gaps = [by[row][s] - by[reference][s] for s in seeds]
    v = np.array(gaps, dtype=np.float64)
    return Cell(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v), tuple(seeds),
                tuple(gaps))


def _datasets_in(results: Sequence[dict]) -> list[str]:
    seen = []
    for r in results:
        if r["dataset"] not in seen:
            seen.append(r["dataset"])
    return seen


def caption(results: Sequence[dict], table: int) -> str:
    """Which profile, data, runs and seeds made ``table`` (one Markdown paragraph)."""
    rows = [r for r in results if r["table"] == table]
    if not rows:
        return f"Table {table}: no results."
    profiles = sorted({r["profile"] for r in rows})
    prof = config.get_profile(profiles[0])
    seeds = sorted({int(r["seed"]) for r in rows})
    data_txt = "; ".join(f"{d}: {next(r['data'] for r in rows if r['dataset'] == d)} "
                         f"({next(r['n_train'] for r in rows if r['dataset'] == d)} train / "
                         f"{next(r['n_test'] for r in rows if r['dataset'] == d)} test)" for d in _datasets_in(rows))
    twin = [d for d in _datasets_in(rows) if paper.counterpart(d) not in (None, d)]
    what = ("mean cosine over the test split (class / out)" if table == 1
            else "accuracy in % (train / test; maps: train on a seeded subset when the profile says so)")
    weights = "; ".join(sorted({r.get("weights", "ImageNet weights" if prof.pretrained else "random init") for r in rows}))
    epochs = ", ".join(f"{d} {next(r.get('epochs', '?') for r in rows if r['dataset'] == d)}" for d in _datasets_in(rows))
    override = sorted({r.get("epochs_override") for r in rows} - {None})
    epochs += (f" (${config.EPOCHS_ENV}={', '.join(map(str, override))} override, not the profile's epochs)"
               if override else "")
    return (f"Ours: profile **{', '.join(profiles)}** ({prof.arch}, {weights}; epochs: {epochs}), "
            f"n = {len(seeds)} run(s), seeds {', '.join(map(str, seeds))}; {what}; mean ± sample std over "
            f"the n runs (more decimals where the sd needs them). "
            f"Data: {data_txt}. In parentheses: the paper's Table {table} ({paper.BACKBONE}"
            f"{', five runs' if table == 2 else ''})"
            + (f"; {', '.join(twin)} compared with the paper's " + ", ".join(sorted({paper.TITLES[paper.counterpart(d)] for d in twin}))
               + " column (a different dataset: only the trend compares)" if twin else "")
            + "; no parentheses: the paper has no such column.")


def markdown_table(results: Sequence[dict], table: int, rows: Sequence[str] | None = None) -> str:
    """Table ``table`` in the paper's layout: a row per model (``rows``, default all of the
    table's), datasets as column groups, each cell ``mean ± std (paper)``; the number of runs of
    each cell is in the caption (and in ``[n=..]`` where a cell has fewer runs than the table)."""
    cells = aggregate(results)
    metrics = paper.TABLE1_METRICS if table == 1 else paper.TABLE2_METRICS
    rows = rows or (TABLE1_ROWS if table == 1 else TABLE2_ROWS)
    digits = 2 if table == 1 else 1
    datasets = _datasets_in([r for r in results if r["table"] == table])
    n_max = max((c.n for k, c in cells.items() if k[0] == table), default=0)
    body = []
    for row in rows:
        out = []
        for d in datasets:
            for m in metrics:
                c = cells.get((table, row, d, m))
                txt = "–" if c is None else c.format(digits) + (f" [n={c.n}]" if c.n < n_max else "")
                out.append(tables.with_reference(txt, paper.value(table, row, d, m), digits))
        body.append([row, *out])
    n_cols = len(datasets) * len(metrics)
    return tables.markdown(["model", *(f"{d} {m}" for d in datasets for m in metrics)], body,
                           right=range(1, n_cols + 1))


CSV_FIELDS = ("profile", "dataset", "data", "n_train", "n_test", "run", "seed", "step", "table", "row", "metric",
              "value", "k_per_class", "epochs", "weights", "commit", "device", "wall_seconds")


def results_csv(results: Sequence[dict]) -> str:
    """One line per dataset x seed x row x metric, with its provenance."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({**r, "k_per_class": json.dumps(r["k_per_class"]), "value": repr(float(r["value"]))})
    return buf.getvalue()


__all__ = ["TABLE1_ROWS", "TABLE2_ROWS", "Cell", "aggregate", "by_seed", "run_seconds", "paired_gap", "caption", "markdown_table",
           "CSV_FIELDS", "results_csv"]
