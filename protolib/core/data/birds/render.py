"""Vectorised drawing of bird-like objects with a per-pixel part mask.

Every part is a shape in a canonical bird frame (bird facing +u, v pointing down, body centred
at the origin, about 2.4 units from tail tip to beak tip). A pose (centre, scale, rotation,
flip) maps the pixel grid of a whole batch into that frame at once, so each part costs a few
tensor operations on (B, H, W) grids; there is no loop over pixels or images.

Layers, back to front: background, tail, legs, body, wing, head, beak, eye, occluding branch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protolib.core.data.birds.species import (
    ATTRIBUTES,
    PALETTE,
    PART_NAMES,
    attribute_index,
    part_id,
)

# Convex polygons (u, v) per shape value; a shape is the union of its polygons.
BEAKS = {
    "cone": [[(0.82, -0.53), (1.06, -0.40), (0.82, -0.27)]],
    "needle": [[(0.84, -0.45), (1.20, -0.39), (0.84, -0.33)]],
    "hooked": [[(0.82, -0.51), (1.02, -0.46), (1.10, -0.20), (0.84, -0.30)]],
}
TAILS = {
    "short": [[(-0.45, -0.18), (-0.86, -0.16), (-0.86, 0.22), (-0.45, 0.12)]],
    "long": [[(-0.45, -0.18), (-1.14, -0.10), (-1.14, 0.34), (-0.45, 0.12)]],
    "forked": [[(-0.45, -0.16), (-1.10, -0.30), (-0.98, -0.02), (-0.45, 0.10)],
               [(-0.45, -0.16), (-0.98, 0.20), (-1.10, 0.46), (-0.45, 0.10)]],
}
LEGS = [((0.06, 0.36), (0.12, 0.72)), ((0.12, 0.72), (0.27, 0.74)),
        ((-0.14, 0.36), (-0.12, 0.72)), ((-0.12, 0.72), (0.03, 0.74))]
BACKGROUNDS = ("sky", "foliage", "ground")
UNITS_PER_IMAGE = 2.4  # the image side in bird units at scale 1 (a bird is about 2.3 units long)


@dataclass
class Poses:
    """Per-image placement, all (B,): centre in pixels, pixels per unit, angle (rad), flip (+1/-1)."""

    cx: torch.Tensor
    cy: torch.Tensor
    unit: torch.Tensor
    angle: torch.Tensor
    flip: torch.Tensor


@dataclass
class Drawing:
    """A drawn batch: ``image`` uint8 (B, 3, H, W); ``mask`` uint8 (B, H, W) of part ids
    (0 = background or occluded); ``fg`` float (B, 3, H, W) the part colours before blending
    with the background; ``colours`` (B, P+1, 3) the jittered colour of each part; ``pattern``
    (B, 3) the wing-pattern colour; ``background`` (B,) index into ``BACKGROUNDS``;
    ``occluded`` (B,) whether a branch crosses the image."""

    image: torch.Tensor
    mask: torch.Tensor
    fg: torch.Tensor
    colours: torch.Tensor
    pattern: torch.Tensor
    background: torch.Tensor
    occluded: torch.Tensor


def _u(b: int, g: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=g)


def sample_poses(b: int, size: int, g: torch.Generator, jitter: float = 1.0) -> Poses:
    """Random placements: scale x0.9-1.1, rotation up to 15 degrees, shift up to 8 % of the
    image (all scaled by ``jitter``; ``jitter=0`` centres every bird) and a random flip."""
    unit = size / UNITS_PER_IMAGE * (1 + jitter * _u(b, g, -0.10, 0.10))
    shift = (size * 0.08 * jitter) * (2 * torch.rand(2, b, generator=g) - 1)
    angle = math.radians(15) * jitter * (2 * torch.rand(b, generator=g) - 1)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    return Poses(size / 2 + shift[0], size / 2 + 0.05 * size + shift[1], unit, angle, flip)


def canonical_grid(poses: Poses, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bird-frame coordinates (u, v), each (B, H, W), of every pixel centre."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    view = lambda t: t.view(-1, 1, 1)  # noqa: E731
    dx, dy = xs - view(poses.cx), ys - view(poses.cy)
    cos, sin = view(torch.cos(poses.angle)), view(torch.sin(poses.angle))
    u = view(poses.flip) * (cos * dx + sin * dy) / view(poses.unit)
    v = (-sin * dx + cos * dy) / view(poses.unit)
    return u, v


def ellipse(u, v, cu: float, cv: float, a: float, b: float, angle: float = 0.0) -> torch.Tensor:
    """Inside of an ellipse with semi-axes ``a``, ``b`` turned by ``angle`` (rad)."""
    c, s = math.cos(angle), math.sin(angle)
    du, dv = u - cu, v - cv
    return ((c * du + s * dv) / a) ** 2 + ((-s * du + c * dv) / b) ** 2 <= 1.0


def polygon(u, v, vertices) -> torch.Tensor:
    """Inside of a convex polygon given by its vertices in order (either orientation)."""
    crosses = []
    for (u0, v0), (u1, v1) in zip(vertices, vertices[1:] + vertices[:1]):
        crosses.append((u1 - u0) * (v - v0) - (v1 - v0) * (u - u0))
    stack = torch.stack(crosses)
    return (stack >= 0).all(0) | (stack <= 0).all(0)


def capsule(u, v, p0, p1, r: float) -> torch.Tensor:
    """Points within ``r`` of the segment p0-p1 (p0, p1 floats or (B, 1, 1) tensors)."""
    (u0, v0), (u1, v1) = p0, p1
    du, dv = u1 - u0, v1 - v0
    t = (((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv)).clamp(0, 1)
    return (u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2 <= r * r


def _shape(u, v, table: dict, index: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """Per-image choice among shapes: image ``i`` gets ``table[names[index[i]]]``.

    Each shape is evaluated only on the images that use it.
    """
    out = torch.zeros_like(u, dtype=torch.bool)
    for k, name in enumerate(names):
        rows = torch.nonzero(index == k).flatten()
        if len(rows):
            uk, vk = u[rows], v[rows]
            inside = torch.zeros_like(uk, dtype=torch.bool)
            for vertices in table[name]:
                inside |= polygon(uk, vk, vertices)
            out[rows] = inside
    return out


def part_masks(u, v, attrs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Boolean (B, H, W) region of each part (before overlap) for attribute rows ``attrs`` (B, A)."""
    beak = attrs[:, attribute_index("beak_shape")]
    tail = attrs[:, attribute_index("tail_shape")]
    legs = torch.zeros_like(u, dtype=torch.bool)
    for p0, p1 in LEGS:
        legs |= capsule(u, v, p0, p1, 0.05)
    return {
        "tail": _shape(u, v, TAILS, tail, ATTRIBUTES[attribute_index("tail_shape")].values),
        "legs": legs,
        "body": ellipse(u, v, 0.0, 0.0, 0.60, 0.40, -0.15),
        "wing": ellipse(u, v, -0.12, -0.10, 0.50, 0.22, 0.22),
        "head": ellipse(u, v, 0.58, -0.38, 0.30, 0.30),
        "beak": _shape(u, v, BEAKS, beak, ATTRIBUTES[attribute_index("beak_shape")].values),
        "eye": ellipse(u, v, 0.70, -0.44, 0.07, 0.07),
    }


DRAW_ORDER = ("tail", "legs", "body", "wing", "head", "beak", "eye")


def wing_pattern(u, v, pattern: torch.Tensor) -> torch.Tensor:
    """Where the wing shows its pattern colour: stripes across the wing, or a grid of spots."""
    c, s = math.cos(0.22), math.sin(0.22)
    wu, wv = c * (u + 0.12) + s * (v + 0.10), -s * (u + 0.12) + c * (v + 0.10)
    stripes = torch.remainder(wu, 0.26) < 0.12
    su, sv = torch.remainder(wu, 0.30) - 0.15, torch.remainder(wv, 0.30) - 0.15
    spots = su * su + sv * sv < 0.09 ** 2
    kind = pattern.view(-1, 1, 1)
    return ((kind == 1) & stripes) | ((kind == 2) & spots)


def part_colours(attrs: torch.Tensor, g: torch.Generator, jitter: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Jittered colour of each part (B, P+1, 3) (row 0 unused) and the wing-pattern colour (B, 3)."""
    b = len(attrs)
    table = {a.name: torch.tensor([PALETTE[v] for v in a.values]) for a in ATTRIBUTES if a.values[0] in PALETTE}
    pick = lambda name: table[name][attrs[:, attribute_index(name)]]  # noqa: E731
    colours = torch.zeros(b, len(PART_NAMES) + 1, 3)
    for part, name in (("head", "head_colour"), ("beak", "beak_colour"), ("body", "body_colour"),
                       ("wing", "wing_colour"), ("tail", "tail_colour"), ("legs", "leg_colour")):
        colours[:, part_id(part)] = pick(name)
    colours[:, part_id("eye")] = 0.02
    wing = colours[:, part_id("wing")]
    luminance = wing @ torch.tensor([0.299, 0.587, 0.114])
    pattern = torch.where((luminance < 0.45)[:, None], torch.tensor(PALETTE["white"]), torch.tensor(PALETTE["black"]))
    gain = 1 + jitter * 0.15 * (2 * torch.rand(b, 1, 1, generator=g) - 1)
    tint = 1 + jitter * 0.05 * torch.randn(b, len(PART_NAMES) + 1, 3, generator=g)
    return (colours * gain * tint).clamp(0, 1), (pattern * gain[:, 0]).clamp(0, 1)


def _noise(b: int, size: int, cells: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """Smooth random field in [0, 1], (B, 1, H, W): bilinear upsampling of a coarse grid."""
    coarse = torch.rand(b, 1, *cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def backgrounds(b: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured backgrounds (B, 3, H, W) in [0, 1] and their kind (B,) (sky, foliage, ground)."""
    kind = torch.randint(0, len(BACKGROUNDS), (b,), generator=g)
    coarse, fine, streaks = _noise(b, size, (5, 5), g), _noise(b, size, (16, 16), g), _noise(b, size, (24, 4), g)
    y = torch.linspace(0, 1, size).view(1, 1, size, 1)
    col = lambda *rgb: torch.tensor(rgb).view(1, 3, 1, 1)  # noqa: E731
    sky = col(0.40, 0.62, 0.92) + (col(0.80, 0.88, 0.98) - col(0.40, 0.62, 0.92)) * y
    cloud = ((coarse - 0.55) / 0.2).clamp(0, 1)
    sky = sky + (col(0.93, 0.94, 0.96) - sky) * cloud
    leaves = ((fine - 0.5) / 0.15).clamp(0, 1)
    foliage = (col(0.10, 0.30, 0.08) + (col(0.30, 0.58, 0.16) - col(0.10, 0.30, 0.08)) * leaves) * (0.7 + 0.6 * coarse)
    ground = col(0.56, 0.43, 0.26) * (0.65 + 0.5 * streaks + 0.2 * fine)
    out = torch.where((kind == 0).view(-1, 1, 1, 1), sky, torch.where((kind == 1).view(-1, 1, 1, 1), foliage, ground))
    tint = 1 + 0.08 * torch.randn(b, 3, 1, 1, generator=g)
    return (out * tint).clamp(0, 1), kind


def branches(poses: Poses, size: int, g: torch.Generator, rate: float) -> torch.Tensor:
    """Boolean (B, H, W): a straight branch across the bird in a fraction ``rate`` of images."""
    b = len(poses.cx)
    on = torch.rand(b, generator=g) < rate
    px = poses.cx + poses.unit * 0.6 * (2 * torch.rand(b, generator=g) - 1)
    py = poses.cy + poses.unit * 0.4 * (2 * torch.rand(b, generator=g) - 1)
    phi = math.pi * torch.rand(b, generator=g)
    width = poses.unit * (0.05 + 0.05 * torch.rand(b, generator=g))
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    view = lambda t: t.view(-1, 1, 1)  # noqa: E731
    dist = ((xs - view(px)) * view(torch.sin(phi)) - (ys - view(py)) * view(torch.cos(phi))).abs()
    return (dist <= view(width)) & view(on)


@contextlib.contextmanager
def one_thread():
    """Run torch on one CPU thread: the drawing ops are small and threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def draw(attrs: torch.Tensor, size: int, g: torch.Generator, occlusion: float = 0.2,
         noise: float = 0.03, jitter: float = 1.0) -> Drawing:
    """Draw one bird per row of ``attrs`` (B, A) (attribute value indices) at ``size`` px.

    ``occlusion`` is the fraction of images crossed by a branch, ``noise`` the std of the
    per-pixel Gaussian noise (in [0, 1] units), ``jitter`` scales pose and colour variation.
    """
    with one_thread():
        return _draw(attrs, size, g, occlusion, noise, jitter)


def _draw(attrs: torch.Tensor, size: int, g: torch.Generator, occlusion: float, noise: float,
          jitter: float) -> Drawing:
    b = len(attrs)
    poses = sample_poses(b, size, g, jitter)
    u, v = canonical_grid(poses, size)
    mask = torch.zeros(b, size, size, dtype=torch.uint8)
    regions = part_masks(u, v, attrs)
    for name in DRAW_ORDER:
        mask[regions[name]] = part_id(name)
    colours, pattern = part_colours(attrs, g, jitter)
    fg = torch.gather(colours, 1, mask.long().view(b, -1, 1).expand(-1, -1, 3)).view(b, size, size, 3)
    spots = wing_pattern(u, v, attrs[:, attribute_index("wing_pattern")]) & (mask == part_id("wing"))
    fg = torch.where(spots[..., None], pattern.view(b, 1, 1, 3), fg).permute(0, 3, 1, 2)
    bg, kind = backgrounds(b, size, g)
    image = torch.where((mask > 0)[:, None], fg, bg)
    branch = branches(poses, size, g, occlusion)
    bark = torch.tensor([0.30, 0.20, 0.10]).view(1, 3, 1, 1) * (0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=g))
    image = torch.where(branch[:, None], bark, image)
    mask[branch] = 0
    image = image + noise * torch.randn(image.shape, generator=g)
    image = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return Drawing(image, mask, fg, colours, pattern, kind, branch.flatten(1).any(1))
