"""The command line of the reproduction (``python -m protolib.reproduce``).

    python -m protolib.reproduce --profile quick --datasets digits mnist birds --runs 3 --out results/

writes every step under ``<out>/steps/``, then ``results.csv`` (one row per dataset x seed x row x
metric) and ``table1.md`` / ``table2.md`` (mean +- sample standard deviation over runs, beside the
paper's value).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from protolib.core import config, data
from protolib.core.data import DatasetNotFoundError
from protolib.reproduce.keys import seed_for
from protolib.reproduce.protocol import ALL_DATASETS, run
from protolib.reproduce.records import STEPS, write_outputs


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code: 0 everything ran, 1 some step failed, 2 a dataset is missing or the arguments are wrong."""
    ap = argparse.ArgumentParser(prog="python -m protolib.reproduce",
                                 description="Reproduce the paper's Tables 1 and 2, per dataset and seed, resumable.")
    ap.add_argument("--profile", default=None, help="quick or paper (default: $PROTOLIB_PROFILE or quick)")
    ap.add_argument("--datasets", nargs="+", default=None,
                    help=f"datasets (default: those present among {', '.join(ALL_DATASETS)})")
    ap.add_argument("--runs", type=int, default=None, help="runs per dataset (default: the profile's)")
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--out", default=None, help="results folder (default: <cache>/reproduce)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        prof = config.get_profile(args.profile)
        datasets = args.datasets or [d for d in ALL_DATASETS if data.is_available(d)]
        runs = args.runs or prof.runs
        print(config.describe(prof), flush=True)
        print(f"datasets: {', '.join(datasets)}; runs: {runs} (seeds {', '.join(str(seed_for(r)) for r in range(runs))});"
              f" steps: {', '.join(args.steps)}", flush=True)
        start = time.perf_counter()
        outcome = run(datasets, runs, prof.name, args.out, args.steps, device=args.device, progress=not args.no_progress)
    except (DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_outputs(outcome.results, outcome.out)
    print(f"\n{len(outcome.computed)} step(s) computed now, "
          f"{len(datasets) * runs * len(args.steps) - len(outcome.computed) - len(outcome.failed)} read back, "
          f"{len(outcome.failed)} failed, in {time.perf_counter() - start:.0f} s")
    for t in (1, 2):
        print("\n" + paths[f"table{t}"].read_text())
    for k, why in outcome.failed.items():
        print(f"FAILED {k}: {why}", file=sys.stderr)
    print("written:", ", ".join(str(p) for p in paths.values()))
    return 0 if outcome.ok else 1



__all__ = ["main"]
