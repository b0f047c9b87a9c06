"""``python -m protolib.reproduce.geometry --recipe w16 --seeds 0 1 2 --out DIR``: record the 224 px run."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from protolib.reproduce.geometry.recipe import RECIPES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protolib.reproduce.geometry",
                                     description="Train, explain and evaluate on the 224 px birds, one JSON per seed.")
    parser.add_argument("--recipe", default="w16", choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True, help="folder of the per-seed JSON files (created)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, ... (default: $PROTOLIB_DEVICE, else CUDA when present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        parser.error(f"seeds must be >= 0, got {args.seeds}")
    from protolib.reproduce.geometry import summary
    from protolib.reproduce.geometry.record import run

    run(args.recipe, args.seeds, args.out, device=args.device, progress=not args.quiet)
    records = summary.load_records(args.out, args.recipe)
    for line in summary.versions(records):
        print(line)
    print(f"Table 2 at {records[0]['provenance']['settings']['image_size']} px, recipe {args.recipe}, "
          f"seeds {[r['provenance']['seed'] for r in records]} (mean ± 95 % interval over seeds):")
    print(summary.table(records, "table2", 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
