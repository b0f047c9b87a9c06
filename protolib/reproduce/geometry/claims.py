"""The claims the geometry chapter judges at 64 px and at 224 px, each a verdict over seeds.

Every claim compares two rows of one section of the record (or a row with a constant), paired by
seed, with :func:`protolib.evaluation.verdict.verdict` at the book's convention (two one-sided 5 %
tests: a 90 % interval; equality against a margin fixed here, before looking). The ``paper``
claims are the paper's map claims (Table 2, and B234's maps following the object's parts); the
``chapter 8`` claims are that chapter's findings at 64 px; ``new`` claims use ROAD and Huang et
al.'s consistency and stability. The grid-sized baselines are named by their grid, which differs
with the geometry: ``"grid {B234}"`` is ``"grid 8 x 8"`` at 64 px and ``"grid 28 x 28"`` at 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from protolib.core import tables
from protolib.evaluation.verdict import Verdict, verdict
from protolib.reproduce.geometry.summary import across_seeds


@dataclass(frozen=True)
class Claim:
    """``a - b`` of ``metric`` in ``section`` is ``kind`` ("equal" within ``margin``, "greater", "less")."""

    key: str
    source: str
    text: str
    section: str
    metric: str
    a: str
    b: str | float
    kind: str
    margin: float | None = None


CLAIMS: tuple[Claim, ...] = (
    Claim("P1", "paper", "KMEx's test accuracy equals the CNN's (margin 1 point)", "table2", "test", "KMEx", "CNN",
          "equal", 1.0),
    Claim("P2", "paper", "Ours B4's test accuracy equals the CNN's (margin 1 point)", "table2", "test", "B4", "CNN",
          "equal", 1.0),
    Claim("P3", "paper", "Ours B234's test accuracy is below B4's", "table2", "test", "B234", "B4", "less"),
    Claim("P4", "paper", "B234's segments follow the bird's parts better than B4's (part NMI on the bird)", "parts",
          "NMI bird", "ours B234", "ours B4", "greater"),
    Claim("P5", "paper", "B234's prototypes land on the same part across their class's images more often than "
          "B4's (segment consistency, %)", "consistency", "consistency segments", "ours B234", "ours B4", "greater"),
    Claim("C1", "chapter 8", "Grad-CAM at layer2 deletes the evidence faster than ours B234 (deletion area)", "areas",
          "deletion area", "Grad-CAM layer2", "ours B234", "less"),
    Claim("C2", "chapter 8", "A centred Gaussian deletes the evidence faster than ours B234", "areas", "deletion area",
          "centred Gaussian", "ours B234", "less"),
    Claim("C3", "chapter 8", "Grad-CAM at layer2 puts more of its importance on the bird than ours B234", "localisation",
          "bird share", "Grad-CAM layer2", "ours B234", "greater"),
    Claim("C4", "chapter 8", "Ours B234's pointing game is worse than a blind map's", "localisation", "pointing game",
          "ours B234", "area (blind map)", "less"),
    Claim("C5", "chapter 8", "A plain grid as fine as B234's follows the parts better than B234's segments "
          "(part NMI on the bird)", "parts", "NMI bird", "grid {B234}", "ours B234", "greater"),
    Claim("C6", "chapter 8", "Ours B234 passes the randomisation check: rank correlation below 0.5 once the "
          "classifier is randomised", "randomisation", "Spearman after fc", "ours B234", 0.5, "less"),
    Claim("N1", "new", "ROAD: ours B234 is less faithful than Grad-CAM at layer2 (ROAD combined)", "road",
          "ROAD combined", "ours B234", "Grad-CAM layer2", "less"),
    Claim("N2", "new", "ROAD: ours B234 is more faithful than a random map as coarse as B4's", "road", "ROAD combined",
          "ours B234", "random {B4}", "greater"),
    Claim("N3", "new", "Ours B234's importance map lands on the same part across a class's images more often than "
          "Grad-CAM layer2's (exact consistency on the bird, %)", "consistency", "consistency exact bird", "ours B234",
          "Grad-CAM layer2", "greater"),
    Claim("N4", "new", "Ours B234's importance map is more stable under input noise than Grad-CAM layer2's "
          "(exact stability, %)", "consistency", "stability exact", "ours B234", "Grad-CAM layer2", "greater"),
)


def row_name(name: str, record: dict) -> str:
    """``name`` with ``{B4}`` / ``{B234}`` replaced by that block set's grid in ``record`` (``"7 x 7"``):
    the grid-sized baselines are named by their grid, which differs with the geometry."""
    grids = record["steps"]["evaluation"]["grids"]
    return name.format(**{b: "{} x {}".format(*grids[f"ours {b}"]) for b in ("B4", "B34", "B234")})


def judge(claim: Claim, records: Sequence[dict], alpha: float = 0.05) -> Verdict:
    """The verdict on ``claim`` over the seeds of ``records`` (paired by seed)."""
    rows = across_seeds(records, claim.section)
    seeds = [int(r["provenance"]["seed"]) for r in records]
    a_name = row_name(claim.a, records[0])
    a = dict(zip(seeds, rows[a_name][claim.metric].tolist()))
    if isinstance(claim.b, str):
        b_name = row_name(claim.b, records[0])
        b = dict(zip(seeds, rows[b_name][claim.metric].tolist()))
    else:
        b_name, b = str(claim.b), {s: float(claim.b) for s in seeds}
    return verdict(a, b, f"({claim.key}) {claim.text}", claim.kind, claim.margin, alpha, "runs", (a_name, b_name))


def judge_all(geometries: Mapping[str, Sequence[dict]], claims: Sequence[Claim] = CLAIMS) -> dict[str, dict[str, Verdict]]:
    """{claim key: {geometry label: verdict}} for every claim and every geometry's records."""
    return {c.key: {g: judge(c, recs) for g, recs in geometries.items()} for c in claims}


def markdown(verdicts: Mapping[str, Mapping[str, Verdict]], claims: Sequence[Claim] = CLAIMS, digits: int = 2) -> str:
    """A Markdown table: one row per claim, per geometry its outcome and the mean gap's 90 % interval."""
    by_key = {c.key: c for c in claims}
    geometries = list(next(iter(verdicts.values())))
    head = ["claim", "source", *geometries]
    body = []
    for key, per in verdicts.items():
        cells = [f"**{v.outcome}**: {v.mean:+.{digits}f} [{v.low:+.{digits}f}, {v.high:+.{digits}f}]"
                 for v in per.values()]
        body.append([f"{key}: {by_key[key].text}", by_key[key].source, *cells])
    return tables.markdown(head, body)


__all__ = ["Claim", "CLAIMS", "row_name", "judge", "judge_all", "markdown"]
