"""One paper-recipe seed on one GPU: images/s per step, peak GPU memory and GPU utilisation.

Runs, for one dataset and seed 0 in the paper profile (ResNet34 on ImageNet weights at the
paper's image sizes and epochs): the CNN's training, the embeddings, KMEx, the B4 / B234
explanation maps (fit and explain), and ProtoPNet's whole schedule (warm-up, joint, push, last
layer), each in a fresh cache folder so that nothing is read from an earlier run. For each step
it prints the images processed per second, the peak GPU memory (``torch.cuda.max_memory_allocated``)
and the mean GPU utilisation sampled every half second (``torch.cuda.utilization``, through pynvml).

On a GPU machine with the data and weights in place (``PROTOLIB_DATA``, ``PROTOLIB_WEIGHTS``):

    PYTHONPATH=. python benchmarks/gpu_check.py --dataset cub200

``--tiny`` checks the script itself anywhere (CPU included): tiny files in the real formats,
random ResNet34 weights declared unofficial, one epoch per stage (``PROTOLIB_EPOCHS=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


class Utilisation:
    """Mean GPU utilisation (%) sampled in a background thread while the block runs (None without a GPU/pynvml)."""

    def __init__(self, device: torch.device, every: float = 0.5):
        self.device, self.every, self.samples = device, every, []
        self._stop = threading.Event()

    def _loop(self):
        while not self._stop.wait(self.every):
            try:
                self.samples.append(torch.cuda.utilization(self.device))
            except Exception:  # no pynvml / no NVML: report nothing rather than fail
                return

    def __enter__(self):
        if self.device.type == "cuda":
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        return False

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def timed(name: str, images: int, device: torch.device, fn, report: list):
    """Run ``fn``; record images/s, seconds, peak GPU memory and utilisation under ``name``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with Utilisation(device) as util:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    report.append((name, images, seconds, peak, util.mean))
    mem = f"{peak:6.2f} GiB" if peak is not None else "     n/a"
    use = f"{util.mean:5.1f} %" if util.mean is not None else "   n/a"
    print(f"  {name:28s} {images:8d} images {seconds:8.1f} s {images / seconds:9.1f} images/s  peak {mem}  util {use}",
          flush=True)
    return out


def tiny_setup(folder: Path) -> None:
    """Tiny real-format files, random ResNet34 weights declared unofficial, one epoch per stage."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_cub, make_mnist, make_stl10, write_resnet_weights

    make_mnist(folder / "data", n_test=20, n_train=60)
    make_stl10(folder / "data", n_train=50, n_test=20)
    make_cub(folder / "data", train_per_class=1, test_classes=20)
    weights = write_resnet_weights(folder / "resnet34-random.pth")
    os.environ.update({"PROTOLIB_DATA": str(folder / "data"), "PROTOLIB_WEIGHTS": str(weights),
                       "PROTOLIB_WEIGHTS_UNOFFICIAL": "1", "PROTOLIB_EPOCHS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cub200", help="mnist, stl10 or cub200")
    parser.add_argument("--tiny", action="store_true", help="tiny real-format files, one epoch: checks the script")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="protolib-gpu-check-"))
    if args.tiny:
        tiny_setup(work)
    os.environ["PROTOLIB_PROFILE"] = "paper"
    os.environ["PROTOLIB_CACHE"] = str(work / "cache")  # fresh: every step computes, nothing is read back

    from protolib.baselines import protopnet
    from protolib.core import config, data, features, train
    from protolib.method.explain import maps, maps_multi
    from protolib.method.kmex import KMExClassifier

    name = args.dataset
    prof, device = config.get_profile(), config.get_device()
    print(config.describe())
    print(f"loaders: {config.loader_options(device)}; mixed precision: {config.amp_dtype(device)}")
    train_set, test_set = data.load(name, "train"), data.load(name, "test")
    n_tr, n_te, epochs = len(train_set), len(test_set), prof.epochs_for(name)
    print(f"{train_set.title}: {n_tr} train / {n_te} test images; CNN epochs {epochs}")
    report: list = []
    total = time.perf_counter()
    cnn = timed("CNN training (+ test acc.)", n_tr * epochs + n_te, device,
                lambda: train.load_or_train(name, progress=False), report)
    tr = timed("embeddings (train)", n_tr, device, lambda: features.embed(cnn.model, train_set, progress=False), report)
    te = features.embed(cnn.model, test_set, progress=False)
    k = prof.k_per_class(name)
    kmex = timed("KMEx fit", n_tr, device,
                 lambda: KMExClassifier(k, n_init=10, random_state=0).fit(tr.z.numpy(), tr.labels.numpy()), report)
    kmex_acc = 100 * (kmex.predict(te.z.numpy()) == te.labels.numpy()).mean()
    explainers = {b: maps.ExplanationMaps(cnn.model, b, k_per_class=k, progress=False) for b in ("B4", "B234")}
    timed("maps fit (B4 + B234)", n_tr, device, lambda: maps_multi.fit_all(explainers, train_set), report)
    timed("maps explain (test)", n_te, device, lambda: maps_multi.explain_dataset_all(explainers, test_set), report)
    recipe = protopnet.recipe_for(None, name)
    stage_images = n_tr * (recipe.epochs + recipe.last_layer_epochs * len(range(recipe.push_every, recipe.epochs + 1,
                                                                                recipe.push_every)))
    run = timed("ProtoPNet schedule", stage_images, device, lambda: protopnet.load_or_train(name, progress=False), report)
    for key, res in run.state.results.items():
        seconds = getattr(res, "seconds", None)
        if seconds:
            print(f"    {key:24s} {seconds:8.1f} s")
    acc = timed("ProtoPNet evaluate (test)", n_te, device, lambda: protopnet.evaluate(run.model, test_set).accuracy,
                report)
    print(f"seed 0, {name}, profile {prof.name}: CNN {cnn.meta['test_accuracy']:.1f} %, KMEx K/C={k} {kmex_acc:.1f} %, "
          f"ProtoPNet {100 * acc:.1f} % (test); total {time.perf_counter() - total:.0f} s on {device}")


if __name__ == "__main__":
    main()
