"""The 224 px record: per seed, train (or load) the backbone, fit the maps, score Table 2's rows
and chapter 8's evaluation, and write ``<out>/<recipe>-seed<seed>.json`` atomically after each step
(and, for the seeds of :data:`protolib.reproduce.geometry.live.WEIGHTS_SEEDS`, the backbone's weights, so
that a reader can recompute a slice of the record without training).

A seed's file holds its provenance (recipe and profile, seed, code version, machine, device,
threads, torch, UTC time, seconds per step) and one entry per finished step (``table2``,
``evaluation``). A rerun resumes: a step already stored with the same settings by the same code
version is kept; one stored by another code version is reported and computed again, never
silently reused.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Sequence

import torch

from protolib.core import config, data, features, precision, store, train
from protolib.method.kmex import KMExClassifier
from protolib.reproduce import paper, table2_maps
from protolib.reproduce.geometry import birds_tiny  # noqa: F401  (registers the tiny testbed)
from protolib.reproduce.geometry.evaluation import evaluate_seed
from protolib.reproduce.geometry.live import WEIGHTS_SEEDS, save_weights, train_backbone
from protolib.reproduce.geometry.recipe import GeometryRecipe, get_recipe
from protolib.reproduce.records import git_commit, machine, percent

STEPS = ("table2", "evaluation")


def record_folder(recipe: str | GeometryRecipe) -> Path:
    """Where the repository keeps a recipe's record (package data): ``protolib/reproduce/results/geometry/<recipe>``."""
    return Path(__file__).resolve().parent.parent / "results" / "geometry" / get_recipe(recipe).name


def seed_path(out: Path, recipe: GeometryRecipe, seed: int) -> Path:
    return Path(out) / f"{recipe.name}-seed{seed}.json"


def provenance(recipe: GeometryRecipe, seed: int, code: str, device: torch.device) -> dict:
    """Who made a seed's numbers: recipe, profile, seed, code version (the digest of protolib's
    source, :func:`protolib.core.store.code_digest`, and the commit for people), machine, time, torch,
    and the training path (:mod:`protolib.core.precision`; records made before it existed trained in float32)."""
    return {"recipe": recipe.name, "settings": recipe.as_dict(), "profile": "quick", "seed": seed,
            "precision": precision.for_training(device, recipe.train.amp, recipe.image_size).name,
            "code": code, "commit": git_commit(), "machine": machine(), "device": str(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def table2(trained: train.TrainResult, recipe: GeometryRecipe, seed: int, device, progress: bool) -> tuple[dict, dict]:
    """Table 2's CNN, KMEx (K/C=5 on pooled embeddings) and ours B4/B234 accuracies, in percent as the
    record keeps them, and the maps."""
    train_set, test_set = data.load(recipe.dataset, "train"), data.load(recipe.dataset, "test")
    explainers, cached = table2_maps.fit_maps(trained, train_set, recipe.k_per_class, recipe.images_per_class,
                                            seed=seed, progress=progress)
    acc = table2_maps.map_accuracies(explainers, train_set, test_set, recipe.eval_train)
    emb = {s: features.embed(trained.model, ds, device=device, progress=progress)
           for s, ds in (("train", train_set), ("test", test_set))}
    clf = KMExClassifier(paper.KMEX_TABLE_K, random_state=seed).fit(emb["train"].z.double().numpy(),
                                                                     emb["train"].labels.numpy())
    fractions = {f"{m} {s}": acc[(m, s)] for m in ("CNN", "B4", "B234") for s in ("train", "test")}
    for s in ("train", "test"):
        pred = torch.as_tensor(clf.predict(emb[s].z.double().numpy()))
        fractions[f"KMEx {s}"] = (pred == emb[s].labels).double().mean().item()
    rows = {k: percent(v) for k, v in fractions.items()}   # the record's Table 2 section is in percent
    info = {"data": test_set.title, "train_data": train_set.title, "maps_from_cache": cached,
            "backbone_from_cache": trained.from_cache,
            "train_seconds": trained.meta.get("train_seconds"),
            "test_accuracy_at_training": trained.meta.get("test_accuracy")}
    return {"accuracy": rows, "info": info}, explainers


def _load(path: Path, code: str, settings: dict, say) -> dict:
    """The stored steps of a seed that may be reused (same settings and code version)."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    prov = stored.get("provenance", {})
    if prov.get("settings") != json.loads(json.dumps(settings)):  # tuples come back from JSON as lists
        say(f"{path.name}: recorded with other settings; computing again")
        return {}
    if prov.get("code") != code:
        say(f"{path.name}: recorded by code version {prov.get('code')} (commit {prov.get('commit')}), "
            f"this is {code}; computing again")
        return {}
    return stored.get("steps", {})


def run_seed(recipe: str | GeometryRecipe, seed: int, out: str | Path, device=None, progress: bool = True,
             say=print) -> dict:
    """One seed of the record (resumable): the stored dict ``{"provenance", "steps", "seconds"}``."""
    recipe = get_recipe(recipe)
    device = config.get_device(device)
    code = store.code_digest()
    path = seed_path(Path(out), recipe, seed)
    steps = _load(path, code, recipe.as_dict(), say)
    record = {"provenance": provenance(recipe, seed, code, device), "steps": steps, "seconds": {}}
    if all(s in steps for s in STEPS):
        say(f"{path.name}: every step recorded by this code version; kept")
        return json.loads(path.read_text())
    start = time.perf_counter()
    trained = train_backbone(recipe, seed, device, progress)
    if seed in WEIGHTS_SEEDS:
        save_weights(trained, recipe, seed, out)
    result, explainers = table2(trained, recipe, seed, device, progress)
    steps["table2"], record["seconds"]["table2"] = result, round(time.perf_counter() - start, 2)
    store.atomic_write_text(path, json.dumps(record, indent=1))
    if "evaluation" not in steps:
        start = time.perf_counter()
        steps["evaluation"] = evaluate_seed(trained.model, explainers, data.load(recipe.dataset, "test"),
                                            recipe, seed, progress)
        record["seconds"]["evaluation"] = round(time.perf_counter() - start, 2)
        store.atomic_write_text(path, json.dumps(record, indent=1))
    say(f"{path.name}: written ({', '.join(f'{k} {v:.0f} s' for k, v in record['seconds'].items())})")
    return record


def run(recipe: str | GeometryRecipe, seeds: Sequence[int], out: str | Path, device=None,
        progress: bool = True, say=print) -> list[dict]:
    """:func:`run_seed` for every seed, in order; returns the stored records."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return [run_seed(recipe, s, out, device, progress, say) for s in seeds]


__all__ = ["STEPS", "record_folder", "seed_path", "provenance", "table2", "run_seed", "run"]
