"""Benchmark: ``ponder eval`` throughput against an endpoint (concurrency 1 vs 16), and the
harness's own cost per sample.

1. **Endpoint throughput.** A local OpenAI-compatible server (``ponder.testing.
   scripted_server``: real HTTP on 127.0.0.1, uvicorn) answers every request after a fixed
   latency (default 100 ms, a stand-in for a real server's generation time; it answers correctly,
   so every run must score 100%). The same ``run_eval`` (addition task, n=1, ``--limit`` problems)
   runs with ``--concurrency 1`` (the baseline: one request at a time) and ``16``; each run starts
   from an empty directory. Prints problems/s of both and the ratio. The ideal ratio is bounded by
   16 and by the client overhead per request (the ``openai`` client, JSON, scoring, records).
2. **Harness overhead.** An in-process backend that returns precomputed completions instantly
   (no generation at all), n=8: the wall time per sample of a whole ``run_eval`` (prompting,
   scoring with the task verifier, appending + flushing records, progress, metrics with maj@k
   answer grouping, report and PNGs), next to the baseline of scoring the same completions with
   ``task.score`` in a bare loop. The difference is what the harness itself adds per sample.

    .venv/bin/python bench/eval.py [--limit 64] [--latency 0.1] [--overhead-problems 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.evaluate.harness import EvalConfig, run_eval  # noqa: E402
from ponder.generate.types import Completion  # noqa: E402
from ponder.tasks import get_task  # noqa: E402
from ponder.testing import arithmetic_answer, scripted_server  # noqa: E402

TASK = "addition:digits=3,n_test=500"


def endpoint(limit: int, latency: float) -> dict[int, float]:
    rates = {}
    with scripted_server(latency=latency) as srv, tempfile.TemporaryDirectory() as tmp:
        for conc in (1, 16):
            cfg = EvalConfig(model=srv.spec, task=TASK, n=1, limit=limit, concurrency=conc,
                             out=os.path.join(tmp, f"c{conc}"))
            t = time.perf_counter()
            res = run_eval(cfg, progress=False)
            dt = time.perf_counter() - t
            assert res.metrics["pass@1"]["mean"] == 1.0, res.metrics["pass@1"]
            rates[conc] = limit / dt
            print(f"concurrency {conc:>2}: {limit} problems in {dt:6.2f} s = {rates[conc]:6.1f} problems/s "
                  f"(server saw at most {srv.max_in_flight} requests at once)", flush=True)
            srv.max_in_flight = 0
    return rates


class Instant:
    """Returns a fixed correct completion per question, with no generation cost."""

    concurrent = True  # behave like an endpoint backend (bare prompts)

    def generate(self, prompts, n=1, sampling=None, budget=None):
        out = []
        for p in prompts:
            text = f"<think>I add the columns of {p}</think>The answer is \\boxed{{{arithmetic_answer(p)}}}."
            c = Completion(text=text, token_ids=[], reasoning="", answer="", reasoning_tokens=12, answer_tokens=6,
                           finish_reason="stop")
            out.append([c] * n)
        return out


def overhead(problems: int, n: int = 8) -> tuple[float, float, float]:
    """(harness seconds per sample, bare scoring seconds per sample, fixed seconds per run).

    The per-sample cost is the slope between a run of ``problems // 4`` and one of ``problems``
    problems (after a warm-up run that pays the one-off imports), so the fixed cost of a run --
    metrics, report.md and its PNGs -- is separated from what each sample costs.
    """
    task = get_task(TASK)
    examples = list(islice(task.examples("test"), problems))
    backend = Instant()
    texts = [(backend.generate([e["prompt"]])[0][0].text, e) for e in examples]
    t = time.perf_counter()
    for _ in range(n):
        for text, e in texts:
            task.score(text, e)
    bare = (time.perf_counter() - t) / (problems * n)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (problems // 4, problems // 4, problems):  # the first is the warm-up
            cfg = EvalConfig(model="instant", task=TASK, n=n, limit=size, concurrency=1, out=f"{tmp}/r{len(times)}-{size}")
            t = time.perf_counter()
            run_eval(cfg, backend, progress=False)
            times[len(times)] = (size, time.perf_counter() - t)
    (p1, t1), (p2, t2) = times[1], times[2]
    per_sample = (t2 - t1) / ((p2 - p1) * n)
    return per_sample, bare, t1 - per_sample * p1 * n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=64, help="problems per endpoint run")
    ap.add_argument("--latency", type=float, default=0.1, help="server latency per request (s)")
    ap.add_argument("--overhead-problems", type=int, default=400)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    rates = endpoint(args.limit, args.latency)
    print(f"| concurrency | problems/s |\n|---|---|\n| 1 (baseline) | {rates[1]:.1f} |\n| 16 | {rates[16]:.1f} |")
    print(f"ratio 16 vs 1: {rates[16] / rates[1]:.1f}x (ideal at most 16x with {args.latency * 1000:.0f} ms latency)")
    full, bare, fixed = overhead(args.overhead_problems)
    print(f"harness per sample: {full * 1e3:.3f} ms vs bare task.score {bare * 1e3:.3f} ms "
          f"-> the harness adds {(full - bare) * 1e3:.3f} ms per sample; fixed cost per run "
          f"(metrics, report, PNGs): {fixed:.2f} s")


if __name__ == "__main__":
    main()
