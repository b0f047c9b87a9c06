"""Multi-depth explanation maps of the encoder (paper sec. 3.3, eq. 6-10).

For a CNN read as blocks ``x -> x^(1) -> ... -> x^(B) = h`` (eq. 6), a *block set* (``"B4"``,
``"B34"``, ``"B234"`` or explicit layer names) selects the outputs that are combined:

* eq. 7: each selected output x^(b) (B, D_b, H_b, W_b) is bilinearly interpolated
  (``align_corners=False``) to a shared grid R' = H' x W'. By default this is the grid of the
  shallowest selected block (28 x 28 for B234 on a 224 px ResNet), so no block is downsampled
  and clustering stays cheap; maps are upsampled further only for display.
* eq. 8: each upsampled block u^(b) is divided by D_b times its norm and the blocks are
  concatenated into h-check (B, sum_b D_b, H', W'). ``norm="pixel"`` (default) uses the norm of
  each pixel vector u_r^(b), so every pixel of block b has length exactly 1/D_b and only the
  direction of the activation matters; ``norm="block"`` uses the Frobenius norm of the whole
  block of one image (R' x D_b), which keeps how strongly each pixel fires relative to the other
  pixels of the same image. The chapter shows what the choice changes.
* class-wise k-means: for every class, K/C prototypes from the pixel vectors of its training
  images; prototypes are stored class by class (rows ``c*K/C .. (c+1)*K/C - 1`` belong to class c).
* eq. 9: every pixel is assigned to its nearest prototype among all K: the explanation map.
* eq. 10: class scores = counts of pixels per prototype, average-pooled over each class's K/C
  prototypes; the prediction is the class with the highest score (a tie goes to the lowest
  class index, ``torch.argmax``'s rule).

The block-set names and eq. 7-8 live in :mod:`protolib.explain.blocks`.
Nothing holds every pixel of a dataset: features are computed class by class (optionally on a
seeded subset of images and pixels), k-means runs on the device of the model, and assignment
goes in batches of images and chunks of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from .. import config
from .._checks import (check_choice, check_dataset, check_finite_rows, check_images, check_int, check_labels,
                      check_number, check_size)
from .blocks import BLOCK_SETS, NORMS, block_set_name, composite, normalise, resolve_blocks, upsample
from .kmeans import assign
from .kmeans_backends import BACKENDS, cluster, streaming_kmeans
from ..models import capture, get_layer, model_fingerprint


def class_scores(counts: torch.Tensor, k_per_class: int) -> torch.Tensor:
    """Eq. 10: counts (B, K) of pixels per prototype -> (B, C), the average over each class's K/C."""
    b, k = counts.shape
    if k % k_per_class:
        raise ValueError(f"{k} prototypes cannot be split into classes of {k_per_class}")
    return counts.float().view(b, k // k_per_class, k_per_class).mean(2)


@dataclass
class ExplanationMap:
    """The explanation of a batch by one block set (tensors on the device they were computed on).

    segments: (B, H', W') long, index of the nearest prototype of every pixel (eq. 9);
    counts: (B, K) pixels per prototype (= sum_r s-check_r); scores: (B, C) eq. 10;
    prototype_classes: (K,) the class of every prototype.
    """

    segments: torch.Tensor
    counts: torch.Tensor
    scores: torch.Tensor
    prototype_classes: torch.Tensor

    @property
    def prediction(self) -> torch.Tensor:
        """(B,) class with the largest score; a tie goes to the lowest class index."""
        return self.scores.argmax(1)

    @property
    def segment_classes(self) -> torch.Tensor:
        """(B, H', W') the class of the prototype of every pixel."""
        return self.prototype_classes[self.segments]

    def binary(self) -> torch.Tensor:
        """s-check of eq. 9 as a binary (B, R', K) matrix (small batches only)."""
        return F.one_hot(self.segments.flatten(1), len(self.prototype_classes))


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


class ExplanationMaps:
    """Class-wise k-means prototypes on composite pixel features of ``model`` (eq. 6-10).

    Parameters
    ----------
    model : a CNN whose ``blocks`` are named modules (torchvision ResNet: ``layer1..layer4``).
    blocks : ``"B4"``, ``"B34"``, ``"B234"`` or a list of dotted layer names.
    k_per_class : K/C prototypes per class (paper: 5 for MNIST and STL-10, 10 for CUB).
    norm : ``"pixel"`` or ``"block"`` (eq. 8, see the module docstring).
    size : shared grid R' as ``(H', W')``; ``None`` = the grid of the shallowest block.
    n_init, max_iter, tol : k-means settings (see :func:`protolib.explain.kmeans.kmeans`).
    kmeans_backend : ``"exact"`` (default), ``"faiss"`` or ``"streaming"`` (see
        :mod:`protolib.explain.kmeans_backends`); every class is clustered by it, with the same seeds.
        ``"streaming"`` reads a class's pixel vectors one forward pass (``batch_size`` images) at
        a time and never holds the class; it does not take ``max_pixels_per_class``.
    max_images_per_class, max_pixels_per_class : optional seeded subsets used to fit k-means.
    batch_size, chunk_size : images per forward pass; pixel rows per distance block.
    random_state : seed; the seed of class c is derived from (random_state, c).
    device : where the model runs and k-means is computed (default: :func:`protolib.config.get_device`).

    As in scikit-learn, ``__init__`` only stores the parameters; they are checked, and the model is
    moved to ``device_`` and put in evaluation mode, when the explainer is fitted or loaded
    (:meth:`fit`, :meth:`fit_features`, :meth:`load_state_dict`). A fit is a sequence of public
    per-class steps, which :func:`fit_all` runs for several block sets of one model at once:
    :meth:`prepare` (checks), :meth:`class_images` (the images of class c used), :meth:`fit_class` (its prototypes from
    captured block outputs, or streamed) and :meth:`set_prototypes` (the fitted attributes).
    :meth:`state_dict` and :meth:`load_state_dict` save and restore a fit.

    Fitted attributes: ``device_``, ``prototypes_`` (K, D), ``prototype_classes_`` (K,), ``num_classes_``,
    ``grid_`` (H', W'), ``input_size_`` (H, W) (images explained later must have this size),
    ``model_fingerprint_`` (of the model's weights; explaining with changed weights is refused),
    ``inertia_`` (C,), ``n_fit_pixels_`` (C,),
    ``patch_index_`` (K, 3) = (dataset index, row, col) of the training pixel nearest to each
    prototype (searched among all pixels of the prototype's class), ``patch_distance_`` (K,).
    """

    FITTED = ("prototypes_", "prototype_classes_", "inertia_", "n_fit_pixels_", "patch_index_", "patch_distance_")

    def __init__(self, model: nn.Module, blocks: str | Sequence[str] = "B234", k_per_class: int = 5,
                 norm: str = "pixel", size: int | tuple[int, int] | None = None, n_init: int = 1,
                 max_iter: int = 100, tol: float = 1e-4, max_images_per_class: int | None = None,
                 max_pixels_per_class: int | None = None, batch_size: int = 64, chunk_size: int | None = None,
                 random_state: int = 0, device=None, progress: bool = True, kmeans_backend: str = "exact"):
        self.model, self.blocks, self.k_per_class, self.norm, self.size = model, blocks, k_per_class, norm, size
        self.n_init, self.max_iter, self.tol = n_init, max_iter, tol
        self.max_images_per_class, self.max_pixels_per_class = max_images_per_class, max_pixels_per_class
        self.batch_size, self.chunk_size = batch_size, chunk_size
        self.random_state, self.device, self.progress = random_state, device, progress
        self.kmeans_backend = kmeans_backend

    @property
    def layers(self) -> tuple[str, ...]:
        """The dotted names of the blocks of :attr:`blocks`."""
        return resolve_blocks(self.blocks)

    @property
    def name(self) -> str:
        """The block set's name (``"B234"``), or its layer names joined by ``+``."""
        return block_set_name(self.layers)

    def prepare(self) -> None:
        """Step 0: check the parameters, then put the model on ``device_`` in evaluation mode.

        :meth:`fit`, :func:`fit_all` and :meth:`load_state_dict` call it; a hand-run fit calls it first."""
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        check_choice("norm", self.norm, NORMS)
        check_choice("kmeans_backend", self.kmeans_backend, BACKENDS)
        check_int("k_per_class", self.k_per_class, 1)
        check_size("size", self.size)
        check_int("n_init", self.n_init, 1), check_int("max_iter", self.max_iter, 1), check_number("tol", self.tol, 0)
        check_int("max_images_per_class", self.max_images_per_class, 1, allow_none=True)
        check_int("max_pixels_per_class", self.max_pixels_per_class, self.k_per_class, allow_none=True)
        check_int("batch_size", self.batch_size, 1), check_int("chunk_size", self.chunk_size, 1, allow_none=True)
        check_int("random_state", self.random_state, 0)
        for layer in self.layers:  # unknown block names fail here, before any forward pass
            get_layer(self.model, layer)
        self.device_ = config.get_device(self.device)
        self.model.to(self.device_).eval()

    def __repr__(self) -> str:
        fitted = f", {len(self.prototypes_)} prototypes" if hasattr(self, "prototypes_") else ""
        try:
            name = self.name
        except ValueError:  # blocks that do not name a block set yet (refused at fit)
            name = repr(self.blocks)
        return f"ExplanationMaps({name}, K/C={self.k_per_class}, norm={self.norm!r}{fitted})"

    # --- features ------------------------------------------------------------------------
    def features_from(self, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """h-check (B, D, H', W') from captured block outputs ``acts`` {layer: (B, D_b, H_b, W_b)}."""
        missing = [n for n in self.layers if n not in acts]
        if missing:
            raise KeyError(f"block outputs {missing} were not captured")
        return composite([acts[n] for n in self.layers], self.size, self.norm)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h-check (B, D, H', W') of a batch of images x (B, 3, H, W) (one forward pass)."""
        if not hasattr(self, "device_"):
            self.prepare()
        return self._features(check_images("x", x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with capture(self.model, self.layers) as acts:
            self.model(x.to(self.device_))
        return self.features_from(acts)

    def batches(self, dataset: Dataset, indices: Sequence[int] | None = None, desc: str = ""):
        """The images (and labels) of ``dataset`` (or of its ``indices``), ``batch_size`` at a time."""
        subset = dataset if indices is None else Subset(dataset, list(indices))
        loader = config.make_loader(subset, self.batch_size, self.device_)
        yield from tqdm(loader, desc=desc, disable=not self.progress, leave=False)

    # --- fitting: public per-class steps ------------------------------------------------------
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
                _check_dataset_batch(x, idx[start:start + len(x)])
                h = self._features(x)
                self.grid_ = tuple(h.shape[-2:])
                yield start, h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
                start += len(x)

        gen = torch.Generator().manual_seed(_seed(self.random_state, c))
        res = streaming_kmeans(lambda: (x for _, x in batches()), self.k_per_class, n_init=self.n_init,
                               max_iter=self.max_iter, tol=self.tol, seed=gen, chunk_size=self.chunk_size)
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

    def fit(self, dataset: Dataset, num_classes: int | None = None) -> "ExplanationMaps":
        """Class-wise k-means on the pixel vectors of ``dataset`` (evaluation transforms, ``.targets``)."""
        fit_all({self.name: self}, dataset, num_classes)
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

    # --- saving and loading a fit --------------------------------------------------------------
    def state_dict(self) -> dict:
        """The fitted state as CPU tensors and plain values (what :meth:`load_state_dict` takes)."""
        self._check_fitted()
        state = {k: getattr(self, k).cpu() for k in self.FITTED}
        state.update(grid=list(self.grid_), input_size=list(self.input_size_), num_classes=self.num_classes_,
                     model_fingerprint=self.model_fingerprint_)
        return state

    def load_state_dict(self, state: Mapping) -> "ExplanationMaps":
        """Restore a :meth:`state_dict` (checks the parameters and moves the prototypes to ``device_``).

        Explaining with it then checks that the model is the one the prototypes were fitted on.
        """
        self.prepare()
        missing = [k for k in (*self.FITTED, "grid", "input_size", "num_classes") if k not in state]
        if missing:
            raise KeyError(f"not a state_dict of ExplanationMaps: {missing} missing")
        for k in self.FITTED:
            value = state[k]
            setattr(self, k, value.to(self.device_) if k in ("prototypes_", "prototype_classes_") else value)
        self.grid_, self.input_size_ = tuple(state["grid"]), tuple(state["input_size"])
        self.num_classes_ = int(state["num_classes"])
        # files written before the fingerprint was stored are keyed by the model's fingerprint,
        # so they belong to this model
        self.model_fingerprint_ = state.get("model_fingerprint") or model_fingerprint(self.model)
        return self

    # --- explaining ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "prototypes_"):
            raise RuntimeError(f"{self!r} is not fitted yet: call fit(dataset) first")

    def check_model(self) -> None:
        """Refuse to explain unless fitted, with the model the prototypes were fitted on (same weights)."""
        self._check_fitted()
        expected = getattr(self, "model_fingerprint_", None)
        if expected is not None and (now := model_fingerprint(self.model)) != expected:
            raise RuntimeError(
                f"{self!r}: its model is not the one its prototypes were fitted on (weights "
                f"fingerprint {now}, fitted on {expected}); fit the explainer again on this model")

    def assign(self, h: torch.Tensor) -> torch.Tensor:
        """Eq. 9: h-check (B, D, H', W') -> segments (B, H', W'), nearest prototype of each pixel."""
        self._check_fitted()
        if not isinstance(h, torch.Tensor) or h.ndim != 4 or h.shape[1] != self.prototypes_.shape[1]:
            got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"h must be composite features (B, {self.prototypes_.shape[1]}, H', W') "
                             f"for the prototypes of {self!r}, got {got}")
        check_finite_rows("h (the composite features)", h)
        b, d, hh, ww = h.shape
        labels, _ = assign(h.permute(0, 2, 3, 1).reshape(-1, d), self.prototypes_, self.chunk_size)
        return labels.view(b, hh, ww)

    def explain_features(self, h: torch.Tensor) -> ExplanationMap:
        """Explanation map, counts and eq. 10 scores of h-check (B, D, H', W')."""
        seg = self.assign(h)
        k = len(self.prototypes_)
        counts = torch.stack([torch.bincount(s.flatten(), minlength=k) for s in seg])
        return ExplanationMap(seg, counts, class_scores(counts, self.k_per_class), self.prototype_classes_)

    def explain_activations(self, acts: Mapping[str, torch.Tensor]) -> ExplanationMap:
        """Explanation from captured block outputs (to share one forward pass between block sets)."""
        return self.explain_features(self.features_from(acts))

    def explain(self, x: torch.Tensor) -> ExplanationMap:
        """Explanation of a batch of images x (B, 3, H, W), of the size the explainer was fitted on.

        Images holding NaN or infinities are refused, naming them (they would otherwise all go
        to prototype 0).
        """
        self.check_model()
        check_images("x", x, size=getattr(self, "input_size_", None))
        with torch.no_grad():
            return self.explain_features(self._features(x))

    def explain_dataset(self, dataset: Dataset, indices: Sequence[int] | None = None) -> ExplanationMap:
        """Explanations of a whole dataset (or ``indices``), batched; returned on the CPU."""
        return explain_dataset_all({self.name: self}, dataset, indices)[0][self.name]

    def predict(self, data: Dataset | torch.Tensor) -> torch.Tensor:
        """Eq. 10 predictions (N,) of a batch of images or of a dataset (on the CPU)."""
        if isinstance(data, torch.Tensor):
            return self.explain(data).prediction.cpu()
        return self.explain_dataset(data).prediction

    def score(self, dataset: Dataset) -> float:
        """Top-1 accuracy of the eq. 10 prediction on ``dataset``, as a fraction (scikit-learn's ``score``)."""
        targets = check_dataset("dataset", dataset)
        return (self.predict(dataset) == targets).float().mean().item()


@dataclass
class MultiExplanation:
    """Several block sets on one batch: maps {name: ExplanationMap}, the captured block outputs
    {layer: (B, D_b, H_b, W_b)} and the model's logits (B, C), all from one forward pass."""

    maps: dict[str, ExplanationMap]
    activations: dict[str, torch.Tensor]
    logits: torch.Tensor


def _shared(explainers: Mapping[str, ExplanationMaps]) -> ExplanationMaps:
    if not isinstance(explainers, Mapping) or not explainers:
        raise ValueError(f"explainers must be a non-empty dict {{name: ExplanationMaps}}, got {explainers!r}")
    if not all(isinstance(e, ExplanationMaps) for e in explainers.values()):
        raise TypeError("explainers must map names to ExplanationMaps, got "
                        f"{sorted({type(e).__name__ for e in explainers.values()})}")
    if len({id(e.model) for e in explainers.values()}) != 1:
        raise ValueError("these explainers do not share one model")
    return next(iter(explainers.values()))


def explain_all(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor,
                extra_layers: Sequence[str] = ()) -> MultiExplanation:
    """Explain ``x`` with several fitted block sets of the same model in one forward pass
    (``extra_layers`` are captured too)."""
    check_ready(explainers, x)
    return _explain_all(explainers, x, extra_layers)


def check_ready(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor) -> ExplanationMaps:
    """Check that ``explainers`` are fitted, share one model that still has the weights they were
    fitted on, and that ``x`` is a finite batch of images of their input size; returns the first."""
    first = _shared(explainers)
    for ex in explainers.values():
        ex.check_model()
    check_images("x", x, size=getattr(first, "input_size_", None))
    return first


@torch.no_grad()
def _explain_all(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor,
                 extra_layers: Sequence[str] = ()) -> MultiExplanation:
    """:func:`explain_all` without the checks (done once per dataset by the callers that batch)."""
    first = next(iter(explainers.values()))
    layers = sorted({n for e in explainers.values() for n in e.layers} | set(extra_layers))
    with capture(first.model, layers) as acts:
        logits = first.model(x.to(first.device_))
    return MultiExplanation({k: e.explain_activations(acts) for k, e in explainers.items()}, dict(acts), logits)


@torch.no_grad()
def class_activations(ex: ExplanationMaps, dataset: Dataset, idx: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """Block outputs {layer: (n, D_b, H_b, W_b)} of the images ``idx`` of ``dataset``, batched by ``ex``."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    start = 0
    for x, _ in ex.batches(dataset, idx.tolist()):
        _check_dataset_batch(x, idx[start:start + len(x)])
        start += len(x)
        with capture(ex.model, layers) as acts:
            ex.model(x.to(ex.device_))
        for n in layers:
            out[n].append(acts[n])
    return {n: torch.cat(v) for n, v in out.items()}


def _check_dataset_batch(x: torch.Tensor, positions, size=None) -> None:
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


def fit_all(explainers: Mapping[str, ExplanationMaps], dataset: Dataset,
            num_classes: int | None = None) -> dict[str, ExplanationMaps]:
    """Fit several block sets of one model with one forward pass per class (same image subsets).

    The explainers must agree on ``max_images_per_class`` and ``random_state`` (the images of a
    class are drawn once for all of them). Only public steps of :class:`ExplanationMaps` are used.
    Returns the explainers, fitted.
    """
    first = _shared(explainers)
    for ex in explainers.values():
        ex.prepare()
    if len({(e.max_images_per_class, e.random_state) for e in explainers.values()}) != 1:
        raise ValueError("fit_all needs one max_images_per_class and one random_state for all explainers")
    targets = check_dataset("dataset", dataset)
    check_int("num_classes", num_classes, 1, allow_none=True)
    num_classes = num_classes or len(getattr(dataset, "classes", [])) or int(targets.max()) + 1
    check_labels("dataset.targets", targets, num_classes)
    layers = sorted({n for e in explainers.values() for n in e.layers})
    fits: dict[str, list[ClassFit]] = {k: [] for k in explainers}
    names = "+".join(explainers)
    in_memory = any(e.kmeans_backend != "streaming" for e in explainers.values())
    for c in tqdm(range(num_classes), desc=f"{names} k-means", disable=not first.progress):
        idx = first.class_images(targets, c)
        acts = class_activations(first, dataset, idx, layers) if in_memory else None
        for k, ex in explainers.items():
            fits[k].append(ex.fit_class(c, idx, activations=acts, dataset=dataset))
    size = tuple(dataset[0][0].shape[-2:])
    return {k: ex.set_prototypes(fits[k], size) for k, ex in explainers.items()}


def explain_dataset_all(explainers: Mapping[str, ExplanationMaps], dataset: Dataset,
                        indices: Sequence[int] | None = None) -> tuple[dict[str, ExplanationMap], torch.Tensor]:
    """Explanations of a dataset (or ``indices``) by several block sets, one forward pass per
    batch: ({name: ExplanationMap}, logits (N, C)), on the CPU."""
    first = _shared(explainers)
    for ex in explainers.values():
        ex.check_model()
    if len(dataset) == 0:
        raise ValueError("dataset is empty: it holds no image to explain")
    positions = torch.arange(len(dataset)) if indices is None else torch.as_tensor(list(indices), dtype=torch.long)
    if len(positions) == 0:
        raise ValueError("indices is empty: nothing to explain")
    parts: dict[str, list[tuple]] = {k: [] for k in explainers}
    logits = []
    start = 0
    for x, _ in first.batches(dataset, indices, desc="explanation maps"):
        _check_dataset_batch(x, positions[start:start + len(x)], getattr(first, "input_size_", None))
        start += len(x)
        multi = _explain_all(explainers, x)  # block outputs are dropped after each batch
        for k, m in multi.maps.items():
            parts[k].append((m.segments.cpu(), m.counts.int().cpu(), m.scores.cpu()))
        logits.append(multi.logits.float().cpu())
    maps = {k: ExplanationMap(*(torch.cat(t) for t in zip(*parts[k])), explainers[k].prototype_classes_.cpu())
            for k in explainers}
    return maps, torch.cat(logits)


__all__ = [
    "class_scores", "ExplanationMap", "ClassFit", "ExplanationMaps", "MultiExplanation", "check_ready", "explain_all",
    "fit_all", "class_activations", "explain_dataset_all",
]
