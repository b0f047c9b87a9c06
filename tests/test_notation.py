"""The notation page cannot drift from the code: every protolib name it lists imports, and every
symbol row names one."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "notation.md"
NAME = re.compile(r"`(protolib(?:\.\w+)+)`")


def _rows() -> list[list[str]]:
    """The body rows of every table on the page, split into cells."""
    rows = []
    for line in PAGE.read_text().splitlines():
        if line.startswith("|") and not set(line) <= set("|- ") and "| symbol |" not in line:
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def resolve(dotted: str):
    """Import the longest importable module prefix of ``dotted``, then walk the attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_symbol_row_names_a_protolib_function():
    rows = _rows()
    assert len(rows) >= 30, f"only {len(rows)} rows: the tables were not parsed"
    for row in rows:
        assert len(row) == 3 and row[0] and row[1], row
        assert NAME.search(row[2]), f"no protolib name for {row[0]!r}"


def test_every_listed_name_resolves():
    names = {m for row in _rows() for m in NAME.findall(row[2])}
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"the notation page names what protolib does not have: {missing}"


def test_resolve_fails_on_a_name_that_does_not_exist():
    import pytest
    with pytest.raises(AttributeError):
        resolve("protolib.method.explain.blocks.no_such_function")
