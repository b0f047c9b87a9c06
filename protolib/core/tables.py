"""Markdown tables: the one renderer behind every table the book and the reproduction print.

A table is a header and rows of cells already turned into text by their owner (which knows the
digits and units); this module only lays them out, so every table of the book has one layout.
"""

from __future__ import annotations

from typing import Sequence


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """``| a | b |`` lines: the header, a ``| --- |`` rule (``---:`` for the columns in ``right``,
    right-aligned), then one line per row. Raises ``ValueError`` when a row has another width."""
    width = len(header)
    if width == 0:
        raise ValueError("a table needs at least one column")
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} cells, the header {width}: {list(row)!r}")
    rule = ["---:" if j in set(right) else "---" for j in range(width)]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in (header, rule, *rows))


def with_reference(ours: str, reference: float | None, digits: int) -> str:
    """``ours (reference)``: our cell with the paper's value beside it, or ``ours`` alone when the
    paper has none (``reference`` is ``None``)."""
    return ours if reference is None else f"{ours} ({reference:.{digits}f})"


__all__ = ["markdown", "with_reference"]
