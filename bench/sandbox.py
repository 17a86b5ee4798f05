"""Throughput of ``run_code`` on trivial programs, against unsandboxed subprocess baselines.

Each row runs the same trivial job -- ``print(1)`` checked by one assert test -- many times
from a thread pool of 1, 2 and 4 workers and reports runs per second. Baselines, measured in
the same run:

* ``subprocess -c``: ``subprocess.run([sys.executable, "-c", code + test])``, no isolation,
  no limits (what a naive evaluator does; pays for ``site`` and the venv's .pth files);
* ``subprocess -I -S``: the same with the flags the sandbox uses, so the ratio against it is
  the cost of isolation alone (bwrap, namespaces, the driver's fork, limits).

``overhead`` = baseline runs/s ÷ sandbox runs/s at the same worker count (>1: slower).
Target: ≥ 30 sandboxed runs/s on 2 cores. The machine may be shared: numbers are indicative.

A second table times the ``accuracy`` reward on a batch of code completions (every built-in
code problem's reference solution, ``--batch`` times each), judged one at a time
(``JUDGE_THREADS=1``, the baseline) and from the reward's thread pool, cache cleared before each.

    .venv/bin/python bench/sandbox.py [--runs 200] [--workers 1,2,4] [--batch 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ponder.verify.sandbox import run_code, sandbox_mode

CODE = "print(1)"
TEST = "assert 1 == 1"


def sandboxed() -> None:
    r = run_code(CODE, [TEST])
    if not r.passed:
        raise RuntimeError(f"trivial run failed: {r.reason} {r.detail}")


def plain(*flags: str) -> Callable[[], None]:
    def run() -> None:
        p = subprocess.run([sys.executable, *flags, "-c", f"{CODE}\n{TEST}"], capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode())

    return run


def rate(fn: Callable[[], None], runs: int, workers: int) -> float:
    """Runs per second of ``fn`` called ``runs`` times from ``workers`` threads."""
    fn()  # warm-up (first call probes bwrap)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(fn) for _ in range(runs)]:
            f.result()
    return runs / (time.perf_counter() - start)


def reward_batch(copies: int) -> None:
    """Seconds for ``accuracy`` on code completions: sequential vs the reward's thread pool."""
    import json

    from ponder.rewards import accuracy, functions
    from ponder.tasks import get_task

    exs = list(get_task("code").examples())
    comps = [f"<think>attempt {k}</think>```python\n{e['gold']}```" for k in range(copies) for e in exs]
    cols = {"gold": [e["gold"] for _ in range(copies) for e in exs], "task": ["code"] * len(comps),
            "meta": [json.dumps(e["meta"]) for _ in range(copies) for e in exs],
            "id": [e["id"] for _ in range(copies) for e in exs]}  # fmt: skip
    pooled = functions.JUDGE_THREADS
    times = {}
    for threads in (1, pooled):
        functions.JUDGE_THREADS = threads
        functions._judge.cache_clear()
        start = time.perf_counter()
        scores = accuracy(comps, **cols)
        times[threads] = time.perf_counter() - start
        if scores != [1.0] * len(comps):
            raise RuntimeError(f"reference solutions scored {scores}")
    functions.JUDGE_THREADS = pooled
    print(f"\naccuracy reward on {len(comps)} code completions")
    print(f"{'sequential s':>13} {f'{pooled} threads s':>12} {'speed-up':>9}")
    print(f"{times[1]:>13.2f} {times[pooled]:>12.2f} {times[1] / times[pooled]:>8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="runs per measurement")
    ap.add_argument("--workers", default="1,2,4", help="comma-separated thread-pool sizes")
    ap.add_argument("--batch", type=int, default=3, help="copies of each code problem in the reward batch (0: skip)")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    print(f"sandbox mode: {sandbox_mode()}   cores: {os.cpu_count()}   runs per cell: {args.runs}")
    print(f"{'workers':>7} {'sandbox/s':>10} {'subprocess -c/s':>16} {'overhead':>9} {'-I -S/s':>9} {'overhead':>9}")
    for w in workers:
        s = rate(sandboxed, args.runs, w)
        b = rate(plain(), args.runs, w)
        i = rate(plain("-I", "-S"), args.runs, w)
        print(f"{w:>7} {s:>10.1f} {b:>16.1f} {b / s:>8.2f}x {i:>9.1f} {i / s:>8.2f}x")
    if args.batch > 0:
        reward_batch(args.batch)


if __name__ == "__main__":
    main()
