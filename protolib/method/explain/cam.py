"""Gradient-free feature importance (paper eq. 11) and its upward propagation; Grad-CAM beside it.

At the last block (the encoder output h, just before global average pooling), the importance of
pixel h_wh for class j is its alignment with the classifier column c_j,

    att(h_wh, c_j) = h_wh . c_j / ||c_j||^2                         (eq. 11)

so att(c_j, c_j) = 1, values are comparable across classes, and, for a bias-free head, the mean
of the map over pixels is logit_j / ||c_j||^2 (Theorem 1). It is CAM (Zhou et al. 2016) with the
class weight rescaled by 1/||c_j||^2.

Shallower maps come without gradients: the map of depth b+1 is upsampled (bilinear,
``align_corners=False``) to the grid of depth b and averaged within each segment of the
explanation map at depth b (the pixels assigned to one prototype), which makes it constant on
every segment. With block sets B4 -> B34 -> B234 this walks up one block at a time, as in the
paper; a skipped step (B4 -> B234 directly) is allowed and is a variant.

Grad-CAM (Selvaraju et al. 2017) through Captum's ``LayerGradCam`` is the gradient-based
comparison. On a GAP + linear network at the last block, Grad-CAM is ReLU(att * ||c_j||^2 / R).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from protolib.core.checks import check_class_targets
from protolib.core.extras import require
from protolib.core.gap import gap_split
from protolib.core.hooks import capture, get_layer
from protolib.core.stages import stage_info
from protolib.method.explain.blocks import resolve_blocks
from protolib.method.explain.maps import ExplanationMaps
from protolib.method.explain.maps_multi import check_ready
from protolib.method.explain.maps_result import ExplanationMap


def attribution(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Eq. 11 for every class: h (B, D, H, W), weight (C, D) -> (B, C, H, W)."""
    if h.ndim != 4 or weight.ndim != 2 or h.shape[1] != weight.shape[1]:
        raise ValueError(f"h must be (B, D, H, W) and weight (C, D), got {tuple(h.shape)} and {tuple(weight.shape)}")
    w = weight.to(h)
    return torch.einsum("bdhw,cd->bchw", h, w / (w * w).sum(1, keepdim=True))


@torch.no_grad()
def last_block_attribution(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 11 at the encoder output of a GAP + linear ``model``: (att (B, C, H, W), logits (B, C))."""
    split = gap_split(model)
    h = split.features(x)
    return attribution(h, split.head.weight), split.head(h.mean((2, 3)))


def segment_average(values: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Replace each value by the mean over its segment: values (B, H, W), segments (B, H, W) long."""
    if values.shape != segments.shape:
        raise ValueError(f"values {tuple(values.shape)} and segments {tuple(segments.shape)} differ in shape")
    b = values.shape[0]
    seg = segments.reshape(b, -1)
    vals = values.reshape(b, -1)
    k = int(seg.max()) + 1
    sums = torch.zeros(b, k, dtype=vals.dtype, device=vals.device).scatter_add_(1, seg, vals)
    counts = torch.zeros(b, k, dtype=vals.dtype, device=vals.device).scatter_add_(1, seg, torch.ones_like(vals))
    return (sums / counts.clamp_min(1)).gather(1, seg).view_as(values)


def propagate(att: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """One step up: att (B, h, w) of depth b+1 and segments (B, H, W) of depth b -> (B, H, W)."""
    up = att
    if tuple(att.shape[-2:]) != tuple(segments.shape[-2:]):
        up = F.interpolate(att.unsqueeze(1), size=segments.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return segment_average(up, segments)


def propagate_chain(att: torch.Tensor, segments: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Walk ``att`` (B, h, w) up through explanation maps ordered deep -> shallow; one map per step."""
    out = []
    for seg in segments:
        att = propagate(att, seg)
        out.append(att)
    return out


@dataclass
class Importance:
    """Importance maps of a batch for the classes ``targets`` (B,), one class index per image.

    att: (B, C, h, w) eq. 11 at the last block for every class; logits: (B, C);
    maps: {block set: (B, H_b, W_b)} for each image's class in ``targets``, the block set of the encoder output
    alone (``"B4"``) being eq. 11 itself; explanations: {block set: ExplanationMap}.
    """

    targets: torch.Tensor
    logits: torch.Tensor
    att: torch.Tensor
    maps: dict[str, torch.Tensor]
    explanations: dict[str, ExplanationMap]


def encoder_output_layer(model: nn.Module) -> str | None:
    """The dotted name of the module whose captured output is the encoder output h of ``model``
    (its last stage, ``layer4`` on a ResNet), or ``None`` when h is no module's output."""
    return stage_info(model).encoder_output


@torch.no_grad()
def forward_capture(net: nn.Module, x: torch.Tensor, layers: Sequence[str],
                    last_layer: str | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The outputs {layer: tensor} of ``layers`` and the encoder output h of ``net`` for ``x``: one
    forward pass capturing ``last_layer`` as h, or, when it is ``None``, a second pass through the
    encoder of the GAP split (:func:`protolib.core.gap.gap_split`)."""
    wanted = sorted(set(layers) | ({last_layer} if last_layer is not None else set()))
    with capture(net, wanted) as acts:
        net(x)
    h = acts[last_layer] if last_layer is not None else gap_split(net).features(x)
    return dict(acts), h


@torch.no_grad()
def importance_maps(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor,
                    targets: int | torch.Tensor | None = None, last_layer: str | None = None) -> Importance:
    """Explanation and importance maps of ``x`` for every fitted block set, in one forward pass.

    ``explainers`` share one model; they are walked from the smallest grid to the largest (e.g.
    B4, B34, B234), each step propagating the previous importance map onto its segments.
    ``last_layer`` is the module whose output is the encoder output h; by default it is found
    from the model (:func:`encoder_output_layer`: ``layer4`` for ResNets).
    ``targets`` defaults to the CNN's predicted class; else an int (the same class for every image)
    or one class index per image, each in [0, C).

    >>> import torchvision
    >>> from protolib import ExplanationMaps, importance_maps, load
    >>> model = torchvision.models.resnet18(num_classes=10).eval()
    >>> fit = {b: ExplanationMaps(model, b, k_per_class=2, max_images_per_class=4, progress=False)
    ...        .fit(load("digits", "train")) for b in ("B4", "B234")}
    >>> x = load("digits", "test")[0][0][None].to(fit["B4"].device_)
    >>> imp = importance_maps(fit, x)   # eq. 11 at B4 (one cell at 32 px), propagated to B234
    >>> {k: tuple(v.shape) for k, v in imp.maps.items()}
    {'B4': (1, 1, 1), 'B234': (1, 4, 4)}
    """
    first = check_ready(explainers, x)
    if last_layer is None:
        last_layer = encoder_output_layer(first.model)
    else:
        get_layer(first.model, last_layer)
    head = gap_split(first.model).head
    targets = check_class_targets("targets", targets, len(x), head.out_features)
    layers = {n for e in explainers.values() for n in e.layers}
    acts, h = forward_capture(first.model, x.to(first.device_), layers, last_layer)
    return importance_from_activations(explainers, acts, head, targets, last_layer, h)


@torch.no_grad()
def importance_from_activations(explainers: Mapping[str, ExplanationMaps], acts: Mapping[str, torch.Tensor],
                                head: nn.Linear, targets: torch.Tensor | None = None,
                                last_layer: str | None = None, h: torch.Tensor | None = None) -> Importance:
    """:func:`importance_maps` from captured block outputs and a linear ``head`` (no checks).

    The prototypes are those of ``explainers``; the activations and the head may come from
    another network of the same shape (the randomisation check feeds a randomised copy).
    ``h`` is the encoder output (default: ``acts[last_layer]``); a block set of ``last_layer``
    alone gets eq. 11 itself, every other one the propagated map.
    ``targets``: (B,) class indices, or ``None`` for the class the head predicts.
    """
    if h is None:
        if last_layer is None:
            raise ValueError("importance_from_activations needs the encoder output: pass h= or last_layer=")
        h = acts[last_layer]
    outs = {n: e.explain_activations(acts) for n, e in explainers.items()}
    names = sorted(outs, key=lambda n: outs[n].segments.shape[-2] * outs[n].segments.shape[-1])
    att, logits = attribution(h, head.weight), head(h.mean((2, 3)))
    targets = logits.argmax(1) if targets is None else targets.to(h.device)
    current = att[torch.arange(len(h), device=h.device), targets]
    maps = {}
    for name in names:
        seg = outs[name].segments
        if last_layer is not None and explainers[name].layers == (last_layer,):
            maps[name] = current  # B4: eq. 11 itself
            continue
        current = propagate(current, seg)
        maps[name] = current
    return Importance(targets, logits, att, maps, {n: outs[n] for n in names})


def grad_cam(model: nn.Module, x: torch.Tensor, targets: int | torch.Tensor, layer: str | nn.Module | None = None,
             size: tuple[int, int] | None = None, relu: bool = True) -> torch.Tensor:
    """Grad-CAM of the classes ``targets`` (one class index per image, or one for all) at ``layer``
    through Captum: (B, h, w), or (B, *size) upsampled bilinearly.

    ``layer`` defaults to the first block of B234, the stage three from the end of the model
    (``layer2`` of a ResNet): the grid of the finest explanation map.
    """
    attr = require("captum.attr", "Grad-CAM (protolib.method.explain.cam.grad_cam)")
    LayerAttribution, LayerGradCam = attr.LayerAttribution, attr.LayerGradCam

    if layer is None:
        layer = resolve_blocks("B234", model)[0]
    module = get_layer(model, layer)[1]
    was_training = model.training
    model.eval()
    try:
        cam = LayerGradCam(model, module).attribute(x, target=targets, relu_attributions=relu)
    finally:
        model.train(was_training)
    if size is not None:
        cam = LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")
    return cam[:, 0].detach()


__all__ = ["attribution", "last_block_attribution", "segment_average", "propagate", "propagate_chain",
           "Importance", "encoder_output_layer", "forward_capture", "importance_maps", "importance_from_activations",
           "grad_cam"]
