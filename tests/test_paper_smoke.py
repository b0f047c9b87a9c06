"""The paper profile end to end on tiny files in the real formats, one epoch per training step.

The official MNIST IDX files, STL-10 binaries and a CUB_200_2011 folder with its parts files are
written to a temporary data root, with a local ResNet34 weights file (random weights in
torchvision's format, so declared unofficial). The CUB folder holds 20 classes (the sparrows and
the woodpecker of the figures among them) and the test registers CUB with 20 classes for its
duration: every step runs the same code at 224 px as with 200, a tenth of the forward passes
(with 200 classes the CUB steps alone took 158 of the engine's 169 s). ``PROTOLIB_EPOCHS=1`` cuts
every training to one epoch without editing the profile. Then the reproduction engine runs the paper's
protocol on the three datasets (the CNN, KMEx with K/C = 1 and 5, B4 / B234 explanation maps
with 5/5/10 prototypes per class, ProtoPNet's four stages), writes Tables 1 and 2, and the
library draws Figures 2 and 1 on the CUB sparrows and woodpecker. The numbers mean nothing
(random data, one epoch); the test proves that the paper-only code paths run, that every cell
of both tables is produced and finite, and that banners and tables say the weights are not
official.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import matplotlib
import numpy as np
import pytest
from conftest import make_cub, make_mnist, make_stl10, write_resnet_weights

from protolib import reproduce
from protolib.core import config, data
from protolib.reproduce import figures

matplotlib.use("Agg")
pytestmark = pytest.mark.paper_smoke
DATASETS = ("mnist", "stl10", "cub200")
# Real CUB names on some classes: the figures look for the sparrows and the woodpecker.
CUB_CLASSES = 20   # every class in both splits (the tables need each class's test images)
CUB_NAMES = {2: "Field_Sparrow", 3: "Fox_Sparrow", 4: "House_Sparrow", 5: "Song_Sparrow", 6: "Vesper_Sparrow",
             7: "Red_bellied_Woodpecker"}


@pytest.fixture
def paper_env(tmp_path, monkeypatch):
    """Tiny real-format data, an unofficial ResNet34 weights file, the paper profile, one epoch."""
    root = tmp_path / "data"
    make_mnist(root, n_test=20, n_train=60)
    make_stl10(root, n_train=50, n_test=20)
    make_cub(root, train_per_class=1, classes=CUB_CLASSES, test_classes=CUB_CLASSES, names=CUB_NAMES)
    monkeypatch.setitem(data.REGISTRY, "cub200", replace(data.get_spec("cub200"), num_classes=CUB_CLASSES))
    weights = write_resnet_weights(tmp_path / "weights" / "resnet34-random.pth")
    for name, value in {"PROTOLIB_PROFILE": "paper", "PROTOLIB_EPOCHS": "1", "PROTOLIB_WEIGHTS": str(weights),
                        "PROTOLIB_WEIGHTS_UNOFFICIAL": "1"}.items():
        monkeypatch.setenv(name, value)
    return root


def test_paper_profile_protocol_on_real_format_files(paper_env, tmp_path, capsys):
    banner = config.describe()
    assert "NOT the official ImageNet weights" in banner and "PROTOLIB_EPOCHS" in banner
    prof = config.get_profile()
    assert prof.name == "paper" and prof.epochs_for("stl10") == 1 and config.PROFILES["paper"].epochs["stl10"] == 30
    assert [prof.k_per_class(d) for d in DATASETS] == [5, 5, 10]

    start = time.perf_counter()
    outcome = reproduce.run(DATASETS, runs=1, out=tmp_path / "results", progress=False, keep_going=False)
    engine_seconds = time.perf_counter() - start
    assert outcome.ok and len(outcome.computed) == len(DATASETS) * len(reproduce.STEPS)

    # Every cell of Tables 1 and 2, on every dataset, finite and in range.
    cells = reproduce.aggregate(outcome.results)
    for d in DATASETS:
        for row in reproduce.TABLE1_ROWS:
            for m in ("class", "out"):
                v = cells[(1, row, d, m)].mean
                assert math.isfinite(v) and abs(v) <= 1 + 1e-9, (d, row, m, v)
        for row in reproduce.TABLE2_ROWS:
            for m in ("train", "test"):
                assert 0.0 <= cells[(2, row, d, m)].mean <= 100.0, (d, row, m)
    steps = {(r["dataset"], r["step"]): r for r in outcome.results}
    assert steps[("cub200", "maps")]["k_per_class"] == 10 and steps[("stl10", "maps")]["k_per_class"] == 5
    assert steps[("cub200", "protopnet")]["n_train"] == CUB_CLASSES == steps[("cub200", "protopnet")]["n_test"]
    assert steps[("cub200", "protopnet")]["k_per_class"] == 10   # the paper's 10 prototypes per class

    # The tables and the results file: provenance, and the weights said not to be official.
    paths = reproduce.write_outputs(outcome.results, outcome.out)
    for t in (1, 2):
        text = paths[f"table{t}"].read_text()
        assert "NOT the official ImageNet weights" in text and "PROTOLIB_EPOCHS=1" in text, text
        assert "–" not in text.split("\n\n")[1], text           # no empty cell
    assert paths["results"].read_text().count("\n") == 1 + len(outcome.results)

    # Figures 2 and 1 on the paper's data: CUB's sparrows (House Sparrow left out) and woodpecker.
    start = time.perf_counter()
    present = list(DATASETS)
    choice2 = figures.figure2_data(present)
    assert choice2.dataset == "cub200" and choice2.classes == (2, 3, 5, 6)
    fig2, emb = figures.figure2(choice2)
    assert np.isfinite(emb.kmex_xy).all() and len(emb.kmex_xy) == 4    # one training image, one prototype each
    choice1 = figures.figure1_data(present)
    assert choice1.dataset == "cub200" and choice1.classes == (7,)
    fig1, index, _ = figures.figure1(choice1)
    assert index == 7 and len(fig1.subfigs) == 2   # the woodpecker's only test image; B4 and B234 panels
    figure_seconds = time.perf_counter() - start

    with capsys.disabled():
        per_step = {}
        for r in outcome.results:
            per_step[(r["dataset"], r["step"])] = r["wall_seconds"]
        print(f"\npaper-profile smoke run (1 epoch, tiny real-format files): engine {engine_seconds:.0f} s, "
              f"figures {figure_seconds:.0f} s; " + ", ".join(f"{d} {s} {v:.0f} s" for (d, s), v in per_step.items()))
        print(open(paths["table2"]).read())
