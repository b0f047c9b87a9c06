"""Set a run computed now against the recorded run of the same seed, cell by cell, and fail loudly.

Two situations, told apart by the provenance of each row:

* **same setup**: the same torch, machine, thread count, device *and* code digest
  (:func:`protolib.core.store.code_digest`) made both. Training is seeded and deterministic on the CPU,
  so every cell must be equal to the last bit: the tolerance is 0.
* **otherwise** (another code version, machine or torch): floating-point sums in another order
  make training take another path, so the live run is one more draw of the same random
  quantities, and each of its cells must fall inside the **99 % Student-t prediction interval**
  of one new run from the record's ``n`` runs of that cell:
  ``|now - mean| <= t(0.995, n - 1) * sd * sqrt(1 + 1/n)``, with ``mean`` and ``sd`` the record's
  mean and sample standard deviation of the cell over its seeds. An accuracy cell never gets less
  than one test image's worth (``100 / n_test`` points): a spread of zero over three runs does not
  make a one-image move a failure. With three runs this band is wide (about 11.5 sd): it catches
  a broken step, not a shift of a fraction of the seed spread; the exact check catches those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy.stats import t as student_t

from protolib.reproduce.tables import aggregate

SETUP = ("torch", "machine", "threads", "device", "code")
LEVEL = 0.99


@dataclass(frozen=True)
class CellCheck:
    """One cell of one seed: the number now, the recorded one, the tolerance and how it was derived."""

    dataset: str
    seed: int
    table: int
    row: str
    metric: str
    now: float
    recorded: float         # the recorded run of the same seed
    reference: float        # what ``now`` is held against: ``recorded`` (exact) or the record's mean
    tolerance: float
    how: str

    @property
    def diff(self) -> float:
        return abs(self.now - self.reference)

    @property
    def ok(self) -> bool:
        return self.diff <= self.tolerance

    def name(self) -> str:
        return f"{self.dataset} seed {self.seed} Table {self.table} {self.row} {self.metric}"

    def text(self) -> str:
        return (f"{self.name()}: now {self.now:.6g}, recorded {self.recorded:.6g}, reference {self.reference:.6g}, "
                f"|now - reference| {self.diff:.3g} > tolerance {self.tolerance:.3g} ({self.how})")


@dataclass(frozen=True)
class RecordCheck:
    """Every compared cell, whether the setup was the same, and what differed when it was not."""

    cells: tuple[CellCheck, ...]
    exact: bool
    differs: tuple[str, ...]     # setup fields that differ between the live run and the record

    @property
    def compared(self) -> int:
        return len(self.cells)

    @property
    def failures(self) -> list[CellCheck]:
        return [c for c in self.cells if not c.ok]

    @property
    def ok(self) -> bool:
        return self.compared > 0 and not self.failures

    def report(self) -> str:
        """How the check was made (exact, or the derived tolerance and why) and its result."""
        if self.exact:
            how = "same torch, machine, threads, device and code digest: every cell must be identical"
        else:
            how = (f"the record differs in {', '.join(self.differs)}: each cell within the 99 % t prediction "
                   f"interval of one new run around the record's mean of that cell (at least one test image)")
        worst = max(self.cells, key=lambda c: c.diff / c.tolerance if c.tolerance else
                    (math.inf if c.diff else 0.0), default=None)
        tail = "" if worst is None else (f"; closest to its tolerance: {worst.name()} (|now - reference| "
                                         f"{worst.diff:.3g}, tolerance {worst.tolerance:.3g})")
        same = sum(c.now == c.recorded for c in self.cells)
        return (f"{self.compared} cells compared; {how}; {len(self.failures)} outside{tail}; "
                f"{same} of {self.compared} equal to the recorded run of the same seed to the last bit")

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` naming every cell that moved beyond its tolerance."""
        if self.compared == 0:
            raise AssertionError("no cell of the live run has a recorded counterpart")
        if self.failures:
            raise AssertionError(f"{len(self.failures)} cell(s) moved beyond the tolerance:\n"
                                 + "\n".join(c.text() for c in self.failures))


def _key(r: dict) -> tuple:
    return (r["dataset"], int(r["seed"]), r["table"], r["row"], r["metric"])


def tolerance(values: Sequence[float], accuracy: bool, n_test: int | None, level: float = LEVEL) -> tuple[float, str]:
    """(half-width, how) of the ``level`` t prediction interval of one new run from ``values``."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a tolerance needs the spread of at least 2 recorded runs, got {n}")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    q = float(student_t.ppf(0.5 + level / 2, n - 1))
    half = q * sd * math.sqrt(1 + 1 / n)
    how = f"t({0.5 + level / 2:.3f}, {n - 1}) = {q:.2f} x sd {sd:.3g} x sqrt(1 + 1/{n})"
    floor = 100.0 / n_test if accuracy and n_test else 0.0
    if floor > half:
        return floor, how + f", raised to one test image ({floor:.3g})"
    return half, how


def check(live: Sequence[dict], recorded: Sequence[dict], level: float = LEVEL) -> RecordCheck:
    """Every cell of ``live`` that the record has for the same seed, against its tolerance."""
    index = {_key(r): r for r in recorded}
    cells_by = aggregate(recorded)
    pairs = [(r, index[_key(r)]) for r in live if _key(r) in index]
    differs = sorted({f for r, rec in pairs for f in SETUP if r.get(f) != rec.get(f)})
    exact = bool(pairs) and not differs
    out = []
    for r, rec in pairs:
        if exact:
            ref, tol, how = float(rec["value"]), 0.0, "same setup: exact"
        else:
            cell = cells_by[(r["table"], r["row"], r["dataset"], r["metric"])]
            ref = cell.mean
            tol, how = tolerance(cell.values, r["table"] == 2, rec.get("n_test"), level)
        out.append(CellCheck(r["dataset"], int(r["seed"]), r["table"], r["row"], r["metric"], float(r["value"]),
                             float(rec["value"]), ref, tol, how))
    return RecordCheck(tuple(out), exact, tuple(differs))


def versions(recorded: Sequence[dict]) -> list[str]:
    """``commit X, code digest Y`` for each code version that made ``recorded`` (``Y`` is "not
    recorded" for steps stored before keys held a digest)."""
    seen = sorted({(str(r.get("commit")), r.get("code") or "not recorded") for r in recorded})
    return [f"commit {c}, code digest {d}" for c, d in seen]


__all__ = ["SETUP", "LEVEL", "CellCheck", "RecordCheck", "tolerance", "check", "versions"]
