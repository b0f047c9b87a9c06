"""The benchmark scripts run end to end on tiny settings (their figures are for idle machines, not
for tests: only that every part runs and prints its lines is checked here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_maps_scale_runs_both_parts_on_tiny_settings():
    args = ["--classes", "3", "--images", "2", "--k", "2", "--max-iter", "5", "--assign", "4", "--arch", "resnet18",
            "--size", "64", "--batch", "2", "--repeats", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "maps_scale.py"), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("fit: 3 classes x 2 images", "assignment: 4 images to 6 prototypes", "peak resident memory",
                 "explanation + importance maps (eq. 11, chain)", "ours / Grad-CAM"):
        assert line in out.stdout, out.stdout
