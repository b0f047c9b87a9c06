"""ROAD (Rong et al., ICML 2022): remove pixels by a map's order, fill them by noisy linear
imputation, and read the class score again; pytorch-grad-cam's implementation, with ties broken.

ROAD fills each removed pixel with the weighted mean of its eight neighbours (one sparse solve
per image) plus a little noise, so that the shape of the hole tells the network nothing. We use
pytorch-grad-cam's ``ROADCombined`` and its two averagers as they are (``MoRF``: most relevant
first; ``LeRF``: least relevant first); only the map handed to them is prepared here:

* Ties. grad-cam keeps the pixels strictly below ``np.percentile(map, p)``, so on a piecewise-
  constant map (k-means segments, a 7x7 grid) a tied level is removed whole: far more than the
  nominal ``100 - p`` %. :func:`untie` replaces a map by the rank of each pixel, ties put in a
  seeded random order (as the authors' own code does with 1e-4 jitter), which keeps the order
  of distinct values and removes exactly the nominal share.
* Scale. Maps are brought to the image size bilinearly, then ranked: only their order counts.

Signs (grad-cam's): each score is the class probability after removal minus before. MoRF is
better when more negative, LeRF when near 0 or positive; ``combined = (LeRF - MoRF) / 2`` is
higher for a more faithful map and about 0 for a map that says nothing.
Cost: 2 x len(percentiles) sparse solves per image (about 4 s per 224 px image for four).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from protolib.core.extras import require
from protolib.evaluation.faithfulness import to_size

PERCENTILES = (20, 40, 60, 80)


def untie(maps: torch.Tensor, seed: int = 0) -> np.ndarray:
    """Ranks (B, H, W) in [0, 1] of each map's pixels, equal values in a seeded random order.

    Pixel order by value is kept; a pixel's rank is its position divided by ``H * W - 1``, so
    every value is distinct and grad-cam's percentile threshold removes the nominal share.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, H, W), got shape {tuple(maps.shape)}")
    flat = maps.detach().double().cpu().flatten(1).numpy()
    rng = np.random.default_rng(seed)
    ranks = np.empty_like(flat, dtype=np.float32)
    n = flat.shape[1]
    for i, row in enumerate(flat):
        order = np.lexsort((rng.random(n), row))  # by value, then by a random key among equals
        ranks[i, order] = np.arange(n, dtype=np.float32) / max(n - 1, 1)
    return ranks.reshape(maps.shape)


def _targets(targets: torch.Tensor, probability: bool) -> list:
    model_targets = require("pytorch_grad_cam.utils.model_targets", "ROAD (protolib.evaluation.road)")
    kind = model_targets.ClassifierOutputSoftmaxTarget if probability else model_targets.ClassifierOutputTarget
    return [kind(int(c)) for c in targets]


def road(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, targets: int | torch.Tensor,
         percentiles: Sequence[int] = PERCENTILES, seed: int = 0, probability: bool = True,
         batch_size: int = 16, progress: bool = False) -> dict[str, torch.Tensor]:
    """{"ROAD combined", "ROAD MoRF", "ROAD LeRF"}: (B,) scores of ``maps`` (B, h, w) for the classes
    ``targets`` (one class index per image, or one for all).

    ``model`` returns logits (B, C); ``probability`` scores the softmax (grad-cam's tutorial), else
    the logit. MoRF and LeRF are averaged over ``percentiles`` by ``ROADCombined``'s own averagers;
    the imputation noise and the tie order come from ``seed``, so the same seed gives the same scores.
    """
    road_metrics = require("pytorch_grad_cam.metrics.road", "ROAD (protolib.evaluation.road)")
    if x.ndim != 4 or maps.ndim != 3 or len(maps) != len(x):
        raise ValueError(f"need images (B, 3, H, W) and maps (B, h, w) of one batch, got {tuple(x.shape)} "
                         f"and {tuple(maps.shape)}")
    targets = torch.as_tensor(targets).long().expand(len(x))
    metric = road_metrics.ROADCombined(percentiles=list(percentiles))
    ranks = untie(to_size(maps.float().cpu(), tuple(x.shape[-2:]), mode="bilinear"), seed)
    morf, lerf = [], []
    was_training = model.training
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for s in tqdm(range(0, len(x), batch_size), desc="ROAD", disable=not progress, leave=False):
            xb, cb, tb = x[s:s + batch_size], ranks[s:s + batch_size], _targets(targets[s:s + batch_size], probability)
            lerf.append(torch.as_tensor(metric.lerf_averager(xb, cb, tb, model)))  # grad-cam's order: LeRF first
            morf.append(torch.as_tensor(metric.morf_averager(xb, cb, tb, model)))
    model.train(was_training)
    morf_t, lerf_t = torch.cat(morf).double().flatten(), torch.cat(lerf).double().flatten()
    return {"ROAD combined": (lerf_t - morf_t) / 2, "ROAD MoRF": morf_t, "ROAD LeRF": lerf_t}


def road_all(model: nn.Module, maps: dict[str, torch.Tensor], x: torch.Tensor, targets: int | torch.Tensor,
             percentiles: Sequence[int] = PERCENTILES, seed: int = 0, progress: bool = True
             ) -> dict[str, dict[str, torch.Tensor]]:
    """:func:`road` of every method's maps on the same images (same seed): {method: scores}."""
    return {name: road(model, x, m, targets, percentiles, seed)
            for name, m in tqdm(maps.items(), desc="ROAD", disable=not progress)}


__all__ = ["PERCENTILES", "untie", "road", "road_all"]
