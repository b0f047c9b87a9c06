"""Every departure from the paper's settings, generated from the profile, the data and the run records.

One row per setting (backbone and init, image size, epochs, prototypes per class, ProtoPNet
schedule, data and split, runs and seeds, device) and one column per dataset of the results;
each cell says what our runs used and, beside it, what the paper used for the column it is
compared with (:func:`protolib.reproduce.paper.counterpart`). Nothing is typed by hand: our side is read
from the result rows' provenance and the dataset specs, the paper's from :mod:`protolib.reproduce.paper`,
so a change of profile or record changes the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from protolib.core import config, data, tables
from protolib.reproduce import paper

SETTINGS = ("backbone and init", "image size", "backbone epochs", "prototypes per class", "ProtoPNet schedule",
            "maps' k-means data", "data and split", "runs and seeds", "device")


@dataclass(frozen=True)
class Departure:
    """One setting of one dataset: ours, the paper's (``None``: the paper has no such column)."""

    setting: str
    dataset: str
    ours: str
    paper: str | None

    @property
    def differs(self) -> bool:
        return self.paper is None or self.ours != self.paper

    def cell(self) -> str:
        if self.paper is None:
            return f"{self.ours} · paper: no such column"
        if not self.differs:
            return f"{self.ours} (as the paper)"
        return f"**{self.ours}** · paper: {self.paper}"


def _first(rows: Sequence[dict], dataset: str, step: str) -> dict:
    for r in rows:
        if r["dataset"] == dataset and r.get("step") == step:
            return r
    raise ValueError(f"no {step!r} result for {dataset!r} in the rows given")


def _ours(rows: Sequence[dict], dataset: str) -> dict[str, str]:
    cnn, ppn, maps = (_first(rows, dataset, s) for s in ("cnn", "protopnet", "maps"))
    prof = config.get_profile(cnn["profile"])
    seeds = sorted({int(r["seed"]) for r in rows if r["dataset"] == dataset})
    recipe = ppn.get("info_recipe") or {}
    init = "ImageNet" if cnn.get("info_pretrained") else "random init"
    start = {"cnn": "the run's trained CNN", "imagenet": "ImageNet"}.get(ppn.get("info_init"), ppn.get("info_init"))
    devices = sorted({f"{r['device']} ({r['machine']}, torch {r['torch']}, {r['threads']} threads)"
                      for r in rows if r["dataset"] == dataset})
    return {
        "backbone and init": f"{cnn.get('info_arch', prof.arch)}, {init}",
        "image size": f"{data.get_spec(dataset).image_size} px",
        "backbone epochs": str(cnn["epochs"]),
        "prototypes per class": str(cnn["k_per_class"]),
        "ProtoPNet schedule": (f"from {start}: {recipe.get('warm_epochs')} warm-up + "
                               f"{recipe.get('epochs', 0) - recipe.get('warm_epochs', 0)} joint epochs, "
                               f"{recipe.get('last_layer_epochs')} last-layer"),
        "maps' k-means data": (f"{maps.get('info_images_per_class') or 'all'} training images per class; train "
                               f"accuracy on {maps.get('info_eval_train') or 'all'} training images"),
        "data and split": f"{cnn['data']}: {cnn['n_train']} train / {cnn['n_test']} test",
        "runs and seeds": f"{len(seeds)} runs, seeds {', '.join(map(str, seeds))}",
        "device": "; ".join(devices),
    }


def _paper(dataset: str) -> dict[str, str] | None:
    col = paper.counterpart(dataset)
    if col is None or col not in paper.DATASETS:
        return None
    epochs = paper.KMEX_RECIPE["epochs"].get(col)
    return {
        "backbone and init": "resnet34, ImageNet",
        "image size": f"{paper.IMAGE_SIZE[col]} px",
        "backbone epochs": str(epochs) if epochs else "not stated",
        "prototypes per class": str(paper.PROTOTYPES_PER_CLASS[col]),
        "ProtoPNet schedule": "from ImageNet: 30 epochs (pushes after 10, 20, 30)",
        "maps' k-means data": "all training images per class; train accuracy on all training images",
        "data and split": f"{paper.TITLES[col]}: {paper.SPLITS[col]}",
        "runs and seeds": f"{paper.RUNS} runs, seeds not stated",
        "device": paper.DEVICE,
    }


def departures(results: Sequence[dict]) -> list[Departure]:
    """Every (setting, dataset) of ``results`` (result rows with provenance) beside the paper's."""
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    if not datasets:
        raise ValueError("no result rows: nothing to compare with the paper")
    out = []
    for d in datasets:
        ours, theirs = _ours(results, d), _paper(d)
        out += [Departure(s, d, ours[s], None if theirs is None else theirs[s]) for s in SETTINGS]
    return out


def markdown(results: Sequence[dict]) -> str:
    """The departures as a Markdown table: a row per setting, a column per dataset (bold: ours differs)."""
    deps = departures(results)
    datasets = list(dict.fromkeys(x.dataset for x in deps))
    head = [f"{d} (paper: {paper.TITLES.get(paper.counterpart(d) or '', 'none')})" for d in datasets]
    cell = {(x.setting, x.dataset): x.cell() for x in deps}
    return tables.markdown(["setting", *head], [[s, *(cell[(s, d)] for d in datasets)] for s in SETTINGS])


__all__ = ["SETTINGS", "Departure", "departures", "markdown"]
