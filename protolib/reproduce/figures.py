"""Figures 1 and 2 of the paper on the right data: the library picks the data, the chapter shows it.

Figure 2 (UMAP of embeddings, classifier columns raw and rescaled, KMEx prototypes) is drawn on
CUB-200's sparrow classes when CUB is present, else on the synthetic birds (all twenty
classes), else on the last dataset at hand. The paper says "twenty sparrow classes"; CUB has 21
class names with "Sparrow", and we leave out the House Sparrow, the only Old World sparrow
among them (our reading). Figure 1 (B4 and B234 maps, importance, representative patches) is
drawn on a CUB red-bellied woodpecker when CUB is present, else on a synthetic bird (the book's
stand-in with parts), else on the last dataset at hand: the first test image of the chosen
class (any class for the stand-ins) that the CNN, B4 and B234 all classify correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from protolib.core import config, data, features, train
from protolib.method.explain import maps_multi
from protolib.method.explain.patches import representative_patches
from protolib.method.kmex import KMExClassifier
from protolib.method.theorem1 import classifier_prototypes
from protolib.reproduce import paper, table2_maps
from protolib.viz import plot_prototype_umap, prototype_umap
from protolib.viz.widgets import MapExplorer

FALLBACK = ("birds", "mnist", "digits")


@dataclass(frozen=True)
class FigureData:
    """Which data a figure uses and why: ``classes`` (indices; ``None`` = all) and a sentence."""

    dataset: str
    classes: tuple[int, ...] | None
    note: str


def _class_names(dataset: str) -> list[str]:
    return list(data.load(dataset, "test").classes)


def _fallback(present: Sequence[str]) -> str:
    for name in FALLBACK:
        if name in present:
            return name
    if not present:
        raise ValueError("no dataset at hand")
    return present[-1]


def figure2_data(present: Sequence[str]) -> FigureData:
    """The paper's twenty CUB sparrows when ``cub200`` is in ``present``, else the best stand-in."""
    if "cub200" in present:
        names = _class_names("cub200")
        idx = [i for i, n in enumerate(names) if "sparrow" in n.lower() and "house_sparrow" not in n.lower()]
        if idx:
            return FigureData("cub200", tuple(idx[:20]), f"CUB-200-2011, its {len(idx[:20])} sparrow classes "
                              "(House Sparrow left out), as in the paper")
    name = _fallback(present)
    n = len(_class_names(name))
    keep = tuple(range(min(n, 20)))
    return FigureData(name, keep, f"{name} ({len(keep)} classes): CUB-200-2011 is not present, so not the paper's "
                      "twenty sparrows" + (" (the synthetic birds are the book's offline stand-in for CUB)"
                                           if name == "birds" else ""))


def figure1_data(present: Sequence[str]) -> FigureData:
    """A CUB red-bellied woodpecker when ``cub200`` is in ``present``, else the best stand-in."""
    if "cub200" in present:
        names = _class_names("cub200")
        idx = [i for i, n in enumerate(names) if paper.FIGURE1["class"].lower() in n.lower()]
        if idx:
            return FigureData("cub200", (idx[0],), "CUB-200-2011, a red-bellied woodpecker, as in the paper")
    name = _fallback(present)
    return FigureData(name, None, f"{name}: CUB-200-2011 is not present, so not the paper's woodpecker"
                      + (" (the synthetic birds are the book's offline stand-in for CUB, with parts)"
                         if name == "birds" else ""))


def figure2(choice: FigureData, profile: str | config.Profile | None = None, seed: int = 0,
            max_points_per_class: int | None = 100):
    """Figure 2 on ``choice``: returns (figure, :class:`protolib.viz.PrototypeUMAP`)."""
    prof = config.get_profile(profile)
    trained = train.load_or_train(choice.dataset, profile=prof, seed=seed)
    tr = features.embed_cached(trained, choice.dataset, "train")
    te = features.embed_cached(trained, choice.dataset, "test")
    clf = KMExClassifier(paper.KMEX_TABLE_K, n_init=10, random_state=seed).fit(tr.z.double().numpy(), tr.labels.numpy())
    C = classifier_prototypes(trained.model).cpu().double()
    res = prototype_umap(tr.z, tr.labels, te.z, te.labels, C, clf.prototypes_, clf.prototype_labels_,
                         classes=list(choice.classes) if choice.classes else None,
                         max_points_per_class=max_points_per_class, random_state=seed)
    title = (f"Figure 2 on {choice.dataset}: training and test embeddings; profile {prof.name}, seed {seed}, "
             f"KMEx K/C={paper.KMEX_TABLE_K}")
    return plot_prototype_umap(res, class_names=_class_names(choice.dataset), title=title), res


def render_figure1(explainers, train_set, test_set, classes: Sequence[int] | None = None, index: int | None = None):
    """Figure 1's panels for test image ``index``, by default the first (of ``classes``, else any)
    that the CNN, B4 and B234 all classify correctly (else the first one): (figure, index)."""
    if index is not None:
        patches = {n: representative_patches(explainers[n], train_set) for n in ("B4", "B234")}
        return MapExplorer(explainers, test_set, patches).render(index, ("B4", "B234")), index
    targets = torch.as_tensor(test_set.targets)
    pool = torch.arange(len(test_set)) if not classes else torch.nonzero(
        torch.isin(targets, torch.tensor(classes))).flatten()
    found, logits = maps_multi.explain_dataset_all(explainers, test_set, pool.tolist())
    y = targets[pool]
    ok = (logits.argmax(1) == y) & (found["B4"].prediction == y) & (found["B234"].prediction == y)
    return render_figure1(explainers, train_set, test_set, index=int(pool[ok.nonzero()[0]]) if ok.any() else int(pool[0]))


def figure1(choice: FigureData, profile: str | config.Profile | None = None, seed: int = 0):
    """Figure 1 on ``choice``: returns (figure, test image index, explainers)."""
    prof = config.get_profile(profile)
    trained = train.load_or_train(choice.dataset, profile=prof, seed=seed)
    train_set, test_set = data.load(choice.dataset, "train"), data.load(choice.dataset, "test")
    images, _ = table2_maps.budget(prof)
    explainers, _ = table2_maps.fit_maps(trained, train_set, prof.k_per_class(choice.dataset), images, seed)
    fig, index = render_figure1(explainers, train_set, test_set, choice.classes)
    return fig, index, explainers


__all__ = ["FigureData", "figure1_data", "figure2_data", "render_figure1", "figure1", "figure2"]
