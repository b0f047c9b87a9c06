"""The book's HTML as a reader gets it: a tiny book built with the project's own configuration.

One build (about ten seconds) serves every check: maths rendered by a MathJax the book serves
itself (no network), and Markdown results tables printed by a cell rendered as HTML tables,
not as raw pipes.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TABLE = "| model | test % |\n| --- | ---: |\n| CNN | 99.1 ± 0.2 (99.4) |\n"


def _table_notebook() -> dict:
    """A chapter whose stored output is a Markdown table, as ``display(Markdown(...))`` leaves it."""
    output = {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": TABLE, "text/plain": "<md>"}}
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [output],
            "source": "display(Markdown(table))"}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A table"}, cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Build a two-page book with ``_config.yml`` (execution off) and return its html folder."""
    src = tmp_path_factory.mktemp("book")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(cfg))
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": "book/table"}]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc))
    (src / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", src / "book" / "references.bib")
    (src / "book" / "intro.md").write_text(
        "# Maths\n\nInline $h_r \\cdot c_j$ and a display:\n\n$$\\frac{1}{R}\\sum_r h_r^\\top c_j$$\n")
    (src / "book" / "table.ipynb").write_text(json.dumps(_table_notebook()))
    exe = Path(sys.executable).with_name("jupyter-book")
    res = subprocess.run([str(exe), "build", "-W", "-n", "--keep-going", str(src)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return src / "_build" / "html"


def test_mathjax_is_served_by_the_book_itself(built):
    assert (built / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert (built / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    page = (built / "book" / "intro.html").read_text()
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page)
    mathjax = [s for s in sources if "mathjax" in s.lower()]
    assert mathjax, "the page loads no MathJax at all"
    assert all(not s.startswith(("http:", "https:", "//")) for s in mathjax), mathjax
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], "a script needs the network"


def test_a_markdown_table_output_becomes_an_html_table(built):
    html = (built / "book" / "table.html").read_text()
    assert "<table" in html, "the Markdown output was not rendered as a table"
    cells = html[html.index("<table"):html.index("</table>")]
    assert "CNN" in cells and "99.1 ± 0.2 (99.4)" in cells and "<td" in cells
    assert "| CNN |" not in html


def test_a_chapter_page_offers_colab_and_the_notebook_download(built):
    """Jupyter Book 1's launch buttons: Colab opens the chapter at the project's address (the one
    in pyproject.toml), and the download menu serves the .ipynb itself."""
    import tomllib
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    html = (built / "book" / "table.html").read_text()
    colab = url.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f'href="{colab}/blob/main/book/table.ipynb"' in html
    assert 'href="../_sources/book/table.ipynb"' in html
    assert (built / "_sources" / "book" / "table.ipynb").is_file()
