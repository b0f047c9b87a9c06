"""Cache fitted explanation maps, so that two chapters (or two runs) fit each block set once.

The fitted state (:meth:`ExplanationMaps.state_dict`: prototypes, their classes, the representative
pixel of each, k-means inertia) is a few hundred kilobytes; it is keyed by the model's weights (a SHA-256 of its state dict), the
data and every setting of the fit, and written atomically under a file lock by
:func:`protolib.core.store.load_or_build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from torch.utils.data import Dataset

from protolib.core import store
from protolib.core.models import model_fingerprint
from protolib.method.explain.maps import ExplanationMaps
from protolib.method.explain.maps_multi import fit_all


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


def load_or_fit(explainers: Mapping[str, ExplanationMaps], dataset: Dataset, model_tag: str,
                cache_dir: str | Path | None = None, content: str | None = None) -> tuple[dict[str, ExplanationMaps], bool]:
    """Fit ``explainers`` on ``dataset`` with :func:`protolib.method.explain.maps_multi.fit_all`, or load them from the cache.

    ``model_tag`` names the model in the file name (e.g. ``TrainResult.path.name``); the key holds
    the fingerprint of its weights, so a retrained model never reuses old prototypes, and the
    dataset's content fingerprint: ``content`` when the caller has it (a run's,
    :attr:`protolib.core.run.Run.fingerprints`), else :func:`protolib.core.store.fingerprint` of ``dataset``.
    Returns (explainers, from_cache).
    """
    model = next(iter(explainers.values())).model
    key = store.key("maps", model=model_fingerprint(model), data=getattr(dataset, "title", repr(dataset)),
                    n=len(dataset), content=content or store.fingerprint(dataset),
                    fits={k: settings(e) for k, e in sorted(explainers.items())})
    path = store.path("maps", f"{Path(model_tag).stem}-{'-'.join(sorted(explainers))}", key, cache_dir)

    def build() -> dict:
        fit_all(explainers, dataset)
        return {"state_dict": {k: e.state_dict() for k, e in explainers.items()}, "meta": {"key": key}}

    ckpt, cached = store.load_or_build(path, build)
    if cached:
        for k, e in explainers.items():
            e.load_state_dict(ckpt["state_dict"][k])
    return dict(explainers), cached


__all__ = ["settings", "load_or_fit"]
