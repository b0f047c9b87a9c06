"""What a reader outside the checkout gets: one project address everywhere, the same install cell
in every chapter, extras that cover every chapter's imports, and optional imports that name the
extra to install when they are missing."""

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from protolib.core import extras as _extras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
URL = PYPROJECT["project"]["urls"]["Repository"]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# The first code cell of every chapter, word for word; {url} is pyproject.toml's address.
INSTALL_CELL = '''\
# Runs only where protolib is missing (Colab, a bare Jupyter): installs it with the book's extras.
import importlib.util

if importlib.util.find_spec("protolib") is None:
    print("Installing protolib[book] from {url} (a minute or two)")
    %pip install -q "protolib[book] @ git+{url}"'''


def _requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()


def _install_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_the_address_is_written_once_and_copied_faithfully():
    assert URL == PYPROJECT["project"]["urls"]["Homepage"] == "https://github.com/protolib/protolib"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == URL
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["repository"]["path_to_book"] == ""       # Colab opens <url>/blob/main/book/...
    readme = (ROOT / "README.md").read_text()
    assert URL in readme
    others = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme)) - {URL}
    assert not others, f"the README names other repository addresses: {others}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_opens_with_the_same_install_cell(path):
    assert _install_cell(path) == INSTALL_CELL.format(url=URL), \
        f"{path.name}: the first code cell must be tests/test_packaging.py's INSTALL_CELL"


def _run_install_cell(monkeypatch, missing: bool) -> list[tuple[str, str]]:
    """Execute the install cell as IPython would, with %pip recorded instead of run."""
    from IPython.core.inputtransformer2 import TransformerManager
    code = TransformerManager().transform_cell(INSTALL_CELL.format(url=URL))
    calls = []
    shell = type("Shell", (), {"run_line_magic": lambda self, name, line: calls.append((name, line))})()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if missing and name == "protolib" else real(name, *a))
    exec(compile(code, "install-cell", "exec"), {"get_ipython": lambda: shell})
    return calls


def test_the_install_cell_installs_the_book_extras_only_where_protolib_is_missing(monkeypatch, capsys):
    assert _run_install_cell(monkeypatch, missing=False) == []
    assert capsys.readouterr().out == ""
    assert _run_install_cell(monkeypatch, missing=True) == [
        ("pip", f'install -q "protolib[book] @ git+{URL}"')]
    assert capsys.readouterr().out == f"Installing protolib[book] from {URL} (a minute or two)\n"


# import name -> distribution, for the chapters' third-party imports
DISTRIBUTION = {"sklearn": "scikit-learn", "IPython": "ipython", "pytorch_grad_cam": "grad-cam",
                "umap": "umap-learn", "faiss": "faiss-cpu", "PIL": "pillow"}


def _chapter_imports() -> set[str]:
    found = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                found |= set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", "".join(cell["source"]), re.M))
    return found - set(sys.stdlib_module_names) - {"protolib"}


def test_the_book_extra_covers_every_chapter_import_and_every_other_extra():
    core = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {k: {_requirement_name(r) for r in v} for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    needed = {DISTRIBUTION.get(m, m).lower() for m in _chapter_imports()}
    assert {"torch", "dask", "scikit-learn", "ipython"} <= needed      # the scan sees the imports
    assert needed <= core | extras["book"], f"chapters import {sorted(needed - core - extras['book'])}"
    for name, packages in extras.items():
        assert packages <= extras["book"], f"protolib[{name}] has {packages - extras['book']} that [book] lacks"


def test_the_core_install_stays_small_and_optional_modules_map_to_extras():
    core = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    for module, (package, extra) in _extras.OPTIONAL.items():
        assert _requirement_name(package) not in core, f"{package} belongs to an extra, not the core"
        assert package in [r.split(">")[0] for r in extras[extra]], (module, extra)
        assert package in [r.split(">")[0] for r in extras["book"]], module


def test_protolib_imports_optional_packages_only_through_require():
    offenders = []
    for path in (ROOT / "protolib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in _extras.OPTIONAL]
    assert not offenders, f"import these through protolib.core.extras.require: {offenders}"


CALLS = [
    ("faiss", lambda: __import__("protolib.method.explain.kmeans_backends", fromlist=["x"])._import_faiss()),
    ("dask", lambda: __import__("protolib.method.explain.kmeans_dask", fromlist=["x"])._import_dask()),
    ("umap", lambda: __import__("protolib.viz", fromlist=["x"]).prototype_umap(*[None] * 7)),
    ("captum", lambda: __import__("protolib.method.explain.cam", fromlist=["x"]).grad_cam(None, None, 0)),
]


@pytest.mark.parametrize("module, call", CALLS, ids=[m for m, _ in CALLS])
def test_a_missing_extra_names_the_install_command(monkeypatch, module, call):
    for name in [m for m in sys.modules if m.startswith(f"{module}.")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)        # importing `module` (or a part) now fails
    with pytest.raises(ImportError, match=re.escape('pip install "protolib[book]"')) as err:
        call()
    assert not isinstance(err.value, ModuleNotFoundError) and module in str(err.value)


def test_require_refuses_a_module_it_does_not_know():
    with pytest.raises(ValueError, match="'pandas' is not one of protolib's optional modules"):
        _extras.require("pandas", "a test")
