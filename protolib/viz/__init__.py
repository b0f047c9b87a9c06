"""Figures of prototypes in embedding space: the paper's Figure 2 (UMAP) and a prototype gallery.

``prototype_umap`` fits a seeded UMAP on the training and test embeddings of some classes and
places prototypes with the fitted UMAP's ``transform``; ``plot_prototype_umap`` draws the two
panels of Figure 2 (left: classifier columns c_j raw as crosses and rescaled to the class's mean
norm as triangles; right: KMEx prototypes as squares). ``prototype_gallery`` shows, for each
prototype, its nearest training images within its class (from
:func:`protolib.method.kmex.inspect_prototypes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from protolib.core.convert import to_numpy
from protolib.method.kmex import squared_distances
from protolib.method.metrics import rescale_to_class_norm
from .layout import NORMAL, SMALL, TEXT_WIDTH
from .umap_kernels import load_umap


# Below this many points umap computes every pairwise distance; it does so with its numba metric
# called from scikit-learn's pure-Python loop (7 s for 3,000 points here). The same distances as one
# float64 matrix product, given to umap as a precomputed metric, take milliseconds.
SMALL_DATA = 4096


def euclidean_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances in float64 (KMEx's squared distances, rooted); without
    ``b``, between the rows of ``a``, with an exact 0 from each row to itself."""
    d2 = squared_distances(a, a if b is None else b)
    if b is None:
        np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def subsample_per_class(y, max_per_class: int | None, classes, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_per_class`` samples of each class in ``classes`` (seeded)."""
    y, rng = to_numpy(y), np.random.default_rng(seed)
    picks = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if max_per_class is not None and len(idx) > max_per_class:
            idx = rng.choice(idx, max_per_class, replace=False)
        picks.append(idx)
    return np.sort(np.concatenate(picks))


@dataclass
class PrototypeUMAP:
    """2-d coordinates of embeddings and prototypes under one fitted UMAP.

    train_xy: (N_train, 2), test_xy: (N_test, 2) with labels y_train, y_test; classes: the labels
    shown; cnn_raw_xy, cnn_scaled_xy: (len(classes), 2) the c_j raw and rescaled to the class
    norm; kmex_xy: (K', 2) the KMEx prototypes of those classes with labels kmex_labels.
    """

    train_xy: np.ndarray
    y_train: np.ndarray
    test_xy: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    cnn_raw_xy: np.ndarray
    cnn_scaled_xy: np.ndarray
    kmex_xy: np.ndarray
    kmex_labels: np.ndarray
    reducer: object  # the fitted umap.UMAP; with fewer than SMALL_DATA points its metric is
    # "precomputed": its transform takes the distances to the fitted points (euclidean_distances)


def prototype_umap(z_train, y_train, z_test, y_test, classifier_prototypes, kmex_prototypes, kmex_labels,
                   classes=None, max_points_per_class: int | None = None, random_state: int = 0,
                   n_neighbors: int = 15, min_dist: float = 0.1) -> PrototypeUMAP:
    """Fit ``umap.UMAP(random_state=...)`` on train + test embeddings of ``classes``, place the prototypes.

    z_*: (N, D) embeddings, y_*: (N,) labels; classifier_prototypes: (C, D), row j = class j;
    kmex_prototypes: (K, D) with kmex_labels (K,). ``classes`` defaults to every class of
    y_train; ``max_points_per_class`` subsamples each split (seeded by ``random_state``) to
    bound the UMAP's cost. The c_j are rescaled with the mean norm of the class's *training* z.
    """
    umap = load_umap("the prototype UMAP")  # numba compiles its kernels once per machine (umap_kernels)

    y_train, y_test, kmex_labels = to_numpy(y_train), to_numpy(y_test), to_numpy(kmex_labels)
    classes = np.unique(y_train) if classes is None else np.asarray(classes)
    tr = subsample_per_class(y_train, max_points_per_class, classes, random_state)
    te = subsample_per_class(y_test, max_points_per_class, classes, random_state + 1)
    z_tr, z_te = to_numpy(z_train)[tr].astype(np.float32), to_numpy(z_test)[te].astype(np.float32)
    C = to_numpy(classifier_prototypes)[classes].astype(np.float64)
    scaled = to_numpy(rescale_to_class_norm(C, classes, to_numpy(z_train), y_train))
    keep = np.isin(kmex_labels, classes)
    points = np.concatenate([z_tr, z_te])
    new = np.concatenate([C, scaled, to_numpy(kmex_prototypes)[keep]]).astype(np.float32)
    small = len(points) < SMALL_DATA  # umap's exact path: every distance between the points
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state,
                        metric="precomputed" if small else "euclidean")
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", message=".*(precomputed metric|inverse_transform).*")
        xy = reducer.fit_transform(euclidean_distances(points) if small else points)
        placed = reducer.transform(euclidean_distances(new, points) if small else new)
    n, c = len(tr), len(classes)
    return PrototypeUMAP(xy[:n], y_train[tr], xy[n:], y_test[te], classes, placed[:c], placed[c:2 * c],
                         placed[2 * c:], kmex_labels[keep], reducer)


def _colours(classes) -> dict:
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    return {c: cmap(i % cmap.N) for i, c in enumerate(classes)}


def _scatter_data(ax, res: PrototypeUMAP, colours: dict) -> None:
    for xy, y, alpha in ((res.train_xy, res.y_train, 0.5), (res.test_xy, res.y_test, 0.12)):
        ax.scatter(xy[:, 0], xy[:, 1], s=4, c=[colours[v] for v in y], alpha=alpha, linewidths=0)
    ax.set_xticks([]), ax.set_yticks([])


def plot_prototype_umap(res: PrototypeUMAP, class_names=None, title: str = "", figsize=(TEXT_WIDTH, 4.0)):
    """The two panels of Figure 2; returns the matplotlib figure.

    Points: training embeddings (opaque) and test embeddings (faint), coloured by class.
    Left: c_j raw (x) and rescaled to the class norm (triangles). Right: KMEx prototypes (squares).
    """
    colours = _colours(res.classes)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, sharex=True, sharey=True)
    for ax in (left, right):
        _scatter_data(ax, res, colours)
    marker = dict(edgecolors="black", linewidths=0.8, zorder=3)
    for c, raw, sc in zip(res.classes, res.cnn_raw_xy, res.cnn_scaled_xy):
        left.scatter(*raw, marker="X", s=90, color=colours[c], **marker)
        left.scatter(*sc, marker="^", s=80, color=colours[c], **marker)
    for c, xy in zip(res.kmex_labels, res.kmex_xy):
        right.scatter(*xy, marker="s", s=45, color=colours[c], **marker)
    left.set_title("classifier prototypes $c_j$: raw (x),\nrescaled to class norm (triangles)", fontsize=NORMAL)
    right.set_title(f"KMEx prototypes (squares),\n{len(res.kmex_xy)} in all", fontsize=NORMAL)
    for ax in (left, right):
        ax.tick_params(labelsize=SMALL)
    names = [str(class_names[c]) if class_names is not None else str(c) for c in res.classes]
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[c], label=n) for c, n in zip(res.classes, names)]
    fig.legend(handles=handles, loc="center right", fontsize=SMALL, frameon=False)
    fig.suptitle(title, fontsize=NORMAL)
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    return fig


def prototype_gallery(dataset, inspection, prototype_labels, rows, class_names=None, figsize_per_image=1.1):
    """One row per prototype in ``rows``: its nearest training images within its class.

    dataset: the (un-augmented) dataset whose indices ``inspection.neighbours`` refer to;
    inspection: a :class:`protolib.method.kmex.PrototypeInspection`; prototype_labels: (K,);
    rows: prototype indices to show. Row labels give the class and the k-means cluster size.
    """
    rows = list(rows)
    n = inspection.neighbours.shape[1]
    per = min(figsize_per_image, (TEXT_WIDTH - 1.2) / n)    # 1.2 in for the row labels
    size = (n * per + 1.2, len(rows) * per)
    fig, axes = plt.subplots(len(rows), n, figsize=size, squeeze=False)
    for r, k in enumerate(rows):
        label = to_numpy(prototype_labels)[k]
        name = class_names[label] if class_names is not None else label
        for col, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            i = inspection.neighbours[k, col]
            if i >= 0:
                img = dataset.denormalize(dataset[int(i)][0]).permute(1, 2, 0).cpu().numpy()
                ax.imshow(img)
        axes[r, 0].set_ylabel(f"{name} #{k}\nn={inspection.cluster_sizes[k]}", fontsize=SMALL, rotation=0,
                              ha="right", va="center")
    fig.tight_layout(pad=0.2)
    return fig


__all__ = ["SMALL_DATA", "PrototypeUMAP", "euclidean_distances", "plot_prototype_umap", "prototype_gallery", "prototype_umap",
           "subsample_per_class"]
