"""The paper's protocol per (dataset, seed), every result persisted as it comes, resumable.

For each dataset and run ``r`` (seed ``r``: run 0 shares its backbones with the chapters) the four
steps of :mod:`protolib.reproduce.steps` fill every cell of the paper's Tables 1 and 2. Each
(dataset, seed, step) result is written as soon as it is computed, with its provenance and a key
of the settings and the code that made it (:mod:`protolib.reproduce.keys`,
:mod:`protolib.reproduce.records`): a killed run resumes where it stopped, a finished step is never
recomputed, a step made with other settings or other code (another
:func:`protolib.core.store.code_digest`) is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from protolib.core import config, data, store
from protolib.core.run import Run
from protolib.reproduce.check import versions
from protolib.reproduce.keys import Settings, data_fingerprints, seed_for, step_key
from protolib.reproduce.records import (
    STEPS,
    default_out,
    git_commit,
    load_step,
    provenance,
    read,
    record_dir,
    rows,
    step_path,
    write_outputs,
)
from protolib.reproduce.steps import STEP_FUNCTIONS, RunArtefacts

OFFLINE = ("digits", "mnist", "birds")
ALL_DATASETS = ("digits", "mnist", "birds", "stl10", "cub200")


@dataclass
class Outcome:
    """What :func:`run` did: the stored results, the keys it computed now, and failures."""

    results: list[dict]
    computed: list[tuple[str, int, str]]
    failed: dict[tuple[str, int, str], str]
    out: Path

    @property
    def ok(self) -> bool:
        return not self.failed


def check_datasets(datasets: Sequence[str]) -> None:
    """Raise :class:`DatasetNotFoundError` (what is missing, how to get it) for the first absent dataset."""
    for name in datasets:
        data.get_spec(name)               # unknown name: ValueError listing the registered ones
        data.load(name, "test")           # absent files: DatasetNotFoundError with how to get them


def run(datasets: Sequence[str], runs: int, profile: str | config.Profile | None = None, out: str | Path | None = None,
        steps: Sequence[str] = STEPS, settings: Settings | None = None, device=None, progress: bool = True,
        keep_going: bool = True) -> Outcome:
    """Run (or resume) the protocol on ``datasets`` for runs 0..runs-1; returns the stored results.

    ``out`` defaults to ``<cache>/reproduce``. A step already stored with the same key is read,
    not recomputed. With ``keep_going`` a failing step is recorded in ``Outcome.failed`` and the
    next (dataset, seed) goes on (the later steps of the failed one are skipped); otherwise it raises.
    """
    prof = config.get_profile(profile)
    settings = settings or Settings.for_profile(prof)
    out = Path(out) if out is not None else default_out()
    unknown = [s for s in steps if s not in STEP_FUNCTIONS]
    if unknown or runs < 1:
        raise ValueError(f"steps must be among {STEPS} (got {unknown}) and runs >= 1 (got {runs})")
    check_datasets(datasets)
    commit = git_commit()
    todo = [(d, seed_for(r), s) for d in datasets for r in range(runs) for s in steps]
    content = {d: data_fingerprints(d) for d in datasets}
    results, computed, failed, made = [], [], {}, {}
    bar = tqdm(todo, desc="reproduce", disable=not progress, unit="step")
    for dataset, seed, step in bar:
        bar.set_postfix_str(f"{dataset} seed {seed} {step}")
        if any(k[:2] == (dataset, seed) for k in failed):
            continue
        key = step_key(prof, dataset, seed, step, settings, content[dataset])
        path = step_path(out, prof.name, dataset, seed, step)
        stored = load_step(path, key)
        if stored is None:
            art = made.setdefault((dataset, seed), RunArtefacts(Run.resolve(dataset, prof, seed, device), settings,
                                                                progress))
            start = time.perf_counter()
            try:
                metrics, info = STEP_FUNCTIONS[step](art)
            except Exception as err:
                if not keep_going:
                    raise
                failed[(dataset, seed, step)] = f"{type(err).__name__}: {err}"
                tqdm.write(f"FAILED {dataset} seed {seed} {step}: {type(err).__name__}: {err}")
                continue
            stored = {"key": key, "metrics": metrics,
                      "provenance": provenance(art, time.perf_counter() - start, info, commit)}
            store.write_json(path, stored)
            computed.append((dataset, seed, step))
        results += rows(stored, step)
        if (dataset, seed) in made and step == steps[-1]:
            del made[(dataset, seed)]      # free the models of a finished (dataset, seed)
    return Outcome(results, computed, failed, out)


@dataclass
class Reproduction:
    """What :func:`with_record` made: the runs computed now (``live``), the shipped record's rows
    (``recorded``, empty without a record), every run's rows (``results``: the live runs, and the
    record's other runs) and the output files written from them (``paths``)."""

    live: Outcome
    recorded: list[dict]
    results: list[dict]
    paths: dict[str, Path]

    def summary(self) -> str:
        """What was computed now and read back, and which code version and machines made the record."""
        n = len({(r["dataset"], r["seed"], r["step"]) for r in self.live.results})
        lines = [f"computed now: {len(self.live.computed)} step(s); read from the cache: {n - len(self.live.computed)}"]
        if self.recorded:
            code = store.code_digest()
            made_by = "; ".join(versions(self.recorded))
            seeds = sorted({int(r["seed"]) for r in self.recorded} - {int(r["seed"]) for r in self.live.results})
            whose = ("this code version" if all(r.get("code") == code for r in self.recorded) else
                     f"another code version, not this one (commit {git_commit()}, code digest {code})")
            lines.append(f"seeds {', '.join(map(str, seeds))} read from the record, made by {whose} ({made_by})")
            setups = {f"{r['machine']}, torch {r['torch']}, {r['threads']} threads" for r in self.recorded}
            lines.append("  on " + "; ".join(sorted(setups)))
        lines += [f"written: {p}" for p in self.paths.values()]
        return "\n".join(lines)


def with_record(datasets: Sequence[str], runs: int, profile: str | config.Profile | None = None,
                steps: Sequence[str] = STEPS, settings: Settings | None = None, progress: bool = True) -> Reproduction:
    """The reproduction chapter's numbers in one call: where the profile's record ships with the
    package (:func:`protolib.reproduce.records.record_dir`, the quick profile), run 0 is computed
    now (every step, resumable) and runs 1 .. ``runs`` - 1 are read from the record (made by any
    code version; :mod:`protolib.reproduce.check` sets run 0 against it); elsewhere every run is
    computed. The tables and ``results.csv`` are written to the cache's ``reproduce`` folder.
    ``steps`` and ``settings`` as in :func:`run`.
    A record that lacks a step, or holds one made with other settings or data, is a ``ValueError``
    that says how to make it again."""
    prof = config.get_profile(profile)
    where = record_dir(prof.name)
    if not where.is_dir():
        live = run(datasets, runs, prof, steps=steps, settings=settings, progress=progress)
        return Reproduction(live, [], live.results, write_outputs(live.results, live.out))
    live = run(datasets, 1, prof, steps=steps, settings=settings, progress=progress)
    recorded, missing = read(datasets, runs, prof, where, steps, settings, any_code=True)
    if missing:
        raise ValueError(f"{len(missing)} recorded steps are missing or were made with other settings or data, "
                         f"e.g. {missing[:2]}; make the record again: python -m protolib.reproduce --profile "
                         f"{prof.name} --datasets {' '.join(datasets)} --runs {runs} --out {where}")
    results = live.results + [r for r in recorded if r["seed"] != seed_for(0)]
    return Reproduction(live, recorded, results, write_outputs(results, live.out))


__all__ = ["OFFLINE", "ALL_DATASETS", "Outcome", "check_datasets", "run", "Reproduction", "with_record"]
