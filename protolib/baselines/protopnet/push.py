"""Push (prototype projection): each prototype becomes the nearest latent patch of its own class.

For prototype j of class c, push searches every 1x1 patch z[:, u, v] of every training image
of class c (evaluation transforms, no augmentation) and sets p_j to the closest one, keeping
which image, which grid cell, and three boxes in image pixels (each ``[y0, y1, x0, x1)``):

* ``rf_box``   - the theoretical receptive field of the cell (what the reference stores). For a
  ResNet it covers the whole image at the sizes used here (ResNet18: 435 px, ResNet34: 899 px),
  so it says nothing about *where* the prototype is;
* ``cell_box`` - the grid cell itself scaled to the image (cell (u, v) of an H' x W' grid covers
  rows [u H/H', (u+1) H/H')): where the patch sits, at the backbone's resolution;
* ``act_box``  - the reference's prototype crop: the prototype's similarity map on its own image,
  upsampled bicubically to the image size, thresholded at its 95th percentile; the box spans
  the pixels above it. This is the crop the book shows as "the prototype".

Ties go to the first patch met in dataset order (row-major within an image), as in the reference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from protolib.baselines.protopnet.model import ProtoPNet, squared_distances
from protolib.core import config
from protolib.method.similarity import log_similarity


@dataclass
class PushResult:
    """Where each of the P prototypes came from (tensors on the CPU).

    image_index: (P,) index into the push set; location: (P, 2) grid cell (row, col);
    distance: (P,) squared distance from the old prototype to its new patch;
    rf_box, cell_box, act_box: (P, 4) ``[y0, y1, x0, x1)`` in image pixels;
    grid: (H', W') latent grid; image_size: (H, W).
    """

    image_index: torch.Tensor
    label: torch.Tensor
    location: torch.Tensor
    distance: torch.Tensor
    rf_box: torch.Tensor
    cell_box: torch.Tensor
    act_box: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]

    def to_dict(self) -> dict:
        """Plain dict of tensors and tuples, loadable with ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PushResult":
        return cls(**{**d, "grid": tuple(d["grid"]), "image_size": tuple(d["image_size"])})


@dataclass(frozen=True)
class ReceptiveField:
    """Theoretical receptive field of one output cell: ``size`` px wide, cells ``stride`` px apart,
    cell (0, 0) centred at ``start`` (input pixel i spans [i, i+1))."""

    size: float
    stride: float
    start: float

    def box(self, u: int, v: int, image_size: tuple[int, int]) -> list[int]:
        """``[y0, y1, x0, x1)`` of cell (u, v), clipped to the image (reference rounding)."""
        cy, cx = self.start + u * self.stride, self.start + v * self.stride
        half = self.size / 2
        return [max(int(cy - half), 0), min(int(cy + half), image_size[0]),
                max(int(cx - half), 0), min(int(cx + half), image_size[1])]


def receptive_field(backbone: nn.Module) -> ReceptiveField:
    """The receptive field of the output cells of a convolutional ``backbone`` (traced with torch.fx).

    Each convolution or pooling of kernel k (dilation l), stride s, padding p grows the field
    by (l (k-1)) times the current stride; where branches merge (residual additions) the
    widest field wins. Raises ``ValueError`` for layers whose field is not local (global
    pooling, linear layers, resampling).
    """
    gm = torch.fx.symbolic_trace(backbone)
    rf: dict[torch.fx.Node, tuple[float, float, float]] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            rf[node] = (1.0, 1.0, 0.5)
            continue
        inputs = [rf[a] for a in node.all_input_nodes if a in rf]
        if node.op == "output" or not inputs:
            continue
        r, j, start = max(inputs)
        if node.op == "call_module":
            r, j, start = _grow(gm.get_submodule(node.target), r, j, start)
        rf[node] = (r, j, start)
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    return ReceptiveField(*rf[out])


def _pair(v) -> int:
    return v[0] if isinstance(v, (tuple, list)) else v


def _grow(m: nn.Module, r: float, j: float, start: float) -> tuple[float, float, float]:
    if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        span = _pair(getattr(m, "dilation", 1)) * (k - 1)
        return r + span * j, j * s, start + (span / 2 - p) * j
    if isinstance(m, (nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.Flatten)):
        raise ValueError(f"{type(m).__name__} has no local receptive field")
    return r, j, start


def dataset_targets(ds: Dataset) -> torch.Tensor:
    """Labels (N,) of a registry dataset or a ``Subset`` of one, without loading images when possible."""
    if isinstance(ds, Subset):
        return dataset_targets(ds.dataset)[torch.as_tensor(ds.indices, dtype=torch.long)]
    if hasattr(ds, "targets"):
        return torch.as_tensor(ds.targets, dtype=torch.long)
    return torch.as_tensor([int(ds[i][1]) for i in range(len(ds))], dtype=torch.long)


def high_activation_box(act: torch.Tensor, percentile: float = 95.0) -> list[int]:
    """``[y0, y1, x0, x1)`` spanning the pixels of ``act`` (H, W) at or above its ``percentile``."""
    threshold = torch.quantile(act.flatten().double(), percentile / 100.0)
    mask = act.double() >= threshold
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    return [int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1]


def cell_box(u: int, v: int, grid: tuple[int, int], image_size: tuple[int, int]) -> list[int]:
    """The grid cell (u, v) of an H' x W' grid scaled to an H x W image: ``[y0, y1, x0, x1)``."""
    sy, sx = image_size[0] / grid[0], image_size[1] / grid[1]
    return [math.floor(u * sy), math.ceil((u + 1) * sy), math.floor(v * sx), math.ceil((v + 1) * sx)]


def similarity_maps(model: ProtoPNet, x: torch.Tensor, prototypes: torch.Tensor | None = None,
                    size: tuple[int, int] | None = None) -> torch.Tensor:
    """log-similarity of every prototype at every cell, optionally upsampled (bicubic) to ``size``.

    x: (B, 3, H, W) -> (B, P, H', W') or (B, P, *size). ``prototypes`` defaults to the model's.
    """
    protos = model.prototypes if prototypes is None else prototypes
    maps = log_similarity(squared_distances(model.latent(x), protos))
    if size is not None:
        maps = F.interpolate(maps, size=size, mode="bicubic", align_corners=False)
    return maps


@torch.no_grad()
def push_prototypes(model: ProtoPNet, push_set: Dataset, batch_size: int = 75, device=None,
                    progress: bool = True, percentile: float = 95.0) -> PushResult:
    """Replace every prototype by its nearest own-class latent patch in ``push_set``; return where from.

    ``push_set`` must yield ``(image, label)`` with evaluation transforms (no augmentation).
    """
    device = config.get_device(device)
    model.to(device).eval()
    P, D = model.num_prototypes, model.dim
    best = torch.full((P,), float("inf"), device=device)
    patches = torch.zeros(P, D, device=device)
    where = torch.zeros(P, 3, dtype=torch.long, device=device)       # (image index, row, col)
    grid, offset = None, 0
    loader = config.make_loader(push_set, batch_size, device)
    for x, y in tqdm(loader, desc="push", disable=not progress, leave=False):
        x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
        z = model.latent(x).float()                                   # (B, D, H', W')
        d = squared_distances(z, model.prototypes)                    # (B, P, H', W')
        B, _, H, W = d.shape
        grid = (H, W)
        own = y.view(-1, 1) == model.prototype_class.view(1, -1)       # (B, P)
        flat = d.masked_fill(~own[:, :, None, None], float("inf")).transpose(0, 1).reshape(P, -1)
        batch_min, arg = flat.min(dim=1)
        better = batch_min < best
        b, u, v = arg // (H * W), (arg // W) % H, arg % W
        best = torch.where(better, batch_min, best)
        patches[better] = z[b, :, u, v][better]
        where[better] = torch.stack([b + offset, u, v], dim=1)[better]
        offset += B
    missing = torch.isinf(best)
    if missing.any():
        classes = sorted({int(c) for c in model.prototype_class[missing]})
        raise ValueError(f"the push set has no image of class(es) {classes}: their prototypes cannot be pushed")
    model.prototypes.data.copy_(patches.view_as(model.prototypes).to(model.prototypes.dtype))
    return _describe(model, push_set, where.cpu(), best.cpu(), grid, batch_size, device, percentile)


@torch.no_grad()
def patches_at(model: ProtoPNet, push_set: Dataset, result: PushResult, batch_size: int = 75,
               device=None) -> torch.Tensor:
    """The latent patches (P, D) that ``result`` says each prototype was pushed onto, recomputed
    from the push-set images in chunks of ``batch_size`` prototypes: after a push they equal the
    prototypes up to float noise (other batches, other convolution algorithms)."""
    device = config.get_device(device)
    if len(result.image_index) != model.num_prototypes:
        raise ValueError(f"the push result has {len(result.image_index)} prototypes, the model {model.num_prototypes}")
    out = []
    for js in torch.arange(model.num_prototypes).split(batch_size):
        images = torch.stack([push_set[int(result.image_index[j])][0] for j in js]).to(device)
        z = model.latent(images)                                       # (chunk, D, H', W')
        out.append(z[torch.arange(len(js)), :, result.location[js, 0], result.location[js, 1]].cpu())
    return torch.cat(out)


def _describe(model: ProtoPNet, push_set: Dataset, where: torch.Tensor, dist: torch.Tensor,
              grid: tuple[int, int], batch_size: int, device, percentile: float,
              group: int = 64) -> PushResult:
    """Boxes of every pushed prototype, from its similarity map on its own image.

    Memory stays bounded: the latent grid of ``batch_size`` images at a time, and full-resolution
    maps only for the prototypes pushed onto one image, at most ``group`` at a time (never all
    P prototypes' maps of a chunk: for CUB that would be 0.4 GB per image).
    """
    images = where[:, 0].unique()
    x0, _ = push_set[int(images[0])]
    size = tuple(x0.shape[-2:])
    rf = receptive_field(model.backbone)
    act_box = torch.zeros(len(where), 4, dtype=torch.long)
    for chunk in images.split(batch_size):
        x = torch.stack([push_set[int(i)][0] for i in chunk]).to(device)
        low = similarity_maps(model, x)                                # (b, P, H', W'): small
        for k, i in enumerate(chunk):
            for js in (where[:, 0] == i).nonzero().flatten().split(group):
                maps = F.interpolate(low[k:k + 1, js.to(low.device)], size=size, mode="bicubic",
                                     align_corners=False)[0].cpu()     # (len(js), H, W)
                for m, j in zip(maps, js):
                    act_box[j] = torch.tensor(high_activation_box(m, percentile))
    labels = dataset_targets(push_set)[where[:, 0]]
    return PushResult(
        image_index=where[:, 0].clone(), label=labels.long(), location=where[:, 1:].clone(), distance=dist,
        rf_box=torch.tensor([rf.box(int(u), int(v), size) for u, v in where[:, 1:]]),
        cell_box=torch.tensor([cell_box(int(u), int(v), grid, size) for u, v in where[:, 1:]]),
        act_box=act_box, grid=grid, image_size=size,
    )


__all__ = ["PushResult", "ReceptiveField", "receptive_field", "high_activation_box", "cell_box",
           "similarity_maps", "push_prototypes", "patches_at", "dataset_targets"]
