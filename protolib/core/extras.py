"""Optional dependencies: import one, or fail with the install command that brings it.

``pip install protolib`` is the core (Theorem 1, KMEx, explanation maps); the chapters and a few
functions need more. Every optional import in protolib goes through :func:`require`, so that a
missing package reads ``pip install "protolib[book]"`` rather than a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# top-level module -> (the PyPI package that provides it, the smallest extra of protolib with it);
# pyproject.toml's [project.optional-dependencies] lists the same packages (tests/test_packaging.py).
OPTIONAL = {
    "umap": ("umap-learn", "viz"),
    "ipywidgets": ("ipywidgets", "viz"),
    "captum": ("captum", "eval"),
    "pytorch_grad_cam": ("grad-cam", "eval"),
    "faiss": ("faiss-cpu", "scale"),
    "dask": ("dask[distributed]", "scale"),
}


def install_hint(module: str) -> str:
    """The sentence that says how to install the optional package providing ``module``."""
    top = module.split(".")[0]
    if top not in OPTIONAL:
        raise ValueError(f"{module!r} is not one of protolib's optional modules {sorted(OPTIONAL)}")
    package, extra = OPTIONAL[top]
    return (f'pip install "protolib[book]" (everything the book uses) or '
            f'pip install "protolib[{extra}]" (just {package})')


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (dotted names allowed), or raise ImportError naming the extra to install.

    ``purpose`` says what needs it, e.g. ``"the faiss k-means backend"``."""
    hint = install_hint(module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the optional package {OPTIONAL[module.split('.')[0]][0]!r}, "
                          f"which is not installed ({err}). Install it with: {hint}") from err
