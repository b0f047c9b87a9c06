"""The paper's protocol per (dataset, seed), every result persisted as it comes, mean and spread, a CLI.

For each dataset and run ``r`` (seed ``r``: run 0 shares its backbones with the chapters) four
steps fill every cell of the paper's Tables 1 and 2:

``cnn``        load-or-train the backbone (:func:`protolib.train.load_or_train`, the profile's
               epochs); CNN accuracy (Table 2) and classifier-column cosines (Table 1);
``kmex``       KMEx with K/C = 1 and K/C = 5 (the tables' rows) on the pooled embeddings;
``maps``       B4 and B234 explanation maps with the profile's K/C (:mod:`protolib.maps_eval`);
``protopnet``  ProtoPNet (:func:`protolib.protopnet.load_or_train`), accuracies and cosines.

Each (dataset, seed, step) result is written atomically to ``<out>/steps/`` as soon as it is
computed, with its provenance (profile, data title and size, seed, K/C, commit, device, wall
time) and a key of the settings and the code that made it (:mod:`protolib.record_keys`): a killed
run resumes where it stopped, a finished step is never recomputed, a step made with other settings
or other code (another :func:`protolib.store.code_digest`) is. Cells and tables live in
:mod:`protolib.record_tables`, the check of a run against a record in :mod:`protolib.record_check`;
the quick profile's record ships with the package (:func:`record_dir`). :func:`write_outputs` writes
``results.csv`` (one row per dataset x seed x row x metric) and ``table1.md`` / ``table2.md``
(mean +- sample standard deviation over runs, beside the paper's value).

    python -m protolib.reproduce --profile quick --datasets digits mnist birds --runs 3 --out results/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from . import config, data, features, maps_eval, paper, protopnet, sem, store, train
from .data import DatasetNotFoundError
from .kmex import KMExClassifier
from .metrics import alignment_cosines
from .record_keys import (FORMAT, Settings, data_fingerprints, git_commit, load_step, machine,  # noqa: F401
                          record_dir, seed_for, step_key, step_path)
from .record_tables import (TABLE1_ROWS, TABLE2_ROWS, Cell, aggregate, caption, markdown_table, paired_gap,  # noqa: F401
                            results_csv)

STEPS = ("cnn", "kmex", "maps", "protopnet")
OFFLINE = ("digits", "mnist", "birds")
ALL_DATASETS = ("digits", "mnist", "birds", "stl10", "cub200")


# --- one (dataset, seed) -------------------------------------------------------------------

class Job:
    """The shared, lazily loaded inputs of the steps of one (dataset, seed)."""

    def __init__(self, dataset: str, seed: int, profile: str | config.Profile, settings: Settings, device=None,
                 progress: bool = True):
        self.dataset, self.seed, self.profile = dataset, seed, config.get_profile(profile)
        self.settings, self.device, self.progress = settings, config.get_device(device), progress
        self._cache: dict = {}

    def _get(self, name: str, make: Callable):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    @property
    def trained(self) -> train.TrainResult:
        return self._get("trained", lambda: train.load_or_train(self.dataset, profile=self.profile, seed=self.seed,
                                                                device=self.device, progress=self.progress))

    def split(self, name: str):
        return self._get(f"set-{name}", lambda: data.load(self.dataset, name))

    def embeddings(self, split: str) -> features.Embeddings:
        return self._get(f"emb-{split}", lambda: features.embed_cached(self.trained, self.dataset, split,
                                                                       device=self.device, progress=self.progress))


def _m(table: int, row: str, metric: str, value: float) -> dict:
    return {"table": table, "row": row, "metric": metric, "value": float(value)}


def record(table: int, row: str, dataset: str, metric: str, value: float, seed: int = 0) -> dict:
    """One cell of one run as the tables read it: what a chapter passes to :func:`markdown_table`."""
    return {**_m(table, row, metric, value), "dataset": dataset, "seed": seed}


def step_cnn(job: Job) -> tuple[list[dict], dict]:
    """CNN rows: test-split cosines of the classifier columns, train / test accuracy of the head."""
    tr, te = job.embeddings("train"), job.embeddings("test")
    C = sem.classifier_prototypes(job.trained.model).cpu().double()
    cos = alignment_cosines(C, torch.arange(len(C)), te.z, te.labels)
    meta = job.trained.meta
    info = {"arch": meta["arch"], "pretrained": meta["pretrained"], "epochs": meta["recipe"]["epochs"],
            "train_seconds": meta.get("train_seconds"), "checkpoint": job.trained.path.name}
    return [_m(1, "CNN", "class", cos.class_mean), _m(1, "CNN", "out", cos.out_mean),
            _m(2, "CNN", "train", tr.accuracy()), _m(2, "CNN", "test", te.accuracy())], info


def step_kmex(job: Job) -> tuple[list[dict], dict]:
    """KMEx with K/C = 1 and K/C = 5 on the pooled embeddings (float64), seeded by the run's seed."""
    tr, te = job.embeddings("train"), job.embeddings("test")
    z_tr, y_tr = tr.z.double().numpy(), tr.labels.numpy()
    z_te, y_te = te.z.double().numpy(), te.labels.numpy()
    out = []
    for k in (1, paper.KMEX_TABLE_K):
        clf = KMExClassifier(k, n_init=job.settings.kmex_n_init, random_state=job.seed).fit(z_tr, y_tr)
        cos = alignment_cosines(clf.prototypes_, clf.prototype_labels_, te.z, te.labels)
        row = f"KMEx K/C={k}"
        out += [_m(1, row, "class", cos.class_mean), _m(1, row, "out", cos.out_mean)]
        if row in TABLE2_ROWS:
            out += [_m(2, row, "train", 100 * float((clf.predict(z_tr) == y_tr).mean())),
                    _m(2, row, "test", 100 * float((clf.predict(z_te) == y_te).mean()))]
    return out, {"k_per_class": [1, paper.KMEX_TABLE_K], "n_init": job.settings.kmex_n_init}


def step_maps(job: Job) -> tuple[list[dict], dict]:
    """Ours B4 / B234: eq. 10 accuracy of the explanation maps (profile's K/C)."""
    k = job.profile.k_per_class(job.dataset)
    s = job.settings
    explainers, cached = maps_eval.fit_maps(job.trained, job.split("train"), k, s.images_per_class, job.seed,
                                            progress=job.progress)
    acc = maps_eval.map_accuracies(explainers, job.split("train"), job.split("test"), s.eval_train)
    out = [_m(2, f"Ours {n}", split, acc[(n, split)]) for n in ("B4", "B234") for split in ("train", "test")]
    return out, {"k_per_class": k, "images_per_class": s.images_per_class, "eval_train": s.eval_train,
                 "maps_from_cache": cached}


def step_protopnet(job: Job) -> tuple[list[dict], dict]:
    """ProtoPNet (the profile's recipe): train / test accuracy, mean-latent cosines on the test split."""
    recipe = protopnet.recipe_for(job.profile, job.dataset, **job.settings.protopnet)
    run = protopnet.load_or_train(job.dataset, job.profile, job.seed, recipe=recipe,
                                  init=job.settings.protopnet_init, device=job.device, progress=job.progress)
    _, push_set, test_set = protopnet.datasets_for(job.dataset, job.profile)
    bs = recipe.test_batch_size
    acc_tr = protopnet.evaluate(run.model, push_set, bs, job.device).accuracy
    acc_te = protopnet.evaluate(run.model, test_set, bs, job.device).accuracy
    cos = protopnet.alignment_cosines(run.model, test_set, mode="mean", batch_size=bs, device=job.device)
    seconds = sum(r.seconds for r in run.state.results.values() if isinstance(r, protopnet.StageResult))
    return ([_m(1, "ProtoPNet", "class", cos.class_), _m(1, "ProtoPNet", "out", cos.out),
             _m(2, "ProtoPNet", "train", acc_tr), _m(2, "ProtoPNet", "test", acc_te)],
            {"k_per_class": recipe.k_per_class, "recipe": recipe.key_fields(), "init": run.key["init"],
             "stage_seconds": seconds})


STEP_FUNCTIONS: dict[str, Callable[[Job], tuple[list[dict], dict]]] = {
    "cnn": step_cnn, "kmex": step_kmex, "maps": step_maps, "protopnet": step_protopnet}


# --- persistence ---------------------------------------------------------------------------

def provenance(job: Job, seconds: float, info: dict, commit: str) -> dict:
    train_set, test_set = job.split("train"), job.split("test")
    k = info.get("k_per_class", job.profile.k_per_class(job.dataset))
    return {"profile": job.profile.name, "dataset": job.dataset, "data": test_set.title, "n_train": len(train_set),
            "n_test": len(test_set), "seed": job.seed, "k_per_class": k, "commit": commit, "code": store.code_digest(), "device": str(job.device),
            "machine": machine(), "threads": torch.get_num_threads(),
            "wall_seconds": round(seconds, 3), "torch": torch.__version__, "epochs": job.profile.epochs_for(job.dataset),
            "epochs_override": job.profile.epochs_override,
            "weights": config.weights_note() if job.profile.pretrained else "random init",
            **{f"info_{a}": b for a, b in info.items()}}


# --- the engine ------------------------------------------------------------------------------

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
    out = Path(out) if out is not None else config.cache_root() / "reproduce"
    unknown = [s for s in steps if s not in STEP_FUNCTIONS]
    if unknown or runs < 1:
        raise ValueError(f"steps must be among {STEPS} (got {unknown}) and runs >= 1 (got {runs})")
    check_datasets(datasets)
    commit = git_commit()
    todo = [(d, seed_for(r), s) for d in datasets for r in range(runs) for s in steps]
    content = {d: data_fingerprints(d) for d in datasets}
    results, computed, failed, jobs = [], [], {}, {}
    bar = tqdm(todo, desc="reproduce", disable=not progress, unit="step")
    for dataset, seed, step in bar:
        bar.set_postfix_str(f"{dataset} seed {seed} {step}")
        if any(k[:2] == (dataset, seed) for k in failed):
            continue
        key = step_key(prof, dataset, seed, step, settings, content[dataset])
        path = step_path(out, prof.name, dataset, seed, step)
        stored = load_step(path, key)
        if stored is None:
            job = jobs.setdefault((dataset, seed), Job(dataset, seed, prof, settings, device, progress))
            start = time.perf_counter()
            try:
                metrics, info = STEP_FUNCTIONS[step](job)
            except Exception as err:
                if not keep_going:
                    raise
                failed[(dataset, seed, step)] = f"{type(err).__name__}: {err}"
                tqdm.write(f"FAILED {dataset} seed {seed} {step}: {type(err).__name__}: {err}")
                continue
            stored = {"key": key, "metrics": metrics,
                      "provenance": provenance(job, time.perf_counter() - start, info, commit)}
            store.atomic_write_text(path, json.dumps(stored, indent=1, sort_keys=True))
            computed.append((dataset, seed, step))
        results += _rows(stored, step)
        if (dataset, seed) in jobs and step == steps[-1]:
            del jobs[(dataset, seed)]      # free the models of a finished (dataset, seed)
    return Outcome(results, computed, failed, out)


def _rows(stored: dict, step: str) -> list[dict]:
    """One result row per metric of a stored step, with its provenance."""
    prov = {"code": stored["key"].get("code"), **stored["provenance"]}
    return [{**prov, "step": step, "run": prov["seed"], **m} for m in stored["metrics"]]


def read(datasets: Sequence[str], runs: int | Sequence[int], profile: str | config.Profile | None = None,
         out: str | Path | None = None,
         steps: Sequence[str] = STEPS, settings: Settings | None = None,
         any_code: bool = False) -> tuple[list[dict], list[tuple[str, int, str]]]:
    """The stored results of ``runs`` (a count, or run indices) in ``out``, computing nothing.

    Returns (results, missing): ``missing`` lists each (dataset, seed, step) that is absent or was
    made with other settings or data (its key differs). A step made by other code is missing too,
    unless ``any_code``: then it is read, and its rows carry the ``commit`` and ``code`` digest
    that made it (``code`` is ``None`` for steps stored before keys held one), so that a reader
    can say it is not this code's (:mod:`protolib.record_check`).
    """
    prof = config.get_profile(profile)
    settings = settings or Settings.for_profile(prof)
    out = Path(out) if out is not None else config.cache_root() / "reproduce"
    indices = range(runs) if isinstance(runs, int) else runs
    results, missing = [], []
    for dataset in datasets:
        content = data_fingerprints(dataset)
        for seed in map(seed_for, indices):
            for step in steps:
                stored = load_step(step_path(out, prof.name, dataset, seed, step),
                                   step_key(prof, dataset, seed, step, settings, content),
                                   ("code",) if any_code else ())
                if stored is None:
                    missing.append((dataset, seed, step))
                else:
                    results += _rows(stored, step)
    return results, missing


def write_outputs(outcome: Outcome) -> dict[str, Path]:
    """``results.csv``, ``table1.md`` and ``table2.md`` in ``outcome.out`` (atomic writes)."""
    paths = {"results": outcome.out / "results.csv", "table1": outcome.out / "table1.md",
             "table2": outcome.out / "table2.md"}
    store.atomic_write_text(paths["results"], results_csv(outcome.results))
    for t in (1, 2):
        title = ("Table 1: average cosine of prototypes with their class (class) and other classes (out)" if t == 1
                 else "Table 2: train and test accuracy (%)")
        text = f"**{title}**\n\n{markdown_table(outcome.results, t)}\n\n{caption(outcome.results, t)}\n"
        store.atomic_write_text(paths[f"table{t}"], text)
    return paths


# --- command line ----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Exit code: 0 everything ran, 1 some step failed, 2 a dataset is missing or the arguments are wrong."""
    ap = argparse.ArgumentParser(prog="python -m protolib.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=None, help="quick or paper (default: $PROTOLIB_PROFILE or quick)")
    ap.add_argument("--datasets", nargs="+", default=None,
                    help=f"datasets (default: those present among {', '.join(ALL_DATASETS)})")
    ap.add_argument("--runs", type=int, default=None, help="runs per dataset (default: the profile's)")
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--out", default=None, help="results folder (default: <cache>/reproduce)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        prof = config.get_profile(args.profile)
        datasets = args.datasets or [d for d in ALL_DATASETS if data.is_available(d)]
        runs = args.runs or prof.runs
        print(config.describe(prof), flush=True)
        print(f"datasets: {', '.join(datasets)}; runs: {runs} (seeds {', '.join(str(seed_for(r)) for r in range(runs))});"
              f" steps: {', '.join(args.steps)}", flush=True)
        start = time.perf_counter()
        outcome = run(datasets, runs, prof.name, args.out, args.steps, device=args.device, progress=not args.no_progress)
    except (DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_outputs(outcome)
    print(f"\n{len(outcome.computed)} step(s) computed now, "
          f"{len(datasets) * runs * len(args.steps) - len(outcome.computed) - len(outcome.failed)} read back, "
          f"{len(outcome.failed)} failed, in {time.perf_counter() - start:.0f} s")
    for t in (1, 2):
        print("\n" + paths[f"table{t}"].read_text())
    for k, why in outcome.failed.items():
        print(f"FAILED {k}: {why}", file=sys.stderr)
    print("written:", ", ".join(str(p) for p in paths.values()))
    return 0 if outcome.ok else 1


__all__ = ["STEPS", "TABLE1_ROWS", "TABLE2_ROWS", "OFFLINE", "Settings", "seed_for", "git_commit", "Job",
           "step_cnn", "step_kmex", "step_maps", "step_protopnet", "STEP_FUNCTIONS", "step_key", "data_fingerprints", "step_path",
           "load_step", "record_dir", "Outcome", "check_datasets", "run", "read", "machine", "Cell", "aggregate", "paired_gap", "caption", "markdown_table", "record",
           "results_csv", "write_outputs", "main"]

if __name__ == "__main__":
    sys.exit(main())
