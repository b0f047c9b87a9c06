"""The book's HTML as a reader gets it: a tiny book built with the project's own configuration."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Build a two-page book with ``_config.yml`` (execution off) and return its html folder."""
    src = tmp_path_factory.mktemp("book")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(cfg))
    (src / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (src / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", src / "book" / "references.bib")
    (src / "book" / "intro.md").write_text(
        "# Maths\n\nInline $h_r \\cdot c_j$ and a display:\n\n$$\\frac{1}{R}\\sum_r h_r^\\top c_j$$\n")
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
