"""The paper's numbers and settings as data: Tables 1 and 2 as printed, prototype counts, recipes.

Chapters and :mod:`protolib.reproduce` read the paper's values from here, so no paper number is
typed twice. ``TABLE1[row][dataset] = (class, out)`` and ``TABLE2[row][dataset] = (train, test)``
use the paper's row labels and its dataset keys (``"mnist"``, ``"stl10"``, ``"cub200"``); a cell
the paper leaves empty is ``None`` (only "ProtoPNet in Chen et al. (2019)", which has a test
value for CUB-200 alone). Table 2 values are averages over five runs; Table 1 does not say.

``COUNTERPART`` maps each of our datasets to the paper column it is compared with: the synthetic
birds stand in for CUB-200 (a different dataset: only the trend is comparable), the digits have
no column.
"""

from __future__ import annotations

DATASETS = ("mnist", "stl10", "cub200")
TITLES = {"mnist": "MNIST", "stl10": "STL10", "cub200": "CUB200"}

# Table 1: average cosine of a model's prototypes with the embeddings of their class and of the others.
TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "CNN": {"mnist": (0.48, -0.05), "stl10": (0.46, -0.04), "cub200": (0.51, 0.00)},
    "KMEx K/C=1": {"mnist": (0.88, 0.32), "stl10": (0.79, 0.42), "cub200": (0.93, 0.47)},
    "KMEx K/C=5": {"mnist": (0.83, 0.30), "stl10": (0.84, 0.34), "cub200": (0.87, 0.45)},
    "ProtoPNet": {"mnist": (1.00, 1.00), "stl10": (0.95, 0.92), "cub200": (0.98, 0.97)},
}
TABLE1_METRICS = ("class", "out")

# Table 2: average train and test accuracy (%) over five runs, ImageNet-pretrained ResNet34.
TABLE2: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "CNN": {"mnist": (100.0, 99.4), "stl10": (95.6, 86.1), "cub200": (100.0, 79.1)},
    "KMEx K/C=5": {"mnist": (100.0, 99.4), "stl10": (94.9, 85.6), "cub200": (100.0, 78.6)},
    "ProtoPNet": {"mnist": (100.0, 99.4), "stl10": (74.2, 72.7), "cub200": (99.4, 66.4)},
    "ProtoPNet in Chen et al. (2019)": {"cub200": (None, 79.2)},
    "Ours B4": {"mnist": (100.0, 99.4), "stl10": (94.0, 85.5), "cub200": (100.0, 75.2)},
    "Ours B234": {"mnist": (98.9, 98.5), "stl10": (83.5, 77.9), "cub200": (85.5, 52.8)},
}
TABLE2_METRICS = ("train", "test")

# KMEx rows of both tables use K/C = 5 on every dataset (the row label says so).
KMEX_TABLE_K = 5
# Prototypes per class everywhere else (B4 / B234 maps, ProtoPNet): "five ... for the first two and ten for CUB-200".
PROTOTYPES_PER_CLASS = {"mnist": 5, "stl10": 5, "cub200": 10}
RUNS = 5
BACKBONE = "ResNet34 pretrained on ImageNet, trained with the KMEx recipe"
# The KMEx recipe (Gautam et al. 2024, reference code): SGD lr 0.01, momentum 0.5, cosine to 1e-4, batch 128.
KMEX_RECIPE = {"optimizer": "SGD", "lr": 0.01, "momentum": 0.5, "eta_min": 1e-4, "batch_size": 128,
               "epochs": {"mnist": 10, "stl10": 30}}
# Settings the paper (with the KMEx reference code it builds on) uses per dataset, for the departures
# table (protolib.reproduce.departures). Image sizes: the reference code's constants (MNIST resized to 32,
# STL-10 at its native 96, CUB at 224). Splits: each dataset's official one. CUB epochs: not stated.
IMAGE_SIZE = {"mnist": 32, "stl10": 96, "cub200": 224}
SPLITS = {"mnist": "official 60000 train / 10000 test", "stl10": "official 5000 train / 8000 test",
          "cub200": "official 5994 train / 5794 test"}
DEVICE = "not stated (a GPU, by the model sizes)"
FIGURE1 = {"dataset": "cub200", "class": "Red_bellied_Woodpecker", "blocks": ("B4", "B234")}
FIGURE2 = {"dataset": "cub200", "classes": "the twenty sparrow classes"}

COUNTERPART = {"mnist": "mnist", "stl10": "stl10", "cub200": "cub200", "birds": "cub200"}


def counterpart(dataset: str) -> str | None:
    """The paper's column compared with our ``dataset`` (``None`` when the paper has none)."""
    return COUNTERPART.get(dataset)


def table1(row: str, dataset: str) -> tuple[float, float] | None:
    """(class, out) of Table 1 for our ``dataset`` (through :func:`counterpart`), or ``None``."""
    return TABLE1.get(row, {}).get(counterpart(dataset) or "")


def table2(row: str, dataset: str) -> tuple[float | None, float | None] | None:
    """(train, test) of Table 2 for our ``dataset`` (through :func:`counterpart`), or ``None``."""
    return TABLE2.get(row, {}).get(counterpart(dataset) or "")


def value(table: int, row: str, dataset: str, metric: str) -> float | None:
    """One cell: ``value(2, "Ours B4", "cub200", "test") == 75.2``; ``None`` where the paper has none."""
    if table not in (1, 2):
        raise ValueError(f"the paper has Tables 1 and 2, not {table}")
    metrics = TABLE1_METRICS if table == 1 else TABLE2_METRICS
    if metric not in metrics:
        raise ValueError(f"Table {table} metrics are {metrics}, got {metric!r}")
    pair = (table1 if table == 1 else table2)(row, dataset)
    return None if pair is None else pair[metrics.index(metric)]


def gaps(row: str, reference: str, metric: str = "test", table: int = 2) -> str:
    """The paper's ``row - reference`` on each of its datasets, as text: ``"MNIST +0.1, STL10 -0.3, ..."``."""
    return ", ".join(f"{TITLES[d]} {value(table, row, d, metric) - value(table, reference, d, metric):+.1f}"
                     for d in DATASETS)


__all__ = ["DATASETS", "TITLES", "TABLE1", "TABLE1_METRICS", "TABLE2", "TABLE2_METRICS", "KMEX_TABLE_K",
           "PROTOTYPES_PER_CLASS", "RUNS", "BACKBONE", "IMAGE_SIZE", "SPLITS", "DEVICE", "KMEX_RECIPE", "FIGURE1", "FIGURE2", "COUNTERPART",
           "counterpart", "table1", "table2", "value", "gaps"]
