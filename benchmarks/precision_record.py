"""Does the bfloat16 training path move the quick record's accuracies? Two records side by side.

The quick record (``protolib/reproduce/results/quick``, three seeds) is made with the training path
this CPU takes by default (:mod:`protolib.core.precision`); ``benchmarks/records/quick-float32``
keeps the same record made in IEEE float32 (``PROTOLIB_TRAIN_PRECISION=float32``). For every
Table 2 cell this prints both means, their difference, and the seed spread: the pooled standard
deviation over the two records' seeds. The fast path is honest when the difference is within the
spread (``|diff| <= 1 sd``) and never beyond what two records of three seeds can show
(``|diff| <= t(0.95, 4) * sd * sqrt(2/3)``, a 90 % two-sample band).

    .venv/bin/python benchmarks/precision_record.py [--fast DIR] [--float32 DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

from scipy.stats import t as student_t

ROOT = Path(__file__).resolve().parents[1]


def cells(folder: Path) -> dict[tuple[str, str, str], dict[int, float]]:
    """(dataset, row, split) -> {seed: accuracy %} of Table 2 in ``folder/results.csv``."""
    out: dict = defaultdict(dict)
    with open(folder / "results.csv") as f:
        for r in csv.DictReader(f):
            if r["table"] == "2":
                out[(r["dataset"], r["row"], r["metric"])][int(r["seed"])] = float(r["value"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", type=Path, default=ROOT / "protolib/reproduce/results/quick")
    parser.add_argument("--float32", type=Path, default=ROOT / "benchmarks/records/quick-float32")
    args = parser.parse_args()
    fast, slow = cells(args.fast), cells(args.float32)
    print(f"fast path: {args.fast}\nfloat32  : {args.float32}\n")
    print(f"{'dataset':7s} {'row':11s} {'split':5s} {'float32':>14s} {'fast':>14s} {'diff':>6s} {'sd':>5s}  verdict")
    within, beyond = 0, []
    for key in sorted(slow):
        a, b = list(slow[key].values()), list(fast.get(key, {}).values())
        if len(a) < 2 or len(b) < 2:
            continue
        sd = math.sqrt(((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b))
                       / (len(a) + len(b) - 2))
        diff = statistics.mean(b) - statistics.mean(a)
        band = student_t.ppf(0.95, len(a) + len(b) - 2) * sd * math.sqrt(1 / len(a) + 1 / len(b))
        floor = 0.1          # a spread of 0 over seeds (100 % train accuracy) tolerates rounding only
        ok_sd, ok_band = abs(diff) <= max(sd, floor), abs(diff) <= max(band, floor)
        within += ok_sd
        if not ok_band:
            beyond.append(key)
        verdict = "within 1 sd" if ok_sd else ("within the 90 % band" if ok_band else "BEYOND the 90 % band")
        print(f"{key[0]:7s} {key[1]:11s} {key[2]:5s} {statistics.mean(a):7.1f} ± {statistics.stdev(a):4.1f} "
              f"{statistics.mean(b):7.1f} ± {statistics.stdev(b):4.1f} {diff:+6.1f} {sd:5.1f}  {verdict}")
    total = sum(1 for k in slow if len(slow[k]) >= 2 and len(fast.get(k, {})) >= 2)
    print(f"\n{within} of {total} cells within one seed sd; {len(beyond)} beyond the 90 % band: {beyond}")


if __name__ == "__main__":
    main()
