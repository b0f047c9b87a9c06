"""The paper profile end to end on tiny files in the real formats, one epoch per training step.

The official MNIST IDX files, STL-10 binaries and a CUB_200_2011 folder with all 200 classes and
its parts files are written to a temporary data root, with a local ResNet34 weights file (random
weights in torchvision's format, so declared unofficial). ``PROTOLIB_EPOCHS=1`` cuts every
training to one epoch without editing the profile. Then each step of the protocol runs through
the library, as the chapters run it: the CNN, KMEx (5/5/10 prototypes per class), B4 / B234
explanation maps, importance maps, ProtoPNet's four stages, the cells of Tables 1-2 and
Figures 1-2. The numbers mean nothing (random data, one epoch); the test proves that the
paper-only code paths run, that every cell is produced and finite, and that the banner says
the weights are not official.
"""

from __future__ import annotations

import math
import time

import matplotlib
import numpy as np
import pytest
import torch

from protolib import cam, config, data, features, maps, maps_cache, metrics, patches, protopnet, sem, train, viz, viz_maps
from protolib.kmex import KMExClassifier

from conftest import make_cub, make_mnist, make_stl10, write_resnet_weights

matplotlib.use("Agg")
pytestmark = pytest.mark.paper_smoke
DATASETS = ("mnist", "stl10", "cub200")


@pytest.fixture
def paper_env(tmp_path, monkeypatch):
    """Tiny real-format data, an unofficial ResNet34 weights file, the paper profile, one epoch."""
    root = tmp_path / "data"
    make_mnist(root, n_test=20, n_train=60)
    make_stl10(root, n_train=50, n_test=20)
    make_cub(root, train_per_class=1, test_classes=20)
    weights = write_resnet_weights(tmp_path / "weights" / "resnet34-random.pth")
    for name, value in {"PROTOLIB_PROFILE": "paper", "PROTOLIB_EPOCHS": "1", "PROTOLIB_WEIGHTS": str(weights),
                        "PROTOLIB_WEIGHTS_UNOFFICIAL": "1"}.items():
        monkeypatch.setenv(name, value)
    return root


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _protocol(name: str, k: int, timings: dict) -> dict:
    """Every step the chapters run on one dataset; returns its Table 1 and Table 2 cells."""
    start = time.perf_counter()
    cnn = train.load_or_train(name, progress=False)
    assert cnn.meta["arch"] == "resnet34" and cnn.meta["recipe"]["epochs"] == 1
    assert cnn.meta["weights"]["official"] is False
    tr = features.embed_cached(cnn, name, "train", progress=False)
    te = features.embed_cached(cnn, name, "test", progress=False)
    C = data.get_spec(name).num_classes
    cells = {"CNN acc": te.accuracy()}
    cells["CNN class/out"] = metrics.alignment_cosines(sem.classifier_prototypes(cnn.model), np.arange(C), tr.z, tr.labels)

    with pytest.warns(Warning) if name == "cub200" else _nothing():  # one image per CUB class < 10 prototypes
        kmex = KMExClassifier(n_prototypes_per_class=k, n_init=1, random_state=0).fit(tr.z.numpy(), tr.labels.numpy())
    cells["KMEx acc"] = metrics.accuracy(te.labels.numpy(), kmex.predict(te.z.numpy()))
    cells["KMEx class/out"] = metrics.alignment_cosines(kmex.prototypes_, kmex.prototype_labels_, tr.z, tr.labels)
    timings["CNN + KMEx"] = time.perf_counter() - start

    start = time.perf_counter()
    train_set, test_set = data.load(name, "train"), data.load(name, "test")
    explainers = {b: maps.ExplanationMaps(cnn.model, b, k_per_class=k, progress=False) for b in ("B4", "B234")}
    explainers, _ = maps_cache.load_or_fit(explainers, train_set, cnn.path.name)
    x = torch.stack([test_set[i][0] for i in range(4)])
    imp = cam.importance_maps(explainers, x)
    assert set(imp.maps) == {"B4", "B234"} and all(torch.isfinite(m).all() for m in imp.maps.values())
    expl, logits = maps.explain_dataset_all(explainers, test_set)
    for b, e in expl.items():
        cells[f"{b} map acc"] = metrics.accuracy(te.labels.numpy(), e.prediction.numpy())
    if name == "cub200":  # Figure 1: B4 and B234 side by side on one test image
        crops = {b: patches.representative_patches(e, train_set) for b, e in explainers.items()}
        one = {b: maps.ExplanationMaps.explain(e, x[:1]) for b, e in explainers.items()}
        fig = viz_maps.figure1(test_set.denormalize(x[0]), one, {b: m[0] for b, m in imp.maps.items()}, crops)
        assert len(fig.subfigs) == 2
    timings["maps"] = time.perf_counter() - start

    start = time.perf_counter()
    run = protopnet.load_or_train(name, progress=False)
    kinds = [s.kind for s in run.recipe.schedule()]
    assert kinds == ["warm_up", "joint", "push", "last_layer"], kinds
    assert run.key["init"] == "imagenet" and run.key["weights"]["official"] is False
    cells["ProtoPNet acc"] = protopnet.evaluate(run.model, test_set).accuracy
    if name != "cub200":  # on CUB it needs a pass over all 200 classes' training images: left to the chapters
        cells["ProtoPNet class/out"] = protopnet.alignment_cosines(run.model, train_set)
    assert run.push.act_box.shape == (C * k, 4)
    timings["ProtoPNet"] = time.perf_counter() - start
    cells["_z"] = (tr, kmex, cnn)
    return cells


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", DATASETS)
def test_paper_profile_protocol_on_real_format_files(paper_env, name, capsys):
    banner = config.describe()
    assert "NOT the official ImageNet weights" in banner and "PROTOLIB_EPOCHS" in banner
    prof = config.get_profile()
    assert prof.name == "paper" and prof.epochs_for(name) == 1 and config.PROFILES["paper"].epochs["stl10"] == 30
    assert [prof.k_per_class(d) for d in DATASETS] == [5, 5, 10]
    timings = {}
    start = time.perf_counter()
    cells = _protocol(name, prof.k_per_class(name), timings)
    for cell in ("CNN acc", "KMEx acc", "ProtoPNet acc", "B4 map acc", "B234 map acc"):    # Table 2 (and maps)
        assert 0.0 <= cells[cell] <= 100.0, cell
    for cell in ("CNN class/out", "KMEx class/out"):                                      # Table 1
        a = cells[cell]
        assert _finite(a.class_mean, a.out_mean) and max(abs(a.class_mean), abs(a.out_mean)) <= 1 + 1e-9, cell
    if "ProtoPNet class/out" in cells:
        assert _finite(cells["ProtoPNet class/out"].class_, cells["ProtoPNet class/out"].out)
    if name == "mnist":                                                                   # Figure 2
        tr, kmex, cnn = cells["_z"]
        t0 = time.perf_counter()
        emb = viz.prototype_umap(tr.z, tr.labels, tr.z, tr.labels, sem.classifier_prototypes(cnn.model).cpu(),
                                 kmex.prototypes_, kmex.prototype_labels_, n_neighbors=5)
        assert np.isfinite(emb.cnn_raw_xy).all() and np.isfinite(emb.kmex_xy).all() and len(emb.kmex_xy) == 50
        timings["figure 2 (UMAP)"] = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\npaper-profile smoke run, {name} (1 epoch, tiny real-format files), {time.perf_counter() - start:.0f} s: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in cells.items() if isinstance(v, float))
              + "".join(f"; {k} {v.class_mean:.3f}/{v.out_mean:.3f}" for k, v in cells.items()
                        if isinstance(v, metrics.Alignment)))
