"""Part consistency and stability of explanations (Huang et al., ICCV 2023), exact with part masks.

Huang et al. ask of each prototype of a part-prototype network: does it land on the same part
of the bird in every image of its class (consistency), and does it stay on that part when the
image gets a little noise (stability)? Here a "prototype" is any group of explanation regions,
one per image: a class's importance map over the images of that class, or one k-means
prototype's segment over the images of its class. Two variants:

* literal (comparable with published numbers): a box of +-``half_size`` around the map's first
  maximum (36 px at 224 px, scaled to the image); a part is hit when the centroid of its mask
  (its keypoint) lies in the box, and visible when its mask is not empty; several parts can be
  hit at once. Background is not a part here.
* exact: the region is the top 10.3 % of the map's pixels (the box's area) or a segment; its
  part is the dominant one, argmax_k |R & M_k| / |R|, background included as its own label.

Consistency of a group: for each part, the share of the group's images (those where the part is
visible) in which it is hit; the group is consistent when some part reaches ``threshold`` (0.8).
The score is the percentage of consistent groups. Stability: the share of a group's images whose
hits are unchanged under noise N(0, 0.2^2) clipped to +-0.25 (normalised units), averaged over
groups, in percent. See ``shared/research/evaluation-at-224.md``, section 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protolib.evaluation.faithfulness import to_size

AREA = 72 * 72 / 224 ** 2          # the box of Huang et al. as a share of the image (10.3 %)
HALF_SIZE = 36 / 224               # its half side as a share of the image side
THRESHOLD = 0.8
NOISE_STD, NOISE_CLIP = 0.2, 0.25


def check_masks(masks: torch.Tensor, size: tuple[int, int], n: int | None = None) -> torch.Tensor:
    """Masks (B, H, W) of part ids that match images of ``size`` (and ``n`` of them); a clear error if not."""
    if masks.ndim != 3 or tuple(masks.shape[-2:]) != tuple(size):
        raise ValueError(f"masks {tuple(masks.shape)} do not match {size[0]} x {size[1]} images: "
                         f"need (B, {size[0]}, {size[1]}) part ids")
    if n is not None and len(masks) != n:
        raise ValueError(f"{len(masks)} masks for {n} images")
    return masks.long()


def add_noise(x: torch.Tensor, seed: int = 0, std: float = NOISE_STD, clip: float = NOISE_CLIP) -> torch.Tensor:
    """``x`` plus seeded Gaussian noise N(0, std^2) clipped to +-``clip`` (in the normalised units of ``x``)."""
    g = torch.Generator().manual_seed(seed)
    noise = (std * torch.randn(x.shape, generator=g, dtype=torch.float32)).clamp(-clip, clip)
    return x + noise.to(x.device, x.dtype)


def visible_parts(masks: torch.Tensor, n_parts: int) -> torch.Tensor:
    """(B, n_parts) bool: which part ids have at least one pixel in each mask."""
    return torch.nn.functional.one_hot(masks.long().flatten(1), n_parts).amax(1).bool()


def top_region(maps: torch.Tensor, size: tuple[int, int], area: float = AREA) -> torch.Tensor:
    """(B, H, W) bool: the ``area`` share of pixels with the highest values of the map brought to ``size``
    (bilinearly); equal values are taken in pixel order (a stable sort), so the region is exact."""
    up = to_size(maps.float().cpu(), size, mode="bilinear").flatten(1)
    k = max(1, round(area * up.shape[1]))
    order = torch.sort(up, dim=1, descending=True, stable=True).indices[:, :k]
    region = torch.zeros_like(up, dtype=torch.bool).scatter_(1, order, True)
    return region.view(len(maps), *size)


def dominant_part(regions: torch.Tensor, masks: torch.Tensor, n_parts: int, background: bool = True) -> torch.Tensor:
    """(B,) the part id covering most of each region (background = 0 included unless ``background`` is
    False: then the bird part covering most of the region's bird pixels); -1 when there is none.
    Ties go to the lower id."""
    check_masks(masks, tuple(regions.shape[-2:]), len(regions))
    onehot = torch.nn.functional.one_hot(masks.long().cpu(), n_parts)  # (B, H, W, P)
    counts = (onehot * regions.cpu()[..., None]).sum((1, 2))
    if not background:
        counts[:, 0] = 0
    return torch.where(counts.sum(1) > 0, counts.argmax(1), -1)


def one_hot_hits(dominant: torch.Tensor, n_parts: int) -> torch.Tensor:
    """(B, n_parts) bool hits of the exact variant: only the dominant part (none for -1)."""
    return torch.nn.functional.one_hot(dominant.clamp_min(0), n_parts).bool() & (dominant >= 0)[:, None]


def centroids(masks: torch.Tensor, n_parts: int) -> torch.Tensor:
    """(B, n_parts, 2) (row, col) pixel-centre centroid of each part's mask; NaN where the part is absent."""
    m = torch.nn.functional.one_hot(masks.long().cpu(), n_parts).double()  # (B, H, W, P)
    rows = torch.arange(masks.shape[-2], dtype=torch.float64).view(1, -1, 1, 1)
    cols = torch.arange(masks.shape[-1], dtype=torch.float64).view(1, 1, -1, 1)
    n = m.sum((1, 2))
    return torch.stack([(m * rows).sum((1, 2)) / n, (m * cols).sum((1, 2)) / n], -1)  # 0/0 = NaN


def box_hits(maps: torch.Tensor, masks: torch.Tensor, n_parts: int, half_size: float = HALF_SIZE) -> torch.Tensor:
    """(B, n_parts) bool, literal variant: part centroids inside the box of +-``half_size`` x image side
    around the first maximum of the map (brought bilinearly to the mask size). Column 0 is False."""
    size = tuple(masks.shape[-2:])
    check_masks(masks, size, len(maps))
    up = to_size(maps.float().cpu(), size, mode="bilinear").flatten(1)
    first = up.argmax(1)
    peak = torch.stack([first // size[1], first % size[1]], 1).double()  # (B, 2)
    half = torch.tensor([half_size * size[0], half_size * size[1]], dtype=torch.float64)
    c = centroids(masks, n_parts)
    hits = ((c - peak[:, None]).abs() <= half).all(-1)  # NaN compares False: absent parts are never hit
    hits[:, 0] = False
    return hits


@dataclass
class GroupScores:
    """Per group (prototype): ``best_share`` (G,) the largest hit share over parts, ``best_part`` (G,)
    its part id, ``consistent`` (G,) bool; ``score`` the percentage of consistent groups."""

    groups: torch.Tensor
    best_share: torch.Tensor
    best_part: torch.Tensor
    consistent: torch.Tensor

    @property
    def score(self) -> float:
        return 100.0 * self.consistent.double().mean().item() if len(self.consistent) else float("nan")


def consistency(hits: torch.Tensor, visible: torch.Tensor, groups: torch.Tensor,
                threshold: float = THRESHOLD) -> GroupScores:
    """Consistency of each group of rows (one row = one image of a prototype's class): hits and
    visible (N, P) bool, ``groups`` (N,) prototype ids. A part counts only in the rows where it is visible."""
    if hits.shape != visible.shape or len(groups) != len(hits):
        raise ValueError(f"hits {tuple(hits.shape)}, visible {tuple(visible.shape)} and groups "
                         f"{tuple(groups.shape)} must describe the same rows")
    ids = torch.unique(groups)
    best, part = torch.zeros(len(ids), dtype=torch.float64), torch.zeros(len(ids), dtype=torch.long)
    for j, g in enumerate(ids):
        rows = groups == g
        seen = visible[rows].double().sum(0)
        share = (hits[rows] & visible[rows]).double().sum(0) / seen.clamp_min(1)
        share[seen == 0] = 0.0
        best[j], part[j] = share.max(), share.argmax()
    return GroupScores(ids, best, part, best >= threshold)


def stability(hits: torch.Tensor, hits_noisy: torch.Tensor, groups: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(score %, per-group share (G,)) of rows whose hits are unchanged under noise, averaged over groups."""
    if hits.shape != hits_noisy.shape or len(groups) != len(hits):
        raise ValueError(f"hits {tuple(hits.shape)} and hits_noisy {tuple(hits_noisy.shape)} must be "
                         f"the same rows as groups {tuple(groups.shape)}")
    same = (hits == hits_noisy).all(1).double()
    per = torch.stack([same[groups == g].mean() for g in torch.unique(groups)])
    return 100.0 * per.mean().item(), per


def class_map_scores(maps: torch.Tensor, maps_noisy: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                     n_parts: int) -> dict[str, float]:
    """Both variants for class maps (one map per image, for its true class; one group per class):
    {"consistency exact", "stability exact", "consistency literal", "stability literal"} in %, and the
    exact variant on the bird alone ("... exact bird"): a map blind to the image puts most of its top
    region on the background in every image, which the exact variant with background counts as consistent."""
    size = tuple(masks.shape[-2:])
    check_masks(masks, size, len(maps))
    labels = torch.as_tensor(labels).long().cpu()
    vis = visible_parts(masks, n_parts)
    regions = [top_region(m, size) for m in (maps, maps_noisy)]
    out = {}
    for suffix, bg in (("exact", True), ("exact bird", False)):
        hits = [one_hot_hits(dominant_part(r, masks, n_parts, bg), n_parts) for r in regions]
        out[f"consistency {suffix}"] = consistency(hits[0], vis, labels).score
        out[f"stability {suffix}"] = stability(hits[0], hits[1], labels)[0]
    literal = [box_hits(m, masks, n_parts) for m in (maps, maps_noisy)]
    out["consistency literal"] = consistency(literal[0], vis, labels).score
    out["stability literal"] = stability(literal[0], literal[1], labels)[0]
    return out


def segment_scores(segments: torch.Tensor, segments_noisy: torch.Tensor, masks: torch.Tensor,
                   labels: torch.Tensor, k_per_class: int, n_parts: int) -> dict[str, float]:
    """The exact variant for k-means prototypes: the region of prototype k in an image is its
    segment (``segments`` (B, h, w) prototype ids, class c owning ids c*K .. c*K+K-1); each of
    the true class's prototypes present in the image (in both the clean and the noisy image for
    stability) is a row. {"consistency segments", "stability segments"} in %."""
    size = tuple(masks.shape[-2:])
    check_masks(masks, size, len(segments))
    up = [to_size(s.float().cpu(), size).long() for s in (segments, segments_noisy)]
    labels = torch.as_tensor(labels).long().cpu()
    vis = visible_parts(masks, n_parts)
    hits, hits_noisy, groups, rows = [], [], [], []
    for k in range(k_per_class):
        proto = labels * k_per_class + k
        d = [dominant_part(u == proto.view(-1, 1, 1), masks, n_parts) for u in up]
        hits.append(one_hot_hits(d[0], n_parts)), hits_noisy.append(one_hot_hits(d[1], n_parts))
        groups.append(proto), rows.append(torch.stack(d))
    hits, hits_noisy, groups, d = torch.cat(hits), torch.cat(hits_noisy), torch.cat(groups), torch.cat(rows, 1)
    present, both = d[0] >= 0, (d >= 0).all(0)
    v = vis.repeat(k_per_class, 1)
    return {"consistency segments": consistency(hits[present], v[present], groups[present]).score,
            "stability segments": stability(hits[both], hits_noisy[both], groups[both])[0]}


__all__ = ["AREA", "HALF_SIZE", "THRESHOLD", "NOISE_STD", "NOISE_CLIP", "check_masks", "add_noise", "visible_parts",
           "top_region", "dominant_part", "one_hot_hits", "centroids", "box_hits", "GroupScores", "consistency",
           "stability", "class_map_scores", "segment_scores"]
