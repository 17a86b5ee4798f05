"""``ponder eval compare RUN1 RUN2 …``: runs side by side, and whether a difference is real.

Runs are compared on the problems they share (matched by problem id). For every run after the
first, against the first (the baseline):

* **Paired bootstrap** of the pass@1 difference (Efron & Tibshirani 1993, ch. 16; the usual test
  for paired evaluation scores, e.g. Koehn 2004 for MT): per problem p the score is
  ``s_p = c_p / n`` in each run and ``d_p = s_p(run) - s_p(base)``. Resample the m shared
  problems with replacement B = 10,000 times (fixed seed, so the numbers are reproducible);
  the 95% interval is the 2.5/97.5 percentiles of the resampled mean differences, and the
  two-sided p-value is ``min(1, 2 · min(P*(mean ≤ 0), P*(mean ≥ 0)))``.
* **Sign test** (exact binomial, ties dropped) on the problems where the run beats or loses to the
  baseline; for the binary strategy accuracy (majority vote) this is McNemar's exact test.

A difference is called significant when the bootstrap p-value is below ``alpha`` (0.05).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.evaluate.harness import EvalError
from ponder.evaluate.report import METRICS

BOOTSTRAP = 10_000


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]


def load_run(path: str | Path) -> Run:
    """A finished eval run directory (its ``metrics.json``); errors name the directory."""
    p = Path(path)
    f = p / METRICS if p.is_dir() else p
    if not f.is_file():
        raise EvalError(f"{path}: not an eval run (no {METRICS}; run `ponder eval … --out {path}` first)")
    try:
        m = json.loads(f.read_text())
    except ValueError:
        raise EvalError(f"{f}: not valid JSON") from None
    if "sweep" in m:
        raise EvalError(f"{path} is a --budgets sweep: compare its budget-<B>/ runs instead")
    if "per_problem" not in m:
        raise EvalError(f"{f}: no per-problem scores (not written by ponder eval)")
    d = f.parent
    return Run(d.name or str(d), d, m)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of ``wins`` vs ``losses`` under p = 1/2 (ties dropped)."""
    t = wins + losses
    if t == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(t, i) for i in range(k + 1)) / 2**t
    return min(1.0, 2 * tail)


def paired_bootstrap(diffs: list[float], b: int = BOOTSTRAP, seed: int = 0) -> dict[str, float]:
    """Mean of ``diffs`` with a bootstrap 95% interval and two-sided p-value (module docstring)."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        raise EvalError("no shared problems to compare")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(b, d.size))].mean(axis=1)
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    if np.all(d == 0):
        p = 1.0
    return {"diff": float(d.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5)), "p": p}


def compare_runs(paths: list[str | Path], alpha: float = 0.05) -> dict[str, Any]:
    """Side-by-side metrics and paired tests of every run against the first."""
    if len(paths) < 2:
        raise EvalError("compare needs at least two runs")
    runs = [load_run(p) for p in paths]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same directory names under different parents
        names = [str(r.path) for r in runs]
    shared = set(runs[0].metrics["per_problem"])
    for r in runs[1:]:
        shared &= set(r.metrics["per_problem"])
    if not shared:
        raise EvalError("the runs share no problems (different tasks, splits or --limit?)")
    ids = sorted(shared)
    ks = sorted(set.intersection(*(set(r.metrics["pass@k"]) for r in runs)), key=int)
    rows: list[tuple[str, list[Any]]] = [
        ("problems", [r.metrics["complete_problems"] for r in runs]),
        ("n", [r.metrics["n"] for r in runs]),
        ("pass@1", [r.metrics["pass@1"]["mean"] for r in runs]),
        *((f"pass@{k}", [r.metrics["pass@k"][k] for r in runs]) for k in ks if k != "1"),
        *((f"maj@{k}", [r.metrics["maj@k"][k] for r in runs]) for k in ks),
        ("strategy accuracy", [r.metrics["strategy"]["accuracy"]["mean"] for r in runs]),
        ("tokens/problem", [r.metrics["tokens"]["per_problem"]["total"] for r in runs]),
        ("reasoning tokens/sample", [r.metrics["tokens"]["per_sample"]["reasoning"] for r in runs]),
        ("truncated", [r.metrics["truncated_share"] for r in runs]),
        ("wall s", [r.metrics["wall_seconds"] for r in runs]),
    ]
    base = runs[0].metrics["per_problem"]
    tests = []
    for name, r in zip(names[1:], runs[1:]):
        pp = r.metrics["per_problem"]
        diffs = [pp[i]["c"] / pp[i]["n"] - base[i]["c"] / base[i]["n"] for i in ids]
        boot = paired_bootstrap(diffs)
        wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        vote_w = sum(pp[i]["maj"] and not base[i]["maj"] for i in ids)
        vote_l = sum(base[i]["maj"] and not pp[i]["maj"] for i in ids)
        tests.append({
            "run": name, "baseline": names[0], "shared_problems": len(ids),
            "pass@1_diff": boot["diff"], "ci_low": boot["low"], "ci_high": boot["high"], "p_bootstrap": boot["p"],
            "wins": wins, "losses": losses, "ties": len(ids) - wins - losses, "p_sign": sign_test(wins, losses),
            "maj_wins": vote_w, "maj_losses": vote_l, "p_mcnemar_maj": sign_test(vote_w, vote_l),
            "significant": boot["p"] < alpha,
        })
    return {"runs": names, "paths": [str(r.path) for r in runs], "rows": rows, "tests": tests, "alpha": alpha,
            "shared_problems": len(ids)}


def _fmt(label: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if label.startswith(("pass@", "maj@", "strategy", "truncated")):
        return f"{100 * v:.1f}%"
    return f"{v:,.1f}" if isinstance(v, float) else str(v)


def _delta(label: str, base: Any, v: Any) -> str:
    if not isinstance(v, (int, float)) or not isinstance(base, (int, float)) or math.isnan(v - base):
        return "–"
    if label.startswith(("pass@", "maj@", "strategy", "truncated")):
        return f"{100 * (v - base):+.1f} pt"
    if isinstance(v, int) and isinstance(base, int):
        return f"{v - base:+d}"
    return f"{v - base:+,.1f}"


def describe_tests(result: dict[str, Any]) -> list[str]:
    """One sentence per paired test (plain text, shared by the terminal and Markdown output)."""
    return [
        f"{s['run']} vs {s['baseline']}: pass@1 {100 * s['pass@1_diff']:+.1f} pt "
        f"[95% CI {100 * s['ci_low']:+.1f}, {100 * s['ci_high']:+.1f}], paired bootstrap p={s['p_bootstrap']:.3g} "
        f"-> {'significant' if s['significant'] else 'not significant'} at alpha={result['alpha']}; sign test "
        f"{s['wins']} wins / {s['losses']} losses (p={s['p_sign']:.3g}); majority vote McNemar "
        f"{s['maj_wins']}/{s['maj_losses']} (p={s['p_mcnemar_maj']:.3g})"
        for s in result["tests"]]


def to_markdown(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table plus the tests."""
    names = result["runs"]
    head = ["metric", *names, *(f"Δ {n}" for n in names[1:])]
    lines = [f"{len(names)} runs on {result['shared_problems']} shared problems (baseline: {names[0]})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, vals in result["rows"]:
        lines.append("| " + " | ".join([label, *(_fmt(label, v) for v in vals),
                                        *(_delta(label, vals[0], v) for v in vals[1:])]) + " |")
    return "\n".join(lines + [""] + [f"- {t}" for t in describe_tests(result)]) + "\n"


def render(result: dict[str, Any], console=None) -> None:
    """Print the side-by-side table and the tests with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = result["runs"]
    t = Table(title=f"{len(names)} runs on {result['shared_problems']} shared problems")
    t.add_column("metric")
    for n in names:
        t.add_column(n, justify="right")
    for n in names[1:]:
        t.add_column(f"Δ {n}", justify="right")
    for label, vals in result["rows"]:
        deltas = [_delta(label, vals[0], v) for v in vals[1:]]
        t.add_row(label, *(_fmt(label, v) for v in vals), *deltas)
    console.print(t)
    for line, s in zip(describe_tests(result), result["tests"]):
        color = "green" if s["significant"] else "yellow"
        console.print(line.replace("-> significant", f"-> [{color}]significant[/]").replace(
            "-> not significant", f"-> [{color}]not significant[/]"), highlight=False)
