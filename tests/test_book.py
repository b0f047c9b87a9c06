"""The book's sources: notebooks stored clean, every chapter in the table of contents and built
the same way (Colab install cell, where it differs from the paper, exercises with folded solutions)."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc.get("parts", []):
        files |= {c["file"] for c in part.get("chapters", [])}
    return files


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} holds outputs: clear them before committing"
    assert "widgets" not in nb["metadata"], f"{path.name} holds saved widget state: clear it before committing"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_with_what_the_reader_will_learn(path):
    first = json.loads(path.read_text())["cells"][0]
    text = "".join(first["source"])
    assert first["cell_type"] == "markdown" and text.startswith("# ")
    assert "What you will learn" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_prints_the_profile_first(path):
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert "config.show()" in "".join(code[1]["source"]), "right after the install cell"


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    listed = _toc_files()
    in_book = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    assert in_book <= listed, f"chapters missing from _toc.yml: {sorted(in_book - listed)}"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), entry


def _markdown(path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


# The install cell (the first code cell) is checked in tests/test_packaging.py.


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_says_where_it_differs_from_the_paper(path):
    cells = json.loads(path.read_text())["cells"]
    text = "".join(cells[1]["source"])
    assert cells[1]["cell_type"] == "markdown" and text.startswith(
        "```{admonition} Where we differ from the paper\n:class: note\n"), \
        f"{path.name}: the cell after the opening one must be the 'Where we differ from the paper' note"
    assert text.rstrip().endswith("```") and len(text.splitlines()) > 3, path.name
    assert sum("Where we differ from the paper" in m for m in _markdown(path)) == 1, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_ends_with_exercises_and_hidden_solutions(path):
    cells = json.loads(path.read_text())["cells"]
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
              and "".join(c["source"]).startswith("## Exercises\n")]
    assert len(starts) == 1, f"{path.name} needs one '## Exercises' section, has {len(starts)}"
    start = starts[0]
    tail = cells[start:]
    assert all(c["cell_type"] == "markdown" for c in tail), f"{path.name}: the exercises must close the chapter"
    text = "\n".join("".join(c["source"]) for c in tail)
    exercises = re.findall(r"^### Exercise \d+", text, flags=re.M)
    solutions = re.findall(r"^`{3,}\{admonition\} Solution\n:class: dropdown$", text, flags=re.M)
    assert 2 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises, want 2 to 4"
    assert len(solutions) == len(exercises), f"{path.name}: {len(solutions)} dropdown solutions for {len(exercises)} exercises"
