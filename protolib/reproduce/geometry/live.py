"""The chapter's live slice of a recorded geometry run, checked against the record.

The record keeps the weights of seed 0's backbone beside its numbers (``<recipe>-seed0.pt``), so
that a reader recomputes part of it in about a minute instead of training: Table 2's test
accuracies on the whole test split, and the cheapest per-image metrics of chapter 8
(localisation on ``n_local`` images, deletion and insertion areas on ``n_curve``) on the first
images of the seed's own evaluation subset, for every method but DFF (its factorisation spans the
whole batch, so its maps change with the batch's other images). :func:`check` sets each live cell against the same
images' values in the record with :func:`protolib.reproduce.check.check`: identical when the setup
(torch, machine, threads, device, code digest) is the record's, else within the 99 % t
prediction interval derived from the spread of that cell over the recorded seeds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from protolib.core import config, data, features, store, train
from protolib.core.models import build_model
from protolib.evaluation import evaluate, methods
from protolib.method.explain.maps_multi import explain_dataset_all
from protolib.method.kmex import KMExClassifier
from protolib.reproduce import paper, table2_maps
from protolib.reproduce.check import RecordCheck
from protolib.reproduce.check import check as check_rows
from protolib.reproduce.geometry.evaluation import deciding_parts, eval_batch
from protolib.reproduce.geometry.recipe import GeometryRecipe, get_recipe
from protolib.reproduce.records import machine, percent

WEIGHTS_SEEDS = (0,)        # the seeds whose backbone weights the record keeps
TABLE2_ROWS = ("CNN", "KMEx", "B4", "B234")
BATCH_DEPENDENT = ("DFF",)  # DFF factorises the whole batch: its maps depend on which images share it


def weights_path(folder: str | Path, recipe: GeometryRecipe, seed: int) -> Path:
    return Path(folder) / f"{recipe.name}-seed{seed}.pt"


def save_weights(trained: train.TrainResult, recipe: GeometryRecipe, seed: int, folder: str | Path) -> Path:
    """Write the backbone's weights and training metadata into the record's ``folder`` (atomic)."""
    path = weights_path(folder, recipe, seed)
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    store.atomic_save({"state_dict": state, "meta": trained.meta}, path)
    return path


def train_backbone(recipe: GeometryRecipe, seed: int, device=None, progress: bool = True) -> train.TrainResult:
    """The recipe's backbone for ``seed``: from the cache, else trained (minutes at 224 px)."""
    return train.load_or_train(recipe.dataset, arch=recipe.arch, profile="quick", seed=seed, recipe=recipe.train,
                               pretrained=False, device=device, progress=progress)


def load_backbone(recipe: str | GeometryRecipe, seed: int = 0, folder: str | Path | None = None, device=None,
                  progress: bool = True) -> train.TrainResult:
    """Seed ``seed``'s backbone: the weights kept in the record's ``folder`` when there, else
    :func:`train_backbone`. ``from_cache`` is True when it was not trained now."""
    recipe = get_recipe(recipe)
    path = None if folder is None else weights_path(folder, recipe, seed)
    if path is None or not path.is_file():
        return train_backbone(recipe, seed, device, progress)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(recipe.arch, data.get_spec(recipe.dataset).num_classes, pretrained=False)
    model.load_state_dict(ckpt["state_dict"])
    model.to(config.get_device(device)).eval()
    return train.TrainResult(model=model, path=path, from_cache=True, meta=dict(ckpt["meta"]))


def table2_test(trained: train.TrainResult, explainers: dict, recipe: GeometryRecipe, seed: int) -> dict[str, float]:
    """Test accuracy (a fraction in [0, 1]) of the CNN, KMEx (K/C = 5 on pooled embeddings) and ours
    B4 / B234."""
    train_set, test_set = data.load(recipe.dataset, "train"), data.load(recipe.dataset, "test")
    found, logits = explain_dataset_all({n: explainers[n] for n in ("B4", "B234")}, test_set)
    y = torch.as_tensor(test_set.targets)
    tr = features.embed(trained.model, train_set, progress=False)
    te = features.embed(trained.model, test_set, progress=False)
    clf = KMExClassifier(paper.KMEX_TABLE_K, random_state=seed).fit(tr.z.double().numpy(), tr.labels.numpy())
    kmex = (torch.as_tensor(clf.predict(te.z.double().numpy())) == te.labels).double().mean().item()
    # the same float32 means as protolib.reproduce.table2_maps.map_accuracies, which made the record
    acc = {n: (found[n].prediction == y).float().mean().item() for n in ("B4", "B234")}
    return {"CNN": (logits.argmax(1) == y).float().mean().item(), "KMEx": kmex, **acc}


def per_image(trained: train.TrainResult, explainers: dict, recipe: GeometryRecipe, seed: int, n_local: int,
              n_curve: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{"localisation" | "areas": {method: {metric: per-image values}}} on the first images of the
    seed's evaluation subset, as :func:`protolib.reproduce.geometry.evaluation.evaluate_seed` computes them."""
    test_set = data.load(recipe.dataset, "test")
    idx, x, masks = eval_batch(test_set, recipe.n_local, seed, recipe)
    idx, x, masks = idx[:n_local], x[:n_local], masks[:n_local]
    device = next(iter(explainers.values())).device_
    x = x.to(device)
    with torch.no_grad():
        targets = trained.model(x).argmax(1)
    labels = torch.as_tensor(test_set.targets)[idx]
    maps = methods.compare(explainers, x, targets, n_components=recipe.n_concepts, seed=seed)
    deciding = deciding_parts(test_set, labels)
    local = evaluate.localisation(maps, masks, len(test_set.part_names), deciding)
    names = [k for k in maps if k != "random per pixel"]
    n = min(n_curve, len(x))
    areas = evaluate.areas(evaluate.curves(trained.model, {k: maps[k][:n] for k in names}, x[:n], targets[:n],
                                           recipe.steps, "blur", progress=False))
    plain = {"localisation": local, "areas": areas}
    return {s: {m: {k: v.double().cpu().flatten().tolist() for k, v in ms.items() if k != "deciding-part share"}
                for m, ms in sec.items() if not m.startswith(BATCH_DEPENDENT)} for s, sec in plain.items()}


def _mean(values: list) -> float:
    kept = [v for v in values if v is not None and v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def rows_of(values: dict, seed: int, dataset: str, setup: dict, n: dict[str, int] | None = None) -> list[dict]:
    """Rows in :mod:`protolib.reproduce.check`'s form (table = section, row = method) from Table 2's
    accuracies (in percent, the record's unit) and per-image sections; ``n`` truncates each section
    to its first images."""
    rows = [{"table": 2, "row": m, "dataset": dataset, "metric": "test", "value": float(v), "seed": seed,
             "n_test": values.get("n_test"), **setup} for m, v in values["table2"].items()]
    for section in ("localisation", "areas"):
        for method, metrics in values[section].items():
            for metric, vals in metrics.items():
                vals = vals[: n[section]] if n else vals
                rows.append({"table": section, "row": method, "dataset": dataset, "metric": metric,
                             "value": _mean(vals), "seed": seed, **setup})
    return rows


def live_setup(device) -> dict:
    """This process's setup, in the record's provenance fields."""
    return {"torch": torch.__version__, "machine": machine(), "threads": torch.get_num_threads(),
            "device": str(config.get_device(device)), "code": store.code_digest()}


def recorded_rows(records: list[dict], n: dict[str, int]) -> list[dict]:
    """Every recorded seed's cells in :func:`rows_of`'s form, per-image sections cut to ``n``."""
    out, n_test = [], {}
    for r in records:
        prov, ev = r["provenance"], r["steps"]["evaluation"]
        dataset = prov["settings"]["dataset"]
        if dataset not in n_test:  # one load of the test split per dataset, not per seed
            n_test[dataset] = len(data.load(dataset, "test"))
        acc = r["steps"]["table2"]["accuracy"]
        values = {"table2": {m: acc[f"{m} test"] for m in TABLE2_ROWS},
                  "n_test": n_test[dataset],
                  "localisation": {m: {k: v for k, v in ms.items() if k != "deciding-part share"}
                                   for m, ms in ev["localisation"].items()},
                  "areas": ev["areas"]}
        setup = {f: prov.get(f) for f in ("torch", "machine", "threads", "device", "code")}
        out += rows_of(values, int(prov["seed"]), prov["settings"]["dataset"], setup, n)
    return out


def live_slice(recipe: str | GeometryRecipe, folder: str | Path, seed: int = 0, n_local: int = 16, n_curve: int = 8,
               device=None, progress: bool = True) -> tuple[list[dict], train.TrainResult, dict]:
    """Recompute seed ``seed``'s slice: (rows, the backbone, the fitted maps {B4, B34, B234})."""
    recipe = get_recipe(recipe)
    trained = load_backbone(recipe, seed, folder, device, progress)
    explainers, _ = table2_maps.fit_maps(trained, data.load(recipe.dataset, "train"), recipe.k_per_class,
                                       recipe.images_per_class, seed=seed, progress=progress)
    table2 = table2_test(trained, explainers, recipe, seed)
    values = {"table2": {m: percent(v) for m, v in table2.items()},   # the record's Table 2 is in percent
              "n_test": len(data.load(recipe.dataset, "test")),
              **per_image(trained, explainers, recipe, seed, n_local, n_curve)}
    return rows_of(values, seed, recipe.dataset, live_setup(device)), trained, explainers


def check(live: list[dict], records: list[dict], n_local: int = 16, n_curve: int = 8) -> RecordCheck:
    """The live slice against every recorded seed (same images, same cells)."""
    return check_rows(live, recorded_rows(records, {"localisation": n_local, "areas": n_curve}))


__all__ = ["WEIGHTS_SEEDS", "TABLE2_ROWS", "weights_path", "save_weights", "train_backbone", "load_backbone",
           "table2_test", "per_image", "rows_of", "live_setup", "recorded_rows", "live_slice", "check"]
