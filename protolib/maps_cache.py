"""Cache fitted explanation maps, so that two chapters (or two runs) fit each block set once.

The fitted state (prototypes, their classes, the representative pixel of each, k-means inertia)
is a few hundred kilobytes; it is keyed by the model's weights (a SHA-256 of its state dict), the
data and every setting of the fit, and written atomically under a file lock by
:func:`protolib.store.load_or_build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from torch.utils.data import Dataset

from . import store
from .maps import ExplanationMaps, fit_all
from .models import model_fingerprint

FITTED = ("prototypes_", "prototype_classes_", "inertia_", "n_fit_pixels_", "patch_index_", "patch_distance_")


def settings(ex: ExplanationMaps) -> dict:
    """Everything that changes the prototypes of ``ex``, besides the model and the data (the k-means
    backend only when it is not the default, so that caches written before it existed stay valid)."""
    out = {"layers": list(ex.layers), "k_per_class": ex.k_per_class, "norm": ex.norm, "size": ex.size,
           "n_init": ex.n_init, "max_iter": ex.max_iter, "tol": ex.tol,
           "max_images_per_class": ex.max_images_per_class, "max_pixels_per_class": ex.max_pixels_per_class,
           "random_state": ex.random_state}
    if ex.kmeans_backend != "exact":
        out["kmeans_backend"] = ex.kmeans_backend
    if ex.kmeans_backend == "streaming":
        out["streaming"] = 2            # 2: fed one forward pass at a time (1 held the class's pixels)
        out["batch_size"] = ex.batch_size
    return out


def fitted_state(ex: ExplanationMaps) -> dict:
    """The fitted attributes of ``ex`` as a dict of CPU tensors and plain values."""
    state = {k: getattr(ex, k).cpu() for k in FITTED}
    state.update(grid=list(ex.grid_), input_size=list(ex.input_size_), num_classes=ex.num_classes_,
                 model_fingerprint=ex.model_fingerprint_)
    return state


def restore(ex: ExplanationMaps, state: Mapping) -> ExplanationMaps:
    """Put a :func:`fitted_state` back into an unfitted explainer (on its device).

    Explaining with it then checks that its model is the one the prototypes were fitted on.
    """
    for k in FITTED:
        value = state[k]
        setattr(ex, k, value.to(ex.device) if k in ("prototypes_", "prototype_classes_") else value)
    ex.grid_, ex.input_size_ = tuple(state["grid"]), tuple(state["input_size"])
    ex.num_classes_ = int(state["num_classes"])
    # the fingerprint of the model the prototypes were fitted on (files written before it was
    # stored are keyed by the model's fingerprint, so they belong to ex.model)
    ex.model_fingerprint_ = state.get("model_fingerprint") or model_fingerprint(ex.model)
    return ex


def load_or_fit(explainers: Mapping[str, ExplanationMaps], dataset: Dataset, model_tag: str,
                cache_dir: str | Path | None = None) -> tuple[dict[str, ExplanationMaps], bool]:
    """Fit ``explainers`` on ``dataset`` with :func:`protolib.maps.fit_all`, or load them from the cache.

    ``model_tag`` names the model in the file name (e.g. ``TrainResult.path.name``); the key holds
    the fingerprint of its weights, so a retrained model never reuses old prototypes.
    Returns (explainers, from_cache).
    """
    model = next(iter(explainers.values())).model
    key = store.key("maps", model=model_fingerprint(model), data=getattr(dataset, "title", repr(dataset)),
                    n=len(dataset), content=store.fingerprint(dataset),
                    fits={k: settings(e) for k, e in sorted(explainers.items())})
    path = store.path("maps", f"{Path(model_tag).stem}-{'-'.join(sorted(explainers))}", key, cache_dir)

    def build() -> dict:
        fit_all(explainers, dataset)
        return {"state_dict": {k: fitted_state(e) for k, e in explainers.items()}, "meta": {"key": key}}

    ckpt, cached = store.load_or_build(path, build)
    if cached:
        for k, e in explainers.items():
            restore(e, ckpt["state_dict"][k])
    return dict(explainers), cached


__all__ = ["model_fingerprint", "settings", "fitted_state", "restore", "load_or_fit"]
