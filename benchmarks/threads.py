"""How to share the CPU cores between parallel jobs: training throughput of the quick backbone.

Four arrangements on a machine with N cores: one process with N threads; two processes with N
threads each (what two pytest-xdist workers or two notebook kernels get by default), first with
OpenMP's default waiting (threads spin at every barrier), then with ``OMP_WAIT_POLICY=PASSIVE``
(they sleep); two processes with N/2 threads each. Each process trains ResNet18 at 32 px on random
tensors; the script prints the images per second of every process and the total, with the ratio to
the single process measured in the same run. This is what the Makefile's choices (parallel unit
tests with one thread per worker, the reader's two chapters at once with passive waiting, the
book's chapters one at a time) rest on. The wait policy changes how idle threads wait, never what
they compute: the thread count, which does change the rounding, stays N.

    .venv/bin/python benchmarks/threads.py [--steps 8] [--batch 128]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

WORKER = """
import sys, time, torch
from protolib.core.models import build_model
threads, steps, batch = map(int, sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = build_model("resnet18", 10).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
step(); step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(steps * batch / (time.perf_counter() - start))
"""


def run(jobs: int, threads: int, steps: int, batch: int, passive: bool = False) -> list[float]:
    """Start ``jobs`` processes at once, each with ``threads`` torch threads (idle threads sleeping
    if ``passive``, else OpenMP's default, whatever the caller's environment says); their images/s."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(steps), str(batch)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(jobs)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    print(f"{cores} cores; ResNet18, 32 px, batch {args.batch}, {args.steps} timed SGD steps per process")
    base = None
    for jobs, threads, passive in ((1, cores, False), (2, cores, False), (2, cores, True), (2, half, False)):
        start = time.perf_counter()
        rates = run(jobs, threads, args.steps, args.batch, passive)
        total = sum(rates)
        base = base or total
        each = ", ".join(f"{r:.0f}" for r in rates)
        waiting = ", passive waiting" if passive else ""
        print(f"{jobs} process(es) x {threads} thread(s){waiting}: {each} images/s each, total {total:.0f} "
              f"({total / base:.2f}x one process), {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
