"""The maps of every compared method on one batch, for the class ``targets[i]`` of each image.

* ours: eq. 11 at the last block (B4) and propagated to B34 and B234 (:mod:`protolib.method.explain.cam`);
* Grad-CAM at the last stage (the grid of B4) and at the first block of B234 (``layer4`` and
  ``layer2`` of a ResNet; the stages are found from the model, :mod:`protolib.core.stages`) through
  Captum;
* Deep Feature Factorization (Collins et al. 2018) from pytorch-grad-cam: non-negative matrix
  factorisation of one layer's activations over the whole batch into concepts; its segments are
  the strongest concept of each pixel, and at the last stage its class map is eq. 11 applied to
  the factorisation, sum_k H_k (c_j . W_k) / ||c_j||^2 (the offset that DFF subtracts adds a
  constant and is left out);
* baselines that ignore the model (:mod:`.baselines`).

Every function takes the network as an argument, so the randomisation check can pass a
randomised copy; the prototypes of ``explainers`` stay those fitted on the trained network.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from protolib.core.extras import require
from protolib.core.gap import gap_split
from protolib.core.hooks import capture
from protolib.core.stages import stages
from protolib.evaluation import baselines
from protolib.method.explain import cam
from protolib.method.explain.blocks import resolve_blocks
from protolib.method.explain.maps import ExplanationMaps


def head_name(model: nn.Module) -> str:
    """Dotted name of the linear classifier of a GAP + linear ``model`` (``fc`` for ResNets)."""
    return gap_split(model).head_name


def ours(explainers: Mapping[str, ExplanationMaps], net: nn.Module, x: torch.Tensor, targets: torch.Tensor,
         head: str | None = None) -> dict[str, torch.Tensor]:
    """{"ours B4": (B, 2, 2), "ours B34": ..., "ours B234": ...} for ``net`` (the explainers' model
    or a copy of it with other weights); ``head`` is the dotted name of its classifier (default:
    that of the explainers' model). The encoder output is found on the explainers' model."""
    model = next(iter(explainers.values())).model
    last = cam.encoder_output_layer(model)
    layers = {n for e in explainers.values() for n in e.layers}
    acts, h = cam.forward_capture(net, x, layers, last)
    head_layer = net.get_submodule(head_name(model) if head is None else head)
    imp = cam.importance_from_activations(explainers, acts, head_layer, targets, last, h)
    return {f"ours {k}": v.cpu() for k, v in imp.maps.items()}


def layers(model: nn.Module) -> tuple[str, str]:
    """The two layers the other methods look at: the last stage (the grid of B4) and the first
    block of B234 (the grid of B234); ``("layer4", "layer2")`` on a ResNet."""
    return stages(model)[-1], resolve_blocks("B234", model)[0]


@dataclass
class DFF:
    """Deep Feature Factorization of one batch at one layer: ``concept_maps`` (B, K, h, w) (the
    NMF loadings H), ``concepts`` (D, K) (W, without the per-channel offset that DFF subtracts
    before the factorisation and adds to the concepts it returns), ``segments`` (B, h, w) (the
    strongest concept of each pixel)."""

    concept_maps: torch.Tensor
    concepts: torch.Tensor

    @property
    def segments(self) -> torch.Tensor:
        return self.concept_maps.argmax(1)

    def class_map(self, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """sum_k H_k (c_j . W_k) / ||c_j||^2 for the class ``targets[i]`` of each image: (B, h, w)."""
        w = weight.detach().double().cpu()
        scores = (w @ self.concepts) / (w * w).sum(1, keepdim=True)  # (C, K)
        return torch.einsum("bkhw,bk->bhw", self.concept_maps, scores[targets.cpu()]).float()


def dff(net: nn.Module, x: torch.Tensor, layer: str | None = None, n_components: int = 8) -> DFF:
    """DFF of the batch ``x`` at ``layer`` (default: the last stage of ``net``) with pytorch-grad-cam's
    ``dff`` (NMF, random init, seed 0)."""
    grad_cam_dff = require("pytorch_grad_cam.feature_factorization.deep_feature_factorization",
                           "Deep Feature Factorization (protolib.evaluation.methods.dff)").dff
    from sklearn.exceptions import ConvergenceWarning

    layer = stages(net)[-1] if layer is None else layer
    with torch.no_grad(), capture(net, [layer]) as acts:
        net(x)
    a = acts[layer].detach().cpu().double().numpy().copy()
    offset = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1).min(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        concepts, maps = grad_cam_dff(a, n_components=n_components)
    return DFF(torch.from_numpy(maps.copy()), torch.from_numpy(concepts - offset[:, None]))


def compare(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor, targets: int | torch.Tensor,
            net: nn.Module | None = None, n_components: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every method's map (B, h, w) on its own grid for the batch ``x`` and the classes ``targets``
    (one class index per image, or one for all), on the CPU.

    ``net`` defaults to the explainers' model; Grad-CAM and DFF are labelled by their layer
    (:func:`layers`: ``"Grad-CAM layer4"``, ``"Grad-CAM layer2"``, ``"DFF layer4"`` on a ResNet); the baselines are a random map per cell of the
    B234 grid, a random map per pixel and a centred Gaussian.
    """
    first = next(iter(explainers.values()))
    net = first.model if net is None else net
    x = x.to(first.device_)
    targets = torch.as_tensor(targets, device=x.device).long().expand(len(x))
    out = ours(explainers, net, x, targets)
    last, first_b234 = layers(first.model)
    for layer in (last, first_b234):
        out[f"Grad-CAM {layer}"] = cam.grad_cam(net, x, targets, layer=layer).cpu()
    weight = net.get_submodule(head_name(first.model)).weight
    out[f"DFF {last}"] = dff(net, x, last, n_components).class_map(weight, targets)
    grid = max((v.shape[-2:] for v in out.values()), key=lambda s: s[0] * s[1])
    out[f"random {grid[0]} x {grid[1]}"] = baselines.random_map(len(x), tuple(grid), seed)
    out["random per pixel"] = baselines.random_map(len(x), tuple(x.shape[-2:]), seed + 1)
    out["centred Gaussian"] = baselines.centred_gaussian(len(x), tuple(x.shape[-2:]))
    return out


def segments(explainers: Mapping[str, ExplanationMaps], x: torch.Tensor, n_components: int = 8,
             dff_layers: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """Segments (B, h, w) of our explanation maps and of DFF (one NMF over the batch per layer, by
    default at :func:`layers`), on the CPU."""
    first = next(iter(explainers.values()))
    dff_layers = layers(first.model) if dff_layers is None else dff_layers
    x = x.to(first.device_)
    with torch.no_grad():
        out = {f"ours {n}": e.explain(x).segments.cpu() for n, e in explainers.items()}
    for layer in dff_layers:
        out[f"DFF {layer}"] = dff(first.model, x, layer, n_components).segments
    return out


__all__ = ["head_name", "ours", "layers", "DFF", "dff", "compare", "segments"]
