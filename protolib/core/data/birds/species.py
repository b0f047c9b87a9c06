"""The species of the synthetic birds: parts, attributes, and classes defined by attributes.

Like CUB-200-2011, whose 200 species are described by 312 binary attributes grouped by body
part (``has_crown_color``, ``has_bill_shape``, ``has_wing_pattern``...), each synthetic class
is a vector of categorical part attributes. Classes come in *pairs* that differ in exactly
one attribute of exactly one part (the deciding part); every other two classes differ in at
least two attributes, so a class's nearest class (in attribute Hamming distance) is its twin
and the part that separates them is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Part ids in the masks (0 = background). Order = id - 1.
PART_NAMES = ("head", "beak", "body", "wing", "tail", "legs", "eye")
BACKGROUND = 0

# CUB-200-2011 parts (parts/parts.txt) that each synthetic part stands for.
CUB_PARTS = {
    "head": ("crown", "forehead", "nape", "throat"),
    "beak": ("beak",),
    "body": ("back", "breast", "belly"),
    "wing": ("left wing", "right wing"),
    "tail": ("tail",),
    "legs": ("left leg", "right leg"),
    "eye": ("left eye", "right eye"),
}

# RGB in [0, 1] of every named colour the birds use.
PALETTE = {
    "red": (0.80, 0.12, 0.10), "blue": (0.12, 0.28, 0.80), "yellow": (0.95, 0.82, 0.10),
    "black": (0.08, 0.08, 0.08), "white": (0.95, 0.95, 0.93), "grey": (0.55, 0.55, 0.55),
    "brown": (0.50, 0.30, 0.12), "orange": (0.98, 0.50, 0.05), "olive": (0.40, 0.45, 0.15),
}


@dataclass(frozen=True)
class Attribute:
    """One categorical attribute: which parts it paints, its values, its CUB counterpart."""

    name: str
    parts: tuple[str, ...]
    values: tuple[str, ...]
    cub: str


ATTRIBUTES = (
    Attribute("head_colour", ("head",), ("red", "blue", "yellow", "black", "white", "grey"), "has_crown_color"),
    Attribute("beak_shape", ("beak",), ("cone", "needle", "hooked"), "has_bill_shape"),
    Attribute("beak_colour", ("beak",), ("black", "orange", "yellow"), "has_bill_color"),
    Attribute("body_colour", ("body",), ("brown", "grey", "white", "yellow", "orange"), "has_breast_color"),
    Attribute("wing_colour", ("wing",), ("brown", "black", "blue", "grey", "olive"), "has_wing_color"),
    Attribute("wing_pattern", ("wing",), ("solid", "striped", "spotted"), "has_wing_pattern"),
    Attribute("tail_shape", ("tail",), ("short", "long", "forked"), "has_tail_shape"),
    Attribute("tail_colour", ("tail",), ("brown", "black", "blue", "grey", "olive", "white"), "has_upper_tail_color"),
    Attribute("leg_colour", ("legs",), ("black", "orange"), "has_leg_color"),
)
ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)

# Attributes that separate the two classes of a pair, each painting a single part. Colours and
# patterns of the larger parts only: a ResNet18 trained from scratch for two CPU minutes learns
# them, but not yet beak or tail shapes nor the beak's colour (measured: such twins stayed near
# chance). Shapes and beak colour still separate classes of different pairs.
DECIDING = ("head_colour", "wing_colour", "tail_colour", "wing_pattern", "body_colour")
# The most different value of each shape attribute (colours: the farthest colour in RGB).
CONTRAST = {
    "beak_shape": {"cone": "needle", "needle": "cone", "hooked": "needle"},
    "tail_shape": {"short": "long", "long": "short", "forked": "short"},
    "wing_pattern": {"solid": "striped", "striped": "solid", "spotted": "striped"},
}


def attribute_index(name: str) -> int:
    """Column of attribute ``name`` in an attribute table."""
    try:
        return ATTRIBUTE_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown attribute {name!r}; attributes: {ATTRIBUTE_NAMES}") from None


def part_id(name: str) -> int:
    """Mask value of part ``name`` (1-based; 0 is background)."""
    try:
        return PART_NAMES.index(name) + 1
    except ValueError:
        raise ValueError(f"unknown part {name!r}; parts: {PART_NAMES}") from None


@dataclass(frozen=True)
class Species:
    """The class table of a synthetic bird dataset.

    table : int array (C, A) of value indices into ``ATTRIBUTES[a].values``.
    twin : int array (C,): the class's nearest class (its pair; for an unpaired last class, the
        lowest-index class at the smallest Hamming distance).
    """

    table: np.ndarray
    twin: np.ndarray
    seed: int

    @property
    def num_classes(self) -> int:
        return len(self.table)

    @property
    def names(self) -> list[str]:
        """Short class names: pair number and a/b (``"03a"``, ``"03b"``)."""
        return [f"{c // 2:02d}{'ab'[c % 2]}" for c in range(self.num_classes)]

    def value(self, c: int, attribute: str) -> str:
        """The value name of ``attribute`` for class ``c``."""
        a = attribute_index(attribute)
        return ATTRIBUTES[a].values[self.table[c, a]]

    def describe(self, c: int) -> str:
        """A field-guide line: ``red head, cone black beak, ...``."""
        v = lambda name: self.value(c, name)  # noqa: E731
        return (f"{v('head_colour')} head, {v('beak_shape')} {v('beak_colour')} beak, {v('body_colour')} body, "
                f"{v('wing_pattern')} {v('wing_colour')} wings, {v('tail_shape')} {v('tail_colour')} tail, "
                f"{v('leg_colour')} legs")

    def distance(self, c: int, d: int) -> int:
        """Number of attributes in which classes ``c`` and ``d`` differ."""
        return int((self.table[c] != self.table[d]).sum())

    def differing_attributes(self, c: int, d: int) -> list[str]:
        return [ATTRIBUTE_NAMES[a] for a in np.flatnonzero(self.table[c] != self.table[d])]

    def deciding_parts(self, c: int) -> list[str]:
        """Parts whose attributes separate class ``c`` from its nearest class ``twin[c]``."""
        parts = {p for name in self.differing_attributes(c, int(self.twin[c]))
                 for p in ATTRIBUTES[attribute_index(name)].parts}
        return [p for p in PART_NAMES if p in parts]

    def pairs(self) -> list[tuple[int, int, str]]:
        """The one-attribute pairs ``(c, d, attribute)`` with ``c < d``."""
        out = []
        for c in range(self.num_classes):
            d = int(self.twin[c])
            if c < d and self.twin[d] == c and self.distance(c, d) == 1:
                out.append((c, d, self.differing_attributes(c, d)[0]))
        return out


def contrasting_value(attribute: str, value: int) -> int:
    """Index of the value of ``attribute`` most unlike ``value``: twins differ clearly."""
    values = ATTRIBUTES[attribute_index(attribute)].values
    if attribute in CONTRAST:
        return values.index(CONTRAST[attribute][values[value]])
    rgb = np.array([PALETTE[v] for v in values])
    return int(np.linalg.norm(rgb - rgb[value], axis=1).argmax())


def _far_enough(candidate: np.ndarray, accepted: list[np.ndarray], min_distance: int) -> bool:
    return all(int((candidate != row).sum()) >= min_distance for row in accepted)


def make_species(num_classes: int = 20, seed: int = 0, min_distance: int = 3, max_tries: int = 10_000) -> Species:
    """Draw ``num_classes`` attribute vectors in twins that differ in one deciding attribute.

    Pair ``k`` (classes ``2k`` and ``2k+1``) differs only in ``DECIDING[k % 5]``, where the twin
    takes the value most unlike the first class's (:func:`contrasting_value`); any two classes
    of different pairs differ in at least ``min_distance`` attributes. An odd last class is
    unpaired. Deterministic in ``seed``.
    """
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    rng = np.random.default_rng(seed)
    sizes = np.array([len(a.values) for a in ATTRIBUTES])
    rows: list[np.ndarray] = []
    for k in range((num_classes + 1) // 2):
        paired = 2 * k + 1 < num_classes
        for _ in range(max_tries):
            base = rng.integers(0, sizes)
            group = [base]
            if paired:
                name = DECIDING[k % len(DECIDING)]
                a = attribute_index(name)
                twin = base.copy()
                twin[a] = contrasting_value(name, int(base[a]))
                group.append(twin)
            if all(_far_enough(g, rows, min_distance) for g in group):
                rows.extend(group)
                break
        else:
            raise ValueError(f"could not draw {num_classes} classes {min_distance} attributes apart")
    table = np.stack(rows)
    dist = (table[:, None, :] != table[None, :, :]).sum(-1)
    np.fill_diagonal(dist, table.shape[1] + 1)
    return Species(table=table, twin=dist.argmin(1), seed=seed)
