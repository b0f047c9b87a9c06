"""Chapter 8's evaluation of one seed's explanation maps, plus ROAD and part consistency/stability.

Every method of :func:`protolib.evaluation.methods.compare` (ours B4/B34/B234, Grad-CAM at layer4
and layer2, DFF, a random map per cell of the finest grid, a random map per pixel, a centred
Gaussian; the blind map in the localisation table) is scored on a seeded subset of test images,
for the class the CNN predicts (as in chapter 8): deletion and insertion areas, localisation
(bird share, pointing game, deciding-part share), the randomisation cascade, part NMI/ARI of the
segments and ROAD. Consistency and stability (Huang et al.) use the true class, as they do.

The result is plain JSON: per-image values as lists (NaN as null), so that a reader can form
means and intervals within a seed and across seeds.
"""

from __future__ import annotations

import math

import torch

from protolib.evaluation import baselines, evaluate, methods, road
from protolib.evaluation import consistency as cs
from protolib.method.explain import part_scores
from protolib.reproduce.geometry.recipe import GeometryRecipe, check_image_size
from protolib.reproduce.table2_maps import eval_subset


def _plain(values):
    """Tensors and floats as JSON-ready lists / floats (NaN -> None), through nested dicts."""
    if isinstance(values, dict):
        return {str(k): _plain(v) for k, v in values.items()}
    if isinstance(values, torch.Tensor):
        values = values.detach().double().cpu().flatten().tolist() if values.numel() != 1 else float(values)
    if isinstance(values, list):
        return [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    if isinstance(values, float) and math.isnan(values):
        return None
    return values


def deciding_parts(test_set, labels) -> list:
    """Per image, the part ids that tell its class from its twin (None for a class without a twin)."""
    return [test_set.deciding_part_ids(int(c)) if int(test_set.nearest_class[int(c)]) != int(c) else None
            for c in labels]


def eval_batch(test_set, n: int, seed: int, recipe: GeometryRecipe):
    """A seeded subset of ``n`` test images: indices, images (checked against the recipe's size), masks."""
    idx = eval_subset(test_set, n, seed=seed) or list(range(len(test_set)))
    x = check_image_size(torch.stack([test_set[i][0] for i in idx]), recipe)
    masks = cs.check_masks(test_set.masks[idx], tuple(x.shape[-2:]), len(x))
    return idx, x, masks


def faithfulness(model, maps, x, targets, recipe: GeometryRecipe, seed: int, progress: bool) -> dict:
    """Deletion/insertion areas on ``n_curve`` images and ROAD on ``n_road`` (plus a constant map),
    for the classes ``targets``."""
    names = [k for k in maps if k != "random per pixel"]  # a per-pixel random order blurs nothing away
    n = recipe.n_curve
    areas = evaluate.areas(evaluate.curves(model, {k: maps[k][:n] for k in names}, x[:n], targets[:n],
                                           recipe.steps, "blur", progress))
    r = recipe.n_road
    road_maps = {k: maps[k][:r] for k in names}
    road_maps["constant"] = torch.ones(min(r, len(x)), *x.shape[-2:])  # says nothing: ROAD about 0
    if "ours B4" in maps:  # a random map as smooth as B4's grid: controls ROAD's bias for smooth maps
        g = tuple(maps["ours B4"].shape[-2:])
        road_maps[f"random {g[0]} x {g[1]}"] = baselines.random_map(min(r, len(x)), g, seed + 2)
    scores = road.road_all(model, road_maps, x[:r], targets[:r], recipe.road_percentiles, seed, progress)
    return {"areas": areas, "road": scores}


def part_alignment(explainers, x, masks, recipe: GeometryRecipe, seed: int) -> dict:
    """Part NMI/ARI of our segments, DFF's, a grid as fine as B234's, and shuffled B234 segments."""
    segs = methods.segments(explainers, x, n_components=recipe.n_concepts)
    grid = tuple(segs["ours B234"].shape[-2:]) if "ours B234" in segs else (8, 8)
    segs[f"grid {grid[0]} x {grid[1]}"] = part_scores.grid_segments(len(x), grid)
    if "ours B234" in segs:
        segs["shuffled ours B234"] = part_scores.shuffled(segs["ours B234"], seed=seed)
    return {k: part_scores.part_alignment(s, masks).as_row() for k, s in segs.items()}


def part_consistency(explainers, x, masks, labels, n_parts: int, recipe: GeometryRecipe, seed: int) -> dict:
    """Consistency and stability of every method's true-class map, and of our k-means segments."""
    noisy = cs.add_noise(x, seed=seed)
    clean_maps = methods.compare(explainers, x, labels, n_components=recipe.n_concepts, seed=seed)
    noisy_maps = methods.compare(explainers, noisy, labels, n_components=recipe.n_concepts, seed=seed)
    out = {k: cs.class_map_scores(clean_maps[k], noisy_maps[k], masks, labels, n_parts) for k in clean_maps}
    for name, ex in explainers.items():
        with torch.no_grad():
            a, b = ex.explain(x.to(ex.device_)).segments.cpu(), ex.explain(noisy.to(ex.device_)).segments.cpu()
        out[f"ours {name}"].update(cs.segment_scores(a, b, masks, labels, ex.k_per_class, n_parts))
    return out


def evaluate_seed(model, explainers, test_set, recipe: GeometryRecipe, seed: int, progress: bool = True) -> dict:
    """Every number of chapter 8 (and ROAD, consistency, stability) for one seed, JSON-ready."""
    idx, x, masks = eval_batch(test_set, recipe.n_local, seed, recipe)
    device = next(iter(explainers.values())).device_
    x = x.to(device)
    with torch.no_grad():
        targets = model(x).argmax(1)  # the predicted classes
    labels = torch.as_tensor(test_set.targets)[idx]
    maps = methods.compare(explainers, x, targets, n_components=recipe.n_concepts, seed=seed)
    n_parts = len(test_set.part_names)
    deciding = deciding_parts(test_set, labels)
    sanity = evaluate.randomisation(explainers, x[:recipe.n_sanity], targets[:recipe.n_sanity], seed=seed,
                                    n_components=recipe.n_concepts)
    return _plain({
        "images": idx, "cnn_correct": (targets.cpu() == labels).double(),
        "grids": {k: list(v.shape[-2:]) for k, v in maps.items()},
        "localisation": evaluate.localisation(maps, masks, n_parts, deciding),
        **faithfulness(model, maps, x, targets, recipe, seed, progress),
        "randomisation": evaluate.randomisation_table(sanity),
        "parts": part_alignment(explainers, x, masks, recipe, seed),
        "consistency": part_consistency(explainers, x, masks, labels, n_parts, recipe, seed),
    })


__all__ = ["deciding_parts", "eval_batch", "faithfulness", "part_alignment", "part_consistency", "evaluate_seed"]
