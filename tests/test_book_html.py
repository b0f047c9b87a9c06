"""The built book renders Markdown outputs (our results tables) as HTML tables, not raw pipes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TABLE = "| model | test % |\n| --- | ---: |\n| CNN | 99.1 ± 0.2 (99.4) |\n"


def _notebook() -> dict:
    output = {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": TABLE, "text/plain": "<md>"}}
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [output],
            "source": "display(Markdown(table))"}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# A table"}, cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


@pytest.mark.slow
def test_a_markdown_table_output_becomes_an_html_table(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx_config = {k: v for k, v in config["sphinx"]["config"].items() if not k.startswith("bibtex")}
    book = {"title": "t", "execute": {"execute_notebooks": "off"}, "parse": config["parse"],
            "sphinx": {"config": sphinx_config}, "only_build_toc_files": True}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(book))
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "page"}))
    (tmp_path / "page.ipynb").write_text(json.dumps(_notebook()))
    run = subprocess.run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(tmp_path), "--path-output",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    html = (tmp_path / "out" / "_build" / "html" / "page.html").read_text()
    cells = html[html.index("<table"):html.index("</table>")]
    assert "CNN" in cells and "99.1 ± 0.2 (99.4)" in cells and "<td" in cells
    assert "| CNN |" not in html
