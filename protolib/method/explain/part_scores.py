"""How well explanation-map segments align with ground-truth parts (synthetic birds).

The paper judges this only by eye; with part masks we can count. Segments (prototype ids on the
map grid) are upsampled to the mask resolution by nearest neighbour (the way the maps are
displayed), then compared with the part ids (0 = background) pixel by pixel:

* NMI: normalised mutual information between prototype id and part id over all pixels of all
  images (arithmetic normalisation, scikit-learn's default). Pooling over images asks whether a
  prototype stands for the same part everywhere, not just whether one image is well cut.
* purity: the share of pixels whose prototype's majority part is their own part (a prototype
  that always falls on one part has purity 1). Purity grows with the number of segments, so it
  is reported beside a baseline with as many cells.
* ARI: the adjusted Rand index, which is 0 in expectation for a segmentation unrelated to the
  parts, whatever the numbers of segments and parts (NMI and purity are not corrected for chance);
* all of these again on bird pixels only (part id > 0), because background dominates the count;
* per-image NMI on bird pixels, averaged over images; and figure-ground NMI (segments against
  bird / background).

Two baselines put the numbers in context: ``grid_segments`` cuts every image into the cells of
the same grid (position only, nothing about the image), and ``shuffled`` gives every image the
segments of another image (same statistics, no relation to this image's parts: chance level).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def upsample_segments(segments: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of segments (N, h, w) long to (N, *size)."""
    if tuple(segments.shape[-2:]) == tuple(size):
        return segments
    return F.interpolate(segments[:, None].float(), size=size, mode="nearest")[:, 0].round().long()


def contingency(labels_a: torch.Tensor, labels_b: torch.Tensor, n_a: int | None = None,
                n_b: int | None = None) -> torch.Tensor:
    """Counts (n_a, n_b) of each pair of labels in two equal-shape integer tensors."""
    a, b = labels_a.flatten().long(), labels_b.flatten().long()
    if a.shape != b.shape:
        raise ValueError(f"label tensors differ in size: {tuple(labels_a.shape)} and {tuple(labels_b.shape)}")
    n_a = n_a if n_a is not None else (int(a.max()) + 1 if len(a) else 1)
    n_b = n_b if n_b is not None else (int(b.max()) + 1 if len(b) else 1)
    return torch.bincount(a * n_b + b, minlength=n_a * n_b).view(n_a, n_b)


def nmi(table: torch.Tensor) -> float:
    """NMI (arithmetic mean normalisation) from a contingency table; 1.0 when both are constant."""
    p = table.double() / table.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * (p[nz] / (pa[:, None] * pb[None, :])[nz]).log()).sum().item()
    ent = lambda q: -(q[q > 0] * q[q > 0].log()).sum().item()  # noqa: E731
    ha, hb = ent(pa), ent(pb)
    if ha == 0 and hb == 0:
        return 1.0
    return max(mi, 0.0) / max((ha + hb) / 2, 1e-300)


def ari(table: torch.Tensor) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) from a contingency table; 1.0 for identical partitions."""
    t = table.double()
    pairs = lambda v: (v * (v - 1) / 2).sum().item()  # noqa: E731
    n = t.sum().item()
    index, rows, cols = pairs(t), pairs(t.sum(1)), pairs(t.sum(0))
    expected = rows * cols / max(n * (n - 1) / 2, 1.0)
    top = (rows + cols) / 2
    if top == expected:
        return 1.0
    return (index - expected) / (top - expected)


def purity(table: torch.Tensor) -> float:
    """Share of items whose row (segment) majority column (part) is their own column."""
    return (table.max(1).values.sum().double() / table.sum().clamp_min(1).double()).item()  # float64, not float32


@dataclass
class PartAlignment:
    """Scores of one segmentation against the part masks (see the module docstring)."""

    nmi: float
    ari: float
    purity: float
    nmi_bird: float
    ari_bird: float
    purity_bird: float
    image_nmi_bird: float
    nmi_figure_ground: float
    segments_used: int
    segments_per_image: float

    def as_row(self) -> dict[str, float]:
        return {"NMI": self.nmi, "ARI": self.ari, "purity": self.purity, "NMI bird": self.nmi_bird,
                "ARI bird": self.ari_bird, "purity bird": self.purity_bird,
                "per-image NMI bird": self.image_nmi_bird, "figure-ground NMI": self.nmi_figure_ground,
                "segments per image": self.segments_per_image}


def part_alignment(segments: torch.Tensor, masks: torch.Tensor) -> PartAlignment:
    """Scores of segments (N, h, w) against part masks (N, H, W) (0 = background)."""
    if segments.shape[0] != masks.shape[0]:
        raise ValueError(f"{segments.shape[0]} segment maps for {masks.shape[0]} masks")
    seg = upsample_segments(segments.cpu(), tuple(masks.shape[-2:]))
    parts = masks.cpu().long()
    n_seg, n_parts = int(seg.max()) + 1, int(parts.max()) + 1
    table = contingency(seg, parts, n_seg, n_parts)
    bird = parts > 0
    table_bird = contingency(seg[bird], parts[bird], n_seg, n_parts)
    per_image = [nmi(contingency(s[m], p[m], n_seg, n_parts)) for s, p, m in zip(seg, parts, bird) if m.any()]
    per_image_count = float(torch.tensor([len(s.unique()) for s in segments]).float().mean())
    return PartAlignment(
        nmi(table), ari(table), purity(table), nmi(table_bird), ari(table_bird), purity(table_bird),
        float(torch.tensor(per_image).mean()) if per_image else float("nan"),
        nmi(contingency(seg, bird.long(), n_seg, 2)), int((table.sum(1) > 0).sum()), per_image_count)


def grid_segments(n: int, grid: tuple[int, int]) -> torch.Tensor:
    """Baseline segments (n, h, w): the index of each cell of the grid, the same for every image."""
    h, w = grid
    return torch.arange(h * w).view(1, h, w).expand(n, h, w).clone()


def shuffled(segments: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Chance baseline: image i gets the segments of another image (a seeded cyclic shift of a
    random order, so no image keeps its own map when there are at least two)."""
    perm = torch.randperm(len(segments), generator=torch.Generator().manual_seed(seed))
    out = torch.empty_like(segments)
    out[perm] = segments[perm.roll(1)]
    return out


__all__ = ["upsample_segments", "contingency", "nmi", "ari", "purity", "PartAlignment", "part_alignment",
           "grid_segments", "shuffled"]
