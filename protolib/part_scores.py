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
* both again on bird pixels only (part id > 0), because background dominates the pixel count;
* per-image NMI on bird pixels, averaged over images.

``grid_segments`` gives the baseline: each image cut into the cells of the same grid, with the
cell index as the segment id (a segmentation that knows position but nothing about the image).
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


def purity(table: torch.Tensor) -> float:
    """Share of items whose row (segment) majority column (part) is their own column."""
    return (table.max(1).values.sum() / table.sum().clamp_min(1)).item()


@dataclass
class PartAlignment:
    """Scores of one segmentation against the part masks (see the module docstring)."""

    nmi: float
    purity: float
    nmi_bird: float
    purity_bird: float
    image_nmi_bird: float
    n_segments_used: int

    def as_row(self) -> dict[str, float]:
        return {"NMI": self.nmi, "purity": self.purity, "NMI (bird)": self.nmi_bird,
                "purity (bird)": self.purity_bird, "per-image NMI (bird)": self.image_nmi_bird,
                "segments used": self.n_segments_used}


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
    return PartAlignment(nmi(table), purity(table), nmi(table_bird), purity(table_bird),
                         float(torch.tensor(per_image).mean()) if per_image else float("nan"),
                         int((table.sum(1) > 0).sum()))


def grid_segments(n: int, grid: tuple[int, int]) -> torch.Tensor:
    """Baseline segments (n, h, w): the index of each cell of the grid, the same for every image."""
    h, w = grid
    return torch.arange(h * w).view(1, h, w).expand(n, h, w).clone()


__all__ = ["upsample_segments", "contingency", "nmi", "purity", "PartAlignment", "part_alignment", "grid_segments"]
