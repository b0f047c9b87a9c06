"""Several block sets of one model at once: one forward pass per batch for all of them.

:func:`fit_all` fits them with one forward pass per class, :func:`explain_all` explains a batch
and :func:`explain_dataset_all` a dataset, each sharing the captured block outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protolib.core.checks import check_dataset, check_images, check_int, check_labels
from protolib.core.hooks import capture
from protolib.core.inference import evaluating
from protolib.method.explain.maps_fit import ClassFit, ClassFitting, check_dataset_batch
from protolib.method.explain.maps_result import ExplanationMap

if TYPE_CHECKING:  # maps builds on this module; at run time an explainer is known by its fitting steps
    from protolib.method.explain.maps import ExplanationMaps


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
    if not all(isinstance(e, ClassFitting) for e in explainers.values()):
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
    with evaluating(first.model), capture(first.model, layers) as acts:
        logits = first.model(x.to(first.device_))
    return MultiExplanation({k: e.explain_activations(acts) for k, e in explainers.items()}, dict(acts), logits)


@torch.no_grad()
def class_activations(ex: ExplanationMaps, dataset: Dataset, idx: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """Block outputs {layer: (n, D_b, H_b, W_b)} of the images ``idx`` of ``dataset``, batched by ``ex``."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    start = 0
    for x, _ in ex.batches(dataset, idx.tolist()):
        check_dataset_batch(x, idx[start:start + len(x)])
        start += len(x)
        with evaluating(ex.model), capture(ex.model, layers) as acts:
            ex.model(x.to(ex.device_))
        for n in layers:
            out[n].append(acts[n])
    return {n: torch.cat(v) for n, v in out.items()}


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
        check_dataset_batch(x, positions[start:start + len(x)], getattr(first, "input_size_", None))
        start += len(x)
        multi = _explain_all(explainers, x)  # block outputs are dropped after each batch
        for k, m in multi.maps.items():
            parts[k].append((m.segments.cpu(), m.counts.int().cpu(), m.scores.cpu()))
        logits.append(multi.logits.float().cpu())
    maps = {k: ExplanationMap(*(torch.cat(t) for t in zip(*parts[k])), explainers[k].prototype_classes_.cpu())
            for k in explainers}
    return maps, torch.cat(logits)


__all__ = ["MultiExplanation", "check_ready", "explain_all", "fit_all", "class_activations", "explain_dataset_all"]
