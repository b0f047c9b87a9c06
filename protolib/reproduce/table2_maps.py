"""Table 2's "Ours B4" and "Ours B234" rows for one trained backbone: fit (cached) and score the maps.

The setup is the one the explanation-maps chapter introduced and the reproduction reuses: B4,
B34 and B234 fitted together (one forward pass per class), with ``k_per_class`` pixel
prototypes per class, on a seeded subset of ``images_per_class`` training images per class
(``None``: all); train accuracy on a seeded subset of ``eval_train`` images (``None``: all),
test accuracy on the whole test split.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from protolib.core import backbone, config
from protolib.core.run import Run, as_run
from protolib.method.explain import maps, maps_multi
from protolib.method.explain.maps_cache import load_or_fit

BLOCK_SETS = ("B4", "B34", "B234")


def budget(profile: str | config.Profile | None = None) -> tuple[int | None, int | None]:
    """(images_per_class, eval_train) of a profile (:attr:`protolib.core.config.Profile.map_images_per_class`,
    ``map_eval_train``): (30, 600) in ``quick``, everything (``None``) in ``paper``."""
    prof = config.get_profile(profile)
    return prof.map_images_per_class, prof.map_eval_train


def fit_maps(trained, train_set: Dataset, k_per_class: int, images_per_class: int | None = None,
             seed: int = 0, blocks=BLOCK_SETS, progress: bool = True,
             kmeans_backend: str = "exact", norm: str = "pixel",
             content: str | None = None) -> tuple[dict[str, maps.ExplanationMaps], bool]:
    """Explanation maps of ``trained`` (a :class:`protolib.core.train.TrainResult`), from the cache when fitted before.

    ``kmeans_backend`` names the k-means of every class (see :mod:`protolib.method.explain.kmeans_backends`),
    ``norm`` the normalisation of the blocks (see :func:`protolib.method.explain.blocks.composite`),
    ``content`` the train set's fingerprint when the caller has it (see :func:`.maps_cache.load_or_fit`).
    Returns ({block set: fitted explainer}, from_cache).
    """
    explainers = {n: maps.ExplanationMaps(trained.model, n, k_per_class=k_per_class, norm=norm,
                                          max_images_per_class=images_per_class, random_state=seed,
                                          progress=progress, kmeans_backend=kmeans_backend)
                  for n in blocks}
    return load_or_fit(explainers, train_set, trained.path.name, content=content)


def eval_subset(dataset: Dataset, n: int | None, seed: int = 0) -> list[int] | None:
    """A seeded, sorted subset of ``n`` indices of ``dataset`` (``None`` when it would be all of it)."""
    if n is None or n >= len(dataset):
        return None
    return torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values.tolist()


def map_accuracies(explainers: dict[str, maps.ExplanationMaps], train_set: Dataset, test_set: Dataset,
                   eval_train: int | None = None, names=("B4", "B234")) -> dict[tuple[str, str], float]:
    """Accuracy (a fraction in [0, 1]) of the CNN and of eq. 10 for each block set in ``names``:
    {(model, split): value}.

    ``model`` is ``"CNN"`` or a block-set name, ``split`` ``"train"`` or ``"test"``; the CNN's
    value comes from the same forward passes (and the same train subset) as the maps'.
    """
    chosen = {n: explainers[n] for n in names}
    out = {}
    for split, ds, idx in (("train", train_set, eval_subset(train_set, eval_train)), ("test", test_set, None)):
        found, logits = maps_multi.explain_dataset_all(chosen, ds, idx)
        y = torch.as_tensor(ds.targets) if idx is None else torch.as_tensor(ds.targets)[idx]
        out[("CNN", split)] = (logits.argmax(1) == y).float().mean().item()
        for n in names:
            out[(n, split)] = (found[n].prediction == y).float().mean().item()
    return out


def profile_maps(bb: backbone.Backbone, seed: int = 0, blocks=BLOCK_SETS, norm: str = "pixel",
                 progress: bool = True, kmeans_backend: str = "exact") -> tuple[dict[str, maps.ExplanationMaps], bool]:
    """The book's explanation maps of a backbone (:func:`protolib.core.backbone.load`): :func:`fit_maps`
    with the K/C of its profile for its dataset and the profile's :func:`budget`, so every chapter
    that explains the same backbone shares one cache entry. Returns (explainers, from_cache)."""
    prof = config.get_profile(bb.meta["profile"])
    return fit_maps(bb.trained, bb.train_set, prof.k_per_class(bb.dataset), prof.map_images_per_class, seed=seed,
                    blocks=blocks, progress=progress, kmeans_backend=kmeans_backend, norm=norm)


def table2_row(dataset: str | Run, profile: str | config.Profile | None = None, seed: int | None = None,
               **train_options) -> tuple[dict[tuple[str, str], float], str]:
    """Table 2's CNN, B4 and B234 accuracies of a run (a :class:`protolib.core.run.Run`, or a dataset
    name with ``profile`` and ``seed``): the cached backbone (``train_options`` go to
    :func:`protolib.core.train.load_or_train`), its :func:`profile_maps` (fitted or loaded), scored by
    :func:`map_accuracies` on the profile's train subset. Returns ({(model, split): fraction in [0, 1]},
    the test split's title)."""
    run = as_run(dataset, profile, seed)
    bb = backbone.load(run, **train_options)
    fitted, _ = profile_maps(bb, run.seed, progress=False)
    return map_accuracies(fitted, bb.train_set, bb.test_set, run.profile.map_eval_train), bb.test_set.title


__all__ = ["BLOCK_SETS", "budget", "fit_maps", "eval_subset",
           "map_accuracies", "profile_maps", "table2_row"]
