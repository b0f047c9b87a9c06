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

The block-set names and eq. 7-8 live in :mod:`protolib.method.explain.blocks`, the result type in
:mod:`.maps_result`, the per-class fitting steps in :mod:`.maps_fit` and several block sets of
one model at once in :mod:`.maps_multi`.
Nothing holds every pixel of a dataset: features are computed class by class (optionally on a
seeded subset of images and pixels), k-means runs on the device of the model, and assignment
goes in batches of images and chunks of pixels. The model is run where it is, in evaluation mode,
and keeps its device and its modes (:mod:`protolib.core.inference`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from protolib.core import config
from protolib.core.checks import (
    check_choice,
    check_dataset,
    check_finite_rows,
    check_images,
    check_int,
    check_number,
    check_size,
)
from protolib.core.gap import UnsupportedHeadError
from protolib.core.hooks import capture, get_layer
from protolib.core.inference import evaluating, run_device
from protolib.core.models import model_fingerprint
from protolib.method.explain.block_assign import nearest_prototypes
from protolib.method.explain.blocks import NORMS, block_set_name, composite, resolve_blocks
from protolib.method.explain.kmeans import assign
from protolib.method.explain.kmeans_backends import BACKENDS
from protolib.method.explain.maps_fit import ClassFitting
from protolib.method.explain.maps_multi import explain_dataset_all, fit_all
from protolib.method.explain.maps_result import ExplanationMap, class_scores


class ExplanationMaps(ClassFitting):
    """Class-wise k-means prototypes on composite pixel features of ``model`` (eq. 6-10).

    Parameters
    ----------
    model : a CNN; block sets need its GAP + linear head (explicit layer names work on any CNN).
    blocks : ``"B4"``, ``"B34"``, ``"B234"`` (the model's last one, two, three stages, see
        :func:`protolib.method.explain.blocks.resolve_blocks`) or a list of dotted layer names.
    k_per_class : K/C prototypes per class (paper: 5 for MNIST and STL-10, 10 for CUB).
    norm : ``"pixel"`` or ``"block"`` (eq. 8, see the module docstring).
    size : shared grid R' as ``(H', W')``; ``None`` = the grid of the shallowest block.
    n_init, max_iter, tol : k-means settings (see :func:`protolib.method.explain.kmeans.kmeans`).
    kmeans_backend : ``"exact"`` (default), ``"faiss"`` or ``"streaming"`` (see
        :mod:`protolib.method.explain.kmeans_backends`); every class is clustered by it, with the same seeds.
        ``"streaming"`` reads a class's pixel vectors one forward pass (``batch_size`` images) at
        a time and never holds the class; it does not take ``max_pixels_per_class``.
    max_images_per_class, max_pixels_per_class : optional seeded subsets used to fit k-means.
    batch_size, chunk_size : images per forward pass; pixel rows per distance block.
    random_state : seed; the seed of class c is derived from (random_state, c).
    device : where the model runs and k-means is computed: the device of the model's weights, which
        ``device`` may name but not change (the explainer never moves the model: move it first).

    As in scikit-learn, ``__init__`` only stores the parameters; they are checked, and ``device_``
    is set to the model's device, when the explainer is fitted or loaded
    (:meth:`fit`, :meth:`fit_features`, :meth:`load_state_dict`). A fit is a sequence of public
    per-class steps (:mod:`.maps_fit`), which :func:`.maps_multi.fit_all` runs for several block sets of one model at once:
    :meth:`prepare` (checks), :meth:`class_images` (the images of class c used), :meth:`fit_class` (its prototypes from
    captured block outputs, or streamed) and :meth:`set_prototypes` (the fitted attributes).
    :meth:`state_dict` and :meth:`load_state_dict` save and restore a fit.

    Fitted attributes: ``device_``, ``prototypes_`` (K, D), ``prototype_classes_`` (K,), ``num_classes_``,
    ``grid_`` (H', W'), ``input_size_`` (H, W) (images explained later must have this size),
    ``model_fingerprint_`` (of the model's weights; explaining with changed weights is refused),
    ``inertia_`` (C,), ``n_fit_pixels_`` (C,),
    ``patch_index_`` (K, 3) = (dataset index, row, col) of the training pixel nearest to each
    prototype (searched among all pixels of the prototype's class), ``patch_distance_`` (K,).

    >>> import torchvision
    >>> from protolib import ExplanationMaps, load
    >>> model = torchvision.models.resnet18(num_classes=10).eval()
    >>> b234 = ExplanationMaps(model, "B234", k_per_class=2, max_images_per_class=4, progress=False)
    >>> b234 = b234.fit(load("digits", "train"))  # 2 prototypes per class, 4 images per class
    >>> tuple(b234.prototypes_.shape), b234.grid_   # layer2..4 channels concatenated on layer2's grid
    ((20, 896), (4, 4))
    >>> found = b234.explain(load("digits", "test")[0][0][None].to(b234.device_))
    >>> tuple(found.segments.shape), tuple(found.prediction.shape)
    ((1, 4, 4), (1,))
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
        return resolve_blocks(self.blocks, self.model)

    @property
    def name(self) -> str:
        """The block set's name (``"B234"``), or its layer names joined by ``+``."""
        if isinstance(self.blocks, str) and self.blocks.startswith("B") and self.blocks[1:].isdigit():
            return self.blocks
        try:
            return block_set_name(self.layers, self.model)
        except UnsupportedHeadError:  # explicit layers of a model without a GAP + linear head
            return "+".join(self.layers)

    def prepare(self) -> None:
        """Step 0: check the parameters, then set ``device_``, the device of the model's weights.

        :meth:`fit`, :func:`.maps_multi.fit_all` and :meth:`load_state_dict` call it; a hand-run fit calls it first."""
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
        self.device_ = run_device(self.model, self.device)

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
        return composite(self._blocks(acts), self.size, self.norm)

    def _blocks(self, acts: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The outputs of this explainer's blocks, in order, from captured ``acts``."""
        missing = [n for n in self.layers if n not in acts]
        if missing:
            raise KeyError(f"block outputs {missing} were not captured")
        return [acts[n] for n in self.layers]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h-check (B, D, H', W') of a batch of images x (B, 3, H, W) (one forward pass)."""
        if not hasattr(self, "device_"):
            self.prepare()
        return self._features(check_images("x", x))

    def _activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The block outputs of one forward pass of ``x`` (the model in evaluation mode meanwhile)."""
        with evaluating(self.model), capture(self.model, self.layers) as acts:
            self.model(x.to(self.device_))
        return acts

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_from(self._activations(x))

    def batches(self, dataset: Dataset, indices: Sequence[int] | None = None, desc: str = ""):
        """The images (and labels) of ``dataset`` (or of its ``indices``), ``batch_size`` at a time."""
        subset = dataset if indices is None else Subset(dataset, list(indices))
        loader = config.make_loader(subset, self.batch_size, self.device_)
        yield from tqdm(loader, desc=desc, disable=not self.progress, leave=False)

    def fit(self, dataset: Dataset, num_classes: int | None = None) -> "ExplanationMaps":
        """Class-wise k-means on the pixel vectors of ``dataset`` (evaluation transforms, ``.targets``)."""
        fit_all({self.name: self}, dataset, num_classes)
        return self


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

    def _explanation(self, seg: torch.Tensor) -> ExplanationMap:
        """Segments (B, H', W') with their counts and eq. 10 scores."""
        k = len(self.prototypes_)
        counts = torch.stack([torch.bincount(s.flatten(), minlength=k) for s in seg])
        return ExplanationMap(seg, counts, class_scores(counts, self.k_per_class), self.prototype_classes_)

    def explain_features(self, h: torch.Tensor) -> ExplanationMap:
        """Explanation map, counts and eq. 10 scores of h-check (B, D, H', W')."""
        return self._explanation(self.assign(h))

    def explain_activations(self, acts: Mapping[str, torch.Tensor]) -> ExplanationMap:
        """Explanation from captured block outputs (to share one forward pass between block sets),
        eq. 9 computed block by block at each block's own grid without building h-check
        (:func:`.block_assign.nearest_prototypes`: 4x fewer FLOPs for B234)."""
        self._check_fitted()
        return self._explanation(nearest_prototypes(self._blocks(acts), self.prototypes_, self.size, self.norm))

    def explain(self, x: torch.Tensor) -> ExplanationMap:
        """Explanation of a batch of images x (B, 3, H, W), of the size the explainer was fitted on.

        Images holding NaN or infinities are refused, naming them (they would otherwise all go
        to prototype 0).
        """
        self.check_model()
        check_images("x", x, size=getattr(self, "input_size_", None))
        with torch.no_grad():
            return self.explain_activations(self._activations(x))

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


__all__ = ["ExplanationMaps"]
