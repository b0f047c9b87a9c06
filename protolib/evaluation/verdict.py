"""One way to state a verdict: paired differences, a Student-t interval, TOST for equality.

Every claim the book makes about two rows ("KMEx as accurate as the CNN", "B234 below B4",
"Grad-CAM deletes better than ours") is a claim about the paired differences ``a - b`` (same
seed, or same image). :func:`verdict` turns those differences into exactly one outcome:

* ``equal`` claims (margin ``m`` fixed before looking): **holds** when the two one-sided tests
  (TOST) both reject at ``alpha``, i.e. the ``1 - 2 alpha`` interval lies inside ``(-m, m)``;
  **fails** when that interval lies where ``|gap| >= m``; else **undecided**;
* ``greater`` / ``less`` claims: **holds** when the interval lies strictly on the claimed side of
  0 (the one-sided t-test rejects at ``alpha``); **fails** when it lies on the other side or at 0;
  else **undecided**.

Fewer than two pairs give no spread and therefore no verdict: "undecided", never "holds". The
outcome is always printed with its interval and ``n``; :func:`runs_needed` says how many pairs
the observed spread would need to decide an undecided claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import t as student_t

KINDS = ("equal", "greater", "less")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim about paired differences ``a - b`` and what it rests on."""

    claim: str
    kind: str
    outcome: str            # "holds", "fails" or "undecided at n <unit>"
    reason: str
    mean: float
    sd: float               # sample sd of the differences (nan when n < 2)
    low: float              # the 1 - 2 alpha interval of the mean difference
    high: float
    n: int
    alpha: float
    margin: float | None
    p: float                # TOST p (equal) or one-sided p (greater / less); nan when n < 2
    needed: int | None      # pairs the observed spread would need to decide (None: none would)
    unit: str = "runs"
    keys: tuple = ()

    @property
    def holds(self) -> bool:
        return self.outcome == "holds"

    @property
    def decided(self) -> bool:
        return self.outcome in ("holds", "fails")

    def text(self, digits: int = 2) -> str:
        """One line: the claim, its outcome, the mean gap, its interval and n, the margin, the reason."""
        lvl = f"{1 - 2 * self.alpha:.0%}"
        ci = (f"{lvl} interval [{self.low:+.{digits}f}, {self.high:+.{digits}f}]" if self.n > 1
              else "no interval")
        m = f", margin ±{self.margin:.{digits}f}" if self.margin is not None else ""
        return (f"{self.claim}: {self.outcome.upper()} (gap {self.mean:+.{digits}f}, {ci}, "
                f"n = {self.n} {self.unit}{m}; {self.reason})")

    def __str__(self) -> str:
        return self.text()


def paired(a: Mapping | Sequence[float], b: Mapping | Sequence[float], names: tuple[str, str] = ("a", "b")):
    """(keys, a - b) paired by key (mappings, e.g. seed -> value) or by position (sequences).

    Raises ``ValueError`` naming the rows when mappings share no key or sequences differ in length.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise ValueError(f"{names[0]} and {names[1]} must both map seeds to values, or both be sequences")
        keys = tuple(sorted(set(a) & set(b)))
        if not keys:
            raise ValueError(f"{names[0]} (seeds {sorted(a)}) and {names[1]} (seeds {sorted(b)}) share no seed")
        return keys, np.array([float(a[k]) - float(b[k]) for k in keys], dtype=np.float64)
    va = np.asarray(a, dtype=np.float64).ravel()
    vb = np.asarray(b, dtype=np.float64).ravel()
    if len(va) != len(vb):
        raise ValueError(f"{names[0]} has {len(va)} values and {names[1]} {len(vb)}: they cannot be paired")
    if len(va) == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    return tuple(range(len(va))), va - vb


def _p_value(d: np.ndarray, kind: str, margin: float | None) -> float:
    """TOST p (the larger one-sided p) or the one-sided p of the t-test; exact 0 / 1 at zero spread."""
    mean, sd, n = d.mean(), d.std(ddof=1), len(d)
    if sd == 0.0:
        inside = {"equal": abs(mean) < (margin or 0.0), "greater": mean > 0, "less": mean < 0}[kind]
        return 0.0 if inside else 1.0
    se = sd / math.sqrt(n)
    if kind == "equal":
        return float(max(student_t.sf((mean + margin) / se, n - 1), student_t.cdf((mean - margin) / se, n - 1)))
    t = mean / se
    return float(student_t.sf(t, n - 1) if kind == "greater" else student_t.cdf(t, n - 1))


def _decide(kind: str, low: float, high: float, margin: float | None) -> str:
    if kind == "equal":
        if -margin < low and high < margin:
            return "holds"
        return "fails" if (low >= margin or high <= -margin) else "undecided"
    if kind == "greater":
        return "holds" if low > 0 else ("fails" if high <= 0 else "undecided")
    return "holds" if high < 0 else ("fails" if low >= 0 else "undecided")


def runs_needed(mean: float, sd: float, kind: str, margin: float | None = None, alpha: float = 0.05,
                most: int = 1000) -> int | None:
    """Smallest n >= 2 whose expected interval (the observed mean, the observed sd, t at n - 1
    degrees of freedom) would decide the claim; ``None`` when no n up to ``most`` would (the mean
    sits on the boundary) or the spread is unknown."""
    if math.isnan(sd):
        return None
    edge = margin if kind == "equal" else 0.0
    distance = abs(abs(mean) - edge) if kind == "equal" else abs(mean)
    if distance == 0.0:
        return None
    for n in range(2, most + 1):
        if student_t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n) < distance:
            return n
    return None


def verdict(a, b, claim: str, kind: str = "equal", margin: float | None = None, alpha: float = 0.05,
            unit: str = "runs", names: tuple[str, str] = ("a", "b")) -> Verdict:
    """The verdict on ``claim`` about ``a - b`` (paired, see :func:`paired`).

    ``kind``: "equal" (needs a positive ``margin``, fixed before looking), "greater" (a above b)
    or "less" (a below b). ``alpha``: each one-sided test's level; the interval is ``1 - 2 alpha``.

    >>> from protolib import verdict
    >>> v = verdict({0: 81.0, 1: 79.5, 2: 80.2}, {0: 75.0, 1: 74.0, 2: 76.1}, "B4 above B234", "greater")
    >>> v.outcome, v.n, round(v.mean, 2)
    ('holds', 3, 5.2)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "equal" and (margin is None or not margin > 0):
        raise ValueError(f"an equality claim needs a positive margin, got {margin!r} ({claim})")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    keys, d = paired(a, b, names)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return Verdict(claim, kind, f"undecided at n = {n} {unit}", f"one paired {unit[:-1]} has no spread to judge",
                       mean, float("nan"), float("nan"), float("nan"), n, alpha, margin, float("nan"), None, unit,
                       keys)
    sd = float(d.std(ddof=1))
    half = float(student_t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n))
    low, high = mean - half, mean + half
    outcome = _decide(kind, low, high, margin)
    p = _p_value(d, kind, margin)
    needed = runs_needed(mean, sd, kind, margin, alpha) if outcome == "undecided" else n
    reason = _reason(outcome, kind, margin, alpha, needed, unit)
    if outcome == "undecided":
        outcome = f"undecided at n = {n} {unit}"
    return Verdict(claim, kind, outcome, reason, mean, sd, low, high, n, alpha, margin, p, needed, unit, keys)


def _reason(outcome: str, kind: str, margin: float | None, alpha: float, needed: int | None, unit: str) -> str:
    lvl = f"{1 - 2 * alpha:.0%}"
    where = f"inside ±{margin:g}" if kind == "equal" else ("above 0" if kind == "greater" else "below 0")
    if outcome == "holds":
        return f"the {lvl} interval lies {where}"
    if outcome == "fails":
        return f"the {lvl} interval lies outside " + (f"±{margin:g}" if kind == "equal" else "the claimed side of 0")
    more = (f"about {needed} {unit} at this spread would decide it" if needed is not None
            else f"no number of {unit} decides it at this mean")
    return f"the {lvl} interval crosses " + (f"±{margin:g}" if kind == "equal" else "0") + f"; {more}"


__all__ = ["KINDS", "Verdict", "paired", "runs_needed", "verdict"]
