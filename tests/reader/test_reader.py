"""A reader's path, minus Colab: a wheel of protolib in a fresh virtual environment outside the
checkout, one chapter copied alone into an empty folder, executed with nbmake.

Chapter 1 gets the core install (``pip install protolib``), chapter 7 the ``[book]`` extras and
the results record that ships inside the package. The environment is made by ``uv`` from the
package index alone (no access to the checkout: the chapter's folder is empty, PYTHONPATH is
cleared, and the test checks that ``protolib`` comes from the new environment's site-packages).
``uv`` hardlinks wheels from its cache, so a warm run costs seconds instead of minutes of copying.

The cache (``PROTOLIB_CACHE``) of the calling run is shared with the chapter, so chapter 7 reads
the backbones that the main run trained instead of training them again: the cache is not part of
the path being proven, the install and the lone notebook are. The data is not shared: as on a
fresh Colab, ``PROTOLIB_DATA`` is an empty folder, so MNIST's files are absent and each chapter
runs on the datasets that need no download (scikit-learn's digits, the synthetic birds). Run with
``make test-reader`` (part of ``make test``), which runs the two chapters at once, each in a
pytest-xdist worker of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.reader
ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = {"core": "01_theorem1.ipynb", "book": "07_reproduction.ipynb"}
TOOLS = ["nbmake>=1.5", "pytest>=8", "ipykernel>=6.29,<7"]  # what runs the notebook (see requirements.txt)


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("the reader's test needs uv (requirements.txt): pip install uv")
    return found


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 1800) -> str:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"[{time.perf_counter() - start:6.1f} s] {' '.join(cmd[:4])} ...")
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the working tree, built from a copy of what the package is made of (building
    in the checkout would leave build/ and *.egg-info behind)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(ROOT / "protolib", src / "protolib", ignore=shutil.ignore_patterns("__pycache__"))
    _run([_uv(), "build", "--wheel", "--quiet", "--out-dir", str(dist), str(src)], cwd=dist)
    (found,) = dist.glob("protolib-*.whl")
    return found


def _reader_env(venv: Path, data: Path) -> dict:
    """The caller's environment with the new venv first and ``data`` (empty) as the data root;
    without PYTHONDONTWRITEBYTECODE (set on some machines), so that the first import writes torch's
    bytecode as a reader's Python does, and the notebook's kernel does not compile torch from source
    again (about 10 s a process here)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PROTOLIB_DATA"] = str(data)
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        # Two chapters' kernels share the cores (make test-reader runs both tests at once), each with the
        # default thread count (which the chapters' numbers depend on): idle OpenMP threads sleep instead
        # of spinning, or each kernel's threads wait on the other's (benchmarks/threads.py).
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@pytest.mark.parametrize("extra", list(CHAPTERS))
def test_a_lone_chapter_runs_after_installing_the_wheel(wheel, tmp_path, extra):
    venv, folder = tmp_path / "venv", tmp_path / "reader"
    folder.mkdir()
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path)
    target = f"{wheel}[book]" if extra == "book" else str(wheel)
    _run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), target, *TOOLS],
         cwd=tmp_path)
    (tmp_path / "data").mkdir()
    env = _reader_env(venv, tmp_path / "data")
    where = _run([str(venv / "bin" / "python"), "-c", "import protolib; print(protolib.__file__)"],
                 cwd=folder, env=env)
    assert Path(where.strip()).is_relative_to(venv), f"protolib came from {where.strip()}, not the new environment"
    chapter = shutil.copy(ROOT / "book" / CHAPTERS[extra], folder)
    assert sorted(p.name for p in folder.iterdir()) == [CHAPTERS[extra]]
    assert not any((tmp_path / "data").iterdir())  # no MNIST, no dataset to read but the bundled ones
    _run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
          "--nbmake-timeout=1800", Path(chapter).name], cwd=folder, env=env)
