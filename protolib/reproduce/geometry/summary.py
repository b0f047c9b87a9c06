"""Read a recorded 224 px run back: per-seed values, means with 95 % intervals over seeds, and the
code versions that made them (a record from another version is reported, not silently mixed in).

Every section of a seed's evaluation is ``{method: {metric: values}}``; a list of per-image values
is reduced to its mean within the seed (NaN dropped), so the interval of a table is over seeds.
Intervals over images within one seed come from the per-image lists themselves
(:func:`protolib.evaluation.stats.mean_ci`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch

from protolib.evaluation.stats import markdown_table

SECTIONS = ("localisation", "areas", "road", "randomisation", "parts", "consistency")


def load_records(out: str | Path, recipe: str) -> list[dict]:
    """The stored seeds of ``recipe`` in ``out`` (``<recipe>-seed<n>.json``), by seed."""
    files = sorted(Path(out).glob(f"{recipe}-seed*.json"), key=lambda p: int(p.stem.rsplit("seed", 1)[1]))
    if not files:
        raise FileNotFoundError(f"no recorded seed of recipe {recipe!r} in {out}")
    return [json.loads(p.read_text()) for p in files]


def versions(records: list[dict], code: str | None = None) -> list[str]:
    """One line per seed recorded by another code version (:func:`protolib.core.store.code_digest`)
    than ``code`` (or than the first seed's)."""
    ref = code or records[0]["provenance"]["code"]
    return [f"seed {r['provenance']['seed']}: recorded by code version {r['provenance']['code']} "
            f"(commit {r['provenance'].get('commit')}), not {ref}"
            for r in records if r["provenance"]["code"] != ref]


def _mean(v) -> float:
    if isinstance(v, list):
        vals = [x for x in v if x is not None and not (isinstance(x, float) and math.isnan(x))]
        return sum(vals) / len(vals) if vals else float("nan")
    return float("nan") if v is None else float(v)


def seed_values(record: dict, section: str) -> dict[str, dict[str, float]]:
    """{method: {metric: the seed's value}} of one section (``"table2"`` for Table 2's accuracies)."""
    steps = record["steps"]
    if section == "table2":
        out: dict[str, dict[str, float]] = {}
        for row, value in steps["table2"]["accuracy"].items():  # "CNN test" -> CNN, test
            model, split = row.rsplit(" ", 1)
            out.setdefault(model, {})[split] = float(value)
        return out
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; choose 'table2' or one of {SECTIONS}")
    return {m: {k: _mean(v) for k, v in metrics.items()} for m, metrics in steps["evaluation"][section].items()}


def across_seeds(records: list[dict], section: str) -> dict[str, dict[str, torch.Tensor]]:
    """{method: {metric: (n_seeds,) tensor}} of :func:`seed_values` over the records."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for m, metrics in seed_values(r, section).items():
            for k, v in metrics.items():
                out.setdefault(m, {}).setdefault(k, []).append(v)
    return {m: {k: torch.tensor(v, dtype=torch.float64) for k, v in ms.items()} for m, ms in out.items()}


def generic(name: str, record: dict) -> str:
    """A row name with its grid said by block set: ``"grid 28 x 28"`` -> ``"grid (B234's grid)"``, so
    that the rows of two geometries line up."""
    grids = record["steps"]["evaluation"]["grids"]
    for block in ("B234", "B4"):
        grid = "{} x {}".format(*grids[f"ours {block}"])
        if name.endswith(" " + grid) and not name.startswith("ours"):
            return f"{name[: -len(grid)]}({block}'s grid)"
    return name


def side_by_side(geometries: dict[str, list[dict]], section: str, metrics: Sequence[str] | None = None,
                 digits: int = 3) -> str:
    """A Markdown table of one section for several geometries ({label: records}): per method and
    metric, the mean ± 95 % half-width over each geometry's seeds, side by side."""
    rows: dict[str, dict[str, torch.Tensor]] = {}
    for label, records in geometries.items():
        for method, values in across_seeds(records, section).items():
            name = method if section == "table2" else generic(method, records[0])
            for metric, v in values.items():
                if metrics is None or metric in metrics:
                    rows.setdefault(name, {})[f"{metric}, {label}"] = v
    return markdown_table(rows, digits)


def within_seed(record: dict, section: str, metrics: Sequence[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """{method: {metric: per-image values}} of one seed (lists only), for intervals over images."""
    out = {}
    for method, values in record["steps"]["evaluation"][section].items():
        kept = {k: torch.tensor([float("nan") if x is None else x for x in v], dtype=torch.float64)
                for k, v in values.items() if isinstance(v, list) and (metrics is None or k in metrics)}
        if kept:
            out[generic(method, record)] = kept
    return out


def table(records: list[dict], section: str, digits: int = 3) -> str:
    """A Markdown table of a section: mean ± 95 % half-width over seeds (one seed: its value)."""
    return markdown_table(across_seeds(records, section), digits)


__all__ = ["SECTIONS", "load_records", "versions", "seed_values", "across_seeds", "generic", "side_by_side",
           "within_seed", "table"]
