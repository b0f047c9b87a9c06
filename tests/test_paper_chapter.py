"""A chapter executed in the paper profile on tiny real-format files, so its paper-only paths run.

Chapter 1 (Theorem 1) is run as nbmake runs it (a fresh kernel, every cell), with the paper
profile's ResNet34 from a local weights file (random, declared unofficial), one epoch per
training (``PROTOLIB_EPOCHS=1``) and the official MNIST layout (all four files, tiny) in the data
root. The chapter's own asserts must hold; the banner must name the override and the weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import make_mnist, write_resnet_weights
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.paper_smoke


def test_chapter_1_runs_in_the_paper_profile(tmp_path, monkeypatch):
    make_mnist(tmp_path / "data", n_test=40, n_train=100)
    weights = write_resnet_weights(tmp_path / "resnet34-random.pth")
    env = {"PROTOLIB_PROFILE": "paper", "PROTOLIB_EPOCHS": "1", "PROTOLIB_WEIGHTS": str(weights),
           "PROTOLIB_WEIGHTS_UNOFFICIAL": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           # the kernel takes this process's share of the cores (see conftest), not every core
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    nb = nbformat.read(ROOT / "book" / "01_theorem1.ipynb", as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    banner = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("name") == "stdout")
    assert "protolib profile : paper" in banner and "NOT the official ImageNet weights" in banner
    assert "PROTOLIB_EPOCHS override" in banner and "MNIST (official test split, 32 px)" in banner
