"""The per-class fitting steps of :class:`protolib.method.explain.maps.ExplanationMaps` (paper sec. 3.3).

For every class: the images used (all, or a seeded subset), k-means of their composite pixel
vectors (at once, or streamed one forward pass at a time), and the training pixel nearest to each
prototype; then the fitted attributes from every class's :class:`ClassFit`. The steps are public
so that :func:`protolib.method.explain.maps_multi.fit_all` can run them for several block sets at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from protolib.core.models import model_fingerprint
from protolib.method.explain.kmeans import assign
from protolib.method.explain.kmeans_backends import cluster, streaming_kmeans

if TYPE_CHECKING:
    from protolib.method.explain.maps import ExplanationMaps


class ClassFit(NamedTuple):
    """What k-means found for one class: its K/C prototypes (K/C, D), inertia, the number of pixel
    vectors clustered, and the (dataset index, row, col) of the training pixel nearest to each
    prototype (K/C, 3) with its distance (K/C,)."""

    centers: torch.Tensor
    inertia: float
    n_pixels: int
    patch_index: torch.Tensor | None
    patch_distance: torch.Tensor | None


def _seed(random_state: int, c: int, stream: int = 0) -> int:
    """A seed for class ``c`` derived from (random_state, c, stream) with numpy's SeedSequence
    (stream 0: k-means, stream 1: image subsample)."""
    return int(np.random.SeedSequence([int(random_state), int(c), stream]).generate_state(1)[0])


def check_dataset_batch(x: torch.Tensor, positions, size=None) -> None:
    """A batch of dataset images: a floating (B, C, H, W) tensor without NaN (of ``size`` when
    given), whose bad images are named by their dataset index (``positions``)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError(f"dataset images must be floating (C, H, W) tensors, got a batch "
                        f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"dataset holds {x.shape[-2]} x {x.shape[-1]} images, but the explainer was fitted on "
                         f"{size[0]} x {size[1]} images (input_size_)")
    if not torch.isfinite(x).all():
        bad = torch.as_tensor(positions)[~torch.isfinite(x).flatten(1).all(1).cpu()].tolist()
        raise ValueError(f"dataset images {bad[:10]} hold NaN or infinite values")


class ClassFitting:
    """The fitting steps, mixed into :class:`protolib.method.explain.maps.ExplanationMaps` (which holds the
    parameters, :meth:`prepare`, the features and the batches they use)."""

    def _cluster(self, x: torch.Tensor, c: int) -> tuple[torch.Tensor, float, int]:
        """k-means of one class's pixel vectors x (M, D) (after the optional pixel subsample)."""
        gen = torch.Generator().manual_seed(_seed(self.random_state, c))
        if self.max_pixels_per_class is not None and len(x) > self.max_pixels_per_class:
            x = x[torch.randperm(len(x), generator=gen)[: self.max_pixels_per_class].to(x.device)]
        res = cluster(x, self.k_per_class, self.kmeans_backend, n_init=self.n_init, max_iter=self.max_iter,
                      tol=self.tol, seed=gen, chunk_size=self.chunk_size)
        return res.centers, res.inertia, len(x)

    def class_images(self, targets: torch.Tensor, c: int) -> torch.Tensor:
        """Step 1: the dataset indices of the class-c images the fit uses (all, or a seeded subset of
        ``max_images_per_class``), sorted."""
        idx = (targets == c).nonzero().flatten()
        if len(idx) == 0:
            raise ValueError(f"class {c} has no training image")
        if self.max_images_per_class is not None and len(idx) > self.max_images_per_class:
            gen = torch.Generator().manual_seed(_seed(self.random_state, c, stream=1))
            idx = idx[torch.randperm(len(idx), generator=gen)[: self.max_images_per_class]].sort().values
        return idx

    def fit_class(self, c: int, idx: torch.Tensor, activations: Mapping[str, torch.Tensor] | None = None,
                  dataset: Dataset | None = None) -> ClassFit:
        """Step 2: the prototypes of class c from its images ``idx`` (:meth:`class_images`).

        With ``activations`` (the block outputs {layer: (len(idx), D_b, H_b, W_b)} of those
        images) the class's pixel vectors are clustered at once; the streaming backend instead
        reads them from ``dataset``, one forward pass at a time. The training pixel nearest to each
        prototype is searched among all the class's pixels.
        """
        if self.kmeans_backend == "streaming":
            if dataset is None:
                raise ValueError("the streaming backend reads the class from the dataset: pass dataset=")
            return self._fit_class_stream(dataset, idx, c)
        if activations is None:
            raise ValueError("fit_class needs the block outputs of the class's images (activations=)")
        h = self.features_from(activations)
        self.grid_ = tuple(h.shape[-2:])
        x = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        if len(x) < self.k_per_class:  # e.g. B4 of a 32 px image is 1 x 1: one cell per image
            raise ValueError(f"class {c}: {len(h)} image(s) x the {self.grid_[0]} x {self.grid_[1]} grid of "
                             f"{self.name} give {len(x)} cells, fewer than the k_per_class={self.k_per_class} "
                             "clusters asked; use more images, larger images, a shallower block or fewer clusters")
        centers, inertia, n = self._cluster(x, c)
        near, dist = assign(centers, x, chunk_size=self.chunk_size)
        return ClassFit(centers, inertia, n, self._pixel_location(idx, near.cpu()), dist.cpu())

    def _pixel_location(self, idx: torch.Tensor, rows: torch.Tensor, first: int = 0) -> torch.Tensor:
        """(len(rows), 3) = (dataset index, row, col) of pixel rows counted from image ``idx[first]``."""
        r = self.grid_[0] * self.grid_[1]
        img, pix = idx.cpu()[first + rows // r], rows % r
        return torch.stack([img, pix // self.grid_[1], pix % self.grid_[1]], 1)

    def _fit_class_stream(self, dataset: Dataset, idx: torch.Tensor, c: int) -> ClassFit:
        """:meth:`fit_class` for the streaming backend: the pixel vectors of class c come one forward
        pass (``batch_size`` images) at a time and the class is never held whole; the training pixel
        nearest to each prototype is searched in one more pass."""
        if self.max_pixels_per_class is not None:
            raise ValueError("max_pixels_per_class needs the class's pixels at once; the streaming backend "
                             "never holds them (use max_images_per_class)")

        def batches():
            start = 0
            for x, _ in self.batches(dataset, idx.tolist()):
                check_dataset_batch(x, idx[start:start + len(x)])
                h = self._features(x)
                self.grid_ = tuple(h.shape[-2:])
                yield start, h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
                start += len(x)

        gen = torch.Generator().manual_seed(_seed(self.random_state, c))
        # the forward passes stay in this thread (the model's hooks are not shared with a reader thread)
        res = streaming_kmeans(lambda: (x for _, x in batches()), self.k_per_class, n_init=self.n_init,
                               max_iter=self.max_iter, tol=self.tol, seed=gen, chunk_size=self.chunk_size,
                               read_ahead=False)
        best = torch.full((self.k_per_class,), float("inf"))
        where = torch.zeros(self.k_per_class, 3, dtype=torch.long)
        n = 0
        for start, x in batches():
            near, dist = assign(res.centers, x, chunk_size=self.chunk_size)
            n += len(x)
            better = dist.cpu() < best
            found = self._pixel_location(idx, near.cpu(), start)
            best, where = torch.where(better, dist.cpu(), best), torch.where(better[:, None], found, where)
        return ClassFit(res.centers, res.inertia, n, where, best)

    def set_prototypes(self, fits: Sequence[ClassFit], input_size: tuple[int, int] | None = None) -> "ExplanationMaps":
        """Step 3: the fitted attributes from every class's :class:`ClassFit`, class 0 first.

        ``input_size`` (H, W) is the size of the training images; ``None`` when the fit did not go
        through the model (:meth:`fit_features`), which then has no weights to check at use.
        """
        centers, inertia, n_pix, where, dist = zip(*fits)
        self.prototypes_ = torch.cat(centers)
        self.num_classes_ = len(centers)
        self.prototype_classes_ = torch.arange(self.num_classes_, device=self.prototypes_.device).repeat_interleave(
            self.k_per_class)
        self.inertia_, self.n_fit_pixels_ = torch.tensor(inertia), torch.tensor(n_pix)
        if all(w is not None for w in where):
            self.patch_index_, self.patch_distance_ = torch.cat(where), torch.cat(dist)
        if input_size is not None:
            self.input_size_ = tuple(input_size)
            self.model_fingerprint_ = model_fingerprint(self.model)
        else:
            self.model_fingerprint_ = None  # not fitted through the model: nothing to check at use
        return self

    def fit_features(self, per_class: Iterable[torch.Tensor]) -> "ExplanationMaps":
        """Fit from pixel vectors directly: ``per_class`` yields (M_c, D) tensors, class 0 first.

        Used by benchmarks on synthetic activations; no representative patches are recorded.
        """
        self.prepare()
        fits = []
        for c, x in enumerate(per_class):
            if not isinstance(x, torch.Tensor) or x.ndim != 2:
                raise ValueError(f"per_class[{c}] must be a (M, D) tensor of pixel vectors, got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            centers, i, n = self._cluster(x.to(self.device_).float(), c)
            fits.append(ClassFit(centers, i, n, None, None))
        if not fits:
            raise ValueError("per_class yielded no class")
        return self.set_prototypes(fits)


__all__ = ["ClassFit", "ClassFitting", "check_dataset_batch"]
