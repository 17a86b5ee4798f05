"""Metrics of an eval run, recomputed from its records, and the report (``report.md`` + PNGs).

Everything here is a pure function of ``samples.jsonl`` (and ``strategy.jsonl``), so any number
in a report can be re-derived and audited from the saved run. Formulas: docs/evaluation.md and
``ponder.evaluate.metrics``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ponder.evaluate.contamination import report_lines as contamination_lines
from ponder.evaluate.judge import judge_metrics
from ponder.evaluate.judge import report_lines as judge_lines
from ponder.evaluate.metrics import canonical_groups, maj_at_k, mean_ci, pass_at_k

METRICS = "metrics.json"  # every number of a run, recomputed from its records

def ks_for(n: int) -> list[int]:
    """The k of pass@k / maj@k: powers of two up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


#: answers longer than this, or spanning lines (programs of the code task), vote by exact text:
#: math equivalence is meaningless for them and its sympy fallback could take seconds per pair.
MATH_VOTE_MAX_CHARS = 200


def answers_equal(a: str, b: str) -> bool:
    """Two extracted answers vote together when they are the same string or ``math_equal``."""
    if a.strip() == b.strip():
        return True
    if max(len(a), len(b)) > MATH_VOTE_MAX_CHARS or "\n" in a or "\n" in b:
        return False
    from ponder.verify.math import math_equal

    try:
        return math_equal(a, b, timeout=2.0)
    except Exception:  # noqa: BLE001 - an unparsable answer simply forms its own group
        return False


def _ci(values: Sequence[float]) -> dict[str, float]:
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def compute_metrics(records: list[dict], examples: list[dict], cfg, *, wall_seconds: float = float("nan"),
                    strategy_records: list[dict] | None = None) -> dict[str, Any]:
    """Every metric of the report from the sample records of one run.

    Only *complete* problems (all n samples present) enter the accuracy metrics; a run stopped
    early reports how many problems are incomplete instead of silently averaging fewer samples.
    """
    n = cfg.n
    order = [e["id"] for e in examples]
    by_id: dict[str, dict[int, dict]] = {}
    for r in records:
        if 0 <= r.get("sample", -1) < n:
            by_id.setdefault(r["id"], {}).setdefault(r["sample"], r)
    complete = [i for i in order if len(by_id.get(i, {})) == n]
    ks = ks_for(n)
    per_problem: dict[str, dict[str, Any]] = {}
    pass_k = {k: [] for k in ks}
    maj_k = {k: [] for k in ks}
    for pid in complete:
        samples = [by_id[pid][j] for j in range(n)]
        correct = [bool(s["correct"]) for s in samples]
        c = sum(correct)
        keys = canonical_groups([s.get("answer") for s in samples], answers_equal)
        for k in ks:
            pass_k[k].append(pass_at_k(n, c, k))
            maj_k[k].append(float(maj_at_k(keys, correct, k)))
        per_problem[pid] = {"c": c, "n": n, "maj": bool(maj_k[n][-1]), "meta": samples[0].get("meta", {})}
    used = [r for pid in complete for r in by_id[pid].values()]
    all_samples = [r for d in by_id.values() for r in d.values()]
    m = len(complete)
    scores = [per_problem[p]["c"] / n for p in complete]
    tok = lambda key, rs: _mean([r[key] for r in rs])  # noqa: E731
    total_tokens = sum(r["tokens"] for r in all_samples)
    metrics: dict[str, Any] = {
        "model": cfg.model, "task": cfg.task, "split": cfg.split, "n": n,
        "thinking_budget": cfg.thinking_budget, "effort": cfg.effort,
        "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens, "seed": cfg.seed,
        "problems": len(order), "complete_problems": m, "incomplete_problems": len(order) - m,
        "samples": len(all_samples),
        "pass@1": _ci(scores),
        "pass@k": {str(k): _mean(v) for k, v in pass_k.items()},
        "maj@k": {str(k): _mean(v) for k, v in maj_k.items()},
        "tokens": {
            "per_sample": {"reasoning": tok("reasoning_tokens", used), "answer": tok("answer_tokens", used),
                           "total": tok("tokens", used)},
            "per_problem": {"reasoning": n * tok("reasoning_tokens", used), "answer": n * tok("answer_tokens", used),
                            "total": n * tok("tokens", used)},
        },
        "maj@k_ci": _ci(maj_k[n]),
        "truncated_share": _mean([float(r["truncated"]) for r in used]),
        "cut_off_share": _mean([float(bool(r.get("forced_close"))) for r in used]),
        "looped_share": _mean([float(bool(r.get("looped"))) for r in used]),
        "loop_breaks": sum(int(r.get("loop_breaks") or 0) for r in all_samples),
        "waits_per_sample": _mean([float(r.get("waits") or 0) for r in used]),
        "unclosed": sum(1 for r in all_samples if r.get("unclosed")),
        "unclosed_share": _mean([float(bool(r.get("unclosed"))) for r in used]),
        "no_answer_share": _mean([float(r.get("answer") is None) for r in used]),
        "wall_seconds": wall_seconds,
        "tokens_per_second": total_tokens / wall_seconds if wall_seconds and wall_seconds > 0 else float("nan"),
        "samples_per_second": len(all_samples) / wall_seconds if wall_seconds and wall_seconds > 0 else float("nan"),
    }
    if strategy_records is None:
        metrics["strategy"] = {"name": "majority", "accuracy": _ci([float(per_problem[p]["maj"]) for p in complete]),
                               "note": f"majority vote over the n={n} samples (= maj@{n})"}
    else:
        srec = {r["id"]: r for r in strategy_records}
        vals = [float(srec[i]["correct"]) for i in order if i in srec]
        for i in order:
            if i in srec and i in per_problem:
                per_problem[i]["strategy"] = bool(srec[i]["correct"])
        metrics["strategy"] = {"name": cfg.strategy, "accuracy": _ci(vals), "problems": len(vals),
                               "tokens_per_problem": _mean([r["tokens"] for r in srec.values() if r.get("tokens") is not None])}
    metrics["by"] = {f: breakdown(per_problem, f) for f in cfg.by}
    extract = list(getattr(cfg, "extract", []) or [])
    if len(extract) > 1:  # a protocol's other extraction rules on the same completions
        metrics["extractions"] = {extract[0]: metrics["pass@1"]}
        for rule in extract[1:]:
            metrics["extractions"][rule] = _ci([
                _mean([float(bool((by_id[p][j].get("extractions") or {}).get(rule, {}).get("correct"))) for j in range(n)])
                for p in complete])
    if getattr(cfg, "protocol", ""):
        from ponder.evaluate.protocol import overrides

        metrics["protocol"] = {"name": cfg.protocol, "overrides": overrides(cfg)}
    if getattr(cfg, "judge", ""):  # the LLM judge's verdicts and their agreement with the verifier
        metrics["judge"] = judge_metrics(all_samples, cfg)
    metrics["per_problem"] = {p: {k: v for k, v in d.items() if k != "meta"} for p, d in per_problem.items()}
    return metrics


def breakdown(per_problem: dict[str, dict], field: str) -> list[dict[str, Any]]:
    """pass@1 (with CI) and maj@n per value of meta ``field``; problems without it go to "(none)"."""
    groups: dict[str, list[dict]] = {}
    for d in per_problem.values():
        groups.setdefault(str(d["meta"].get(field, "(none)")), []).append(d)

    def order(v: str):  # numbers in numeric order (level 1..5, digits), then text
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)

    rows = []
    for value in sorted(groups, key=order):
        ds = groups[value]
        rows.append({"value": value, "problems": len(ds), "pass@1": _ci([d["c"] / d["n"] for d in ds]),
                     "maj@n": _mean([float(d["maj"]) for d in ds])})
    return rows


# ---------------------------------------------------------------------------- report


def _f(x: Any, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}%" if pct else (f"{x:,.1f}" if isinstance(x, float) else str(x))


def _plot(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    try:
        draw(ax)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def metrics_markdown(metrics: dict) -> list[str]:
    """The main metrics as Markdown table rows (shared by the run report and the sweep report)."""
    p1, st, t = metrics["pass@1"], metrics["strategy"], metrics["tokens"]
    return [
        "| metric | value |", "|---|---|",
        f"| pass@1 (mean over n={metrics['n']}, 95% CI) | {_f(p1['mean'])} [{_f(p1['low'])}, {_f(p1['high'])}] |",
        *(f"| pass@1, extraction `{rule}` (95% CI) | {_f(c['mean'])} [{_f(c['low'])}, {_f(c['high'])}] |"
          for rule, c in (metrics.get("extractions") or {}).items()),
        *(f"| pass@{k} (unbiased) | {_f(v)} |" for k, v in metrics["pass@k"].items() if k != "1"),
        *(f"| maj@{k} | {_f(v)} |" for k, v in metrics["maj@k"].items()),
        f"| strategy `{st['name']}` accuracy | {_f(st['accuracy']['mean'])} [{_f(st['accuracy']['low'])}, {_f(st['accuracy']['high'])}] |",
        f"| tokens per sample: reasoning / answer / total | {_f(t['per_sample']['reasoning'], False)} / {_f(t['per_sample']['answer'], False)} / {_f(t['per_sample']['total'], False)} |",
        f"| tokens per problem (n samples) | {_f(t['per_problem']['total'], False)} |",
        f"| truncated completions (hit max_tokens) | {_f(metrics['truncated_share'])} |",
        f"| looped reasoning (a cycle repeated: ponder.format.loops) | {_f(metrics.get('looped_share'))} |",
        f"| loops broken by --loop-guard | {metrics.get('loop_breaks', 0)} |",
        f"| completions with no extractable answer | {_f(metrics['no_answer_share'])} |",
        f"| wall time (s) | {_f(metrics['wall_seconds'], False)} |",
        f"| tokens/s (generated) | {_f(metrics['tokens_per_second'], False)} |",
    ]


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict_examples(records: list[dict], wrong: int = 5, right: int = 2) -> list[str]:
    """Markdown rows of a few wrong and right samples: the verdicts behind the numbers."""
    records = sorted(records, key=lambda r: (str(r["id"]), r["sample"]))  # not completion order: deterministic
    bad = [r for r in records if not r.get("correct")][:wrong]
    good = [r for r in records if r.get("correct")][:right]
    if not bad and not good:
        return []
    lines = ["## Sample verdicts", "",
             f"The first {len(bad)} wrong and {len(good)} right samples by problem id (all are in `samples.jsonl`).", "",
             "| problem | sample | verdict | extracted answer | gold | end of completion |", "|---|---|---|---|---|---|"]
    for r in bad + good:
        mark = "✓" if r.get("correct") else "✗"
        lines.append(f"| {_clip(r['id'], 40)} | {r['sample']} | {mark} {_clip(r.get('reason', ''), 40)} | "
                     f"{_clip(r.get('answer') if r.get('answer') is not None else '(none)', 40)} | {_clip(r['gold'], 40)} | "
                     f"{_clip(str(r.get('completion', ''))[-160:])} |")
    return lines + [""]


def write_report(out: Path, cfg, metrics: dict, records: list[dict] | None = None) -> Path:
    """``report.md`` with the metrics, pass@k/maj@k curve, breakdowns (PNG + tables) and, given
    the records, a few sample verdicts."""
    lines = [
        f"# Evaluation: {cfg.model} on {cfg.task}", "",
        f"{metrics['complete_problems']} problems ({cfg.split} split) × n={cfg.n} samples, temperature "
        f"{cfg.temperature}, top_p {cfg.top_p}, max_tokens {cfg.max_tokens}, seed {cfg.seed}"
        + (f", thinking budget {cfg.thinking_budget}" if cfg.thinking_budget is not None else "")
        + (f", effort {cfg.effort}" if cfg.effort else "") + ".", "",
    ]
    if metrics.get("protocol"):
        ov = metrics["protocol"]["overrides"]
        lines += [f"Protocol **{metrics['protocol']['name']}** (`protocol.json`: source and file hash)"
                  + ("; fields overridden: " + ", ".join(f"`{k}` {v['protocol']!r} → {v['used']!r}" for k, v in ov.items())
                     if ov else "; no field overridden") + ".", ""]
    if metrics["incomplete_problems"]:
        lines += [f"**Incomplete:** {metrics['incomplete_problems']} problems lack some of their n samples and are "
                  "left out of every accuracy number; rerun with `--resume` to finish them.", ""]
    if metrics.get("unclosed"):
        lines += [f"**Unclosed think blocks:** {metrics['unclosed']} samples never closed `</think>` "
                  f"({100 * metrics['unclosed_share']:.1f}% of the scored ones). Where the prompt pre-filled "
                  "`<think>` their text was judged as the answer (docs/format.md); a model that does not think "
                  "is better evaluated with `--thinking off`.", ""]
    lines += metrics_markdown(metrics) + [""]
    lines += contamination_lines(metrics)  # pass@1 on the clean subset (--check-contamination)
    lines += judge_lines(metrics)  # --judge: verdict counts, agreement with the verifier
    ks = [int(k) for k in metrics["pass@k"]]
    if metrics["complete_problems"] and len(ks) > 1:
        def draw(ax):
            ax.plot(ks, [metrics["pass@k"][str(k)] for k in ks], "o-", label="pass@k")
            ax.plot(ks, [metrics["maj@k"][str(k)] for k in ks], "s--", label="maj@k")
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.set_xlabel("k (samples)")
            ax.set_ylabel("accuracy")
            ax.set_ylim(0, 1.02)
            ax.legend()
            ax.set_title("pass@k and maj@k")

        _plot(out / "pass_at_k.png", draw)
        lines += ["![pass@k and maj@k](pass_at_k.png)", ""]
    for field, rows in metrics["by"].items():
        lines += [f"## By {field}", "", f"| {field} | problems | pass@1 [95% CI] | maj@{cfg.n} |", "|---|---|---|---|"]
        lines += [f"| {r['value']} | {r['problems']} | {_f(r['pass@1']['mean'])} [{_f(r['pass@1']['low'])}, "
                  f"{_f(r['pass@1']['high'])}] | {_f(r['maj@n'])} |" for r in rows]
        if rows:
            def draw(ax, rows=rows, field=field):
                xs = range(len(rows))
                means = [r["pass@1"]["mean"] for r in rows]
                err = [[m - r["pass@1"]["low"] for m, r in zip(means, rows)],
                       [r["pass@1"]["high"] - m for m, r in zip(means, rows)]]
                ax.bar(xs, means, yerr=err, capsize=3, color="#4c72b0")
                ax.set_xticks(list(xs), [r["value"] for r in rows], rotation=30, ha="right", fontsize=8)
                ax.set_ylabel("pass@1")
                ax.set_ylim(0, 1.02)
                ax.set_title(f"pass@1 by {field} (95% CI)")

            safe = "".join(ch if ch.isalnum() else "_" for ch in field)
            _plot(out / f"by_{safe}.png", draw)
            lines += ["", f"![pass@1 by {field}](by_{safe}.png)"]
        lines.append("")
    lines += verdict_examples(records or [])
    lines += ["## Files", "", "- `samples.jsonl`: one audited record per sample (prompt, completion, reasoning, "
              "extracted answer, gold, verdict and reason, tokens)", "- `metrics.json`: every number above",
              "- `config.json`: the settings; rerun or continue with `ponder eval --config config.json --resume`", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


#: the files of a thinking-budget sweep (``ponder eval --budgets`` and ``ponder budget-curve``)
CURVE_CSV, CURVE_PNG = "budget_curve.csv", "budget_curve.png"
#: the columns of ``budget_curve.csv``, one row per budget (accuracy is pass@1 with its 95% interval)
CURVE_COLUMNS = ("budget", "accuracy", "ci_low", "ci_high", "maj@n", "mean_reasoning_tokens", "mean_answer_tokens",
                 "cut_off_rate", "mean_waits", "truncated_share", "problems", "samples", "failed_requests")


def write_budget_report(out: Path, cfg, runs: list[tuple[int, dict]], note: str | None = None) -> dict:
    """The accuracy-vs-thinking-budget curve of a sweep: ``budget_curve.csv``, ``budget_curve.png``,
    ``report.md`` and ``metrics.json`` (``sweep``: one row per budget) in the sweep directory.
    ``note``: what the sweep really varied, when not the budget (a server that ignored it)."""
    import csv

    from ponder.io import write_json_atomic

    rows = []
    for b, m in runs:
        p = m["pass@1"]
        rows.append({"budget": b, "accuracy": p["mean"], "ci_low": p["low"], "ci_high": p["high"],
                     "maj@n": m["maj@k"][str(cfg.n)], "mean_reasoning_tokens": m["tokens"]["per_sample"]["reasoning"],
                     "mean_answer_tokens": m["tokens"]["per_sample"]["answer"], "cut_off_rate": m["cut_off_share"],
                     "mean_waits": m["waits_per_sample"], "truncated_share": m["truncated_share"],
                     "problems": m["complete_problems"], "samples": m["samples"],
                     "failed_requests": m.get("failed_requests", 0), "pass@1": p})
    with open(out / CURVE_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    mode = note or ("cut-off" + (f" + forcing {cfg.min_thinking_frac:g}·B" if cfg.min_thinking_frac else ""))
    problems = rows[0]["problems"] if rows else 0
    _plot_curve(rows, out / CURVE_PNG, f"{cfg.task}: accuracy vs thinking budget ({mode}, n={cfg.n}, {problems} problems)",
                cfg.n)
    lines = [f"# Thinking-budget sweep: {cfg.model} on {cfg.task}", "",
             f"n={cfg.n} samples per problem, temperature {cfg.temperature}; {mode}; one run per budget in `budget-<B>/`.",
             "", f"| budget | pass@1 [95% CI] | maj@{cfg.n} | reasoning tokens / sample | cut off | waits | truncated | problems |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['budget']} | {_f(r['accuracy'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}] | {_f(r['maj@n'])} | "
              f"{_f(r['mean_reasoning_tokens'], False)} | {_f(r['cut_off_rate'])} | {r['mean_waits']:.2f} | "
              f"{_f(r['truncated_share'])} | {r['problems']} |" for r in rows]
    lines += ["", f"![accuracy vs thinking budget]({CURVE_PNG})", ""]
    (out / "report.md").write_text("\n".join(lines))
    metrics = {"model": cfg.model, "task": cfg.task, "n": cfg.n, "note": note, "sweep": rows}
    write_json_atomic(out / METRICS, metrics)
    return metrics


def _plot_curve(rows: list[dict], path: Path, title: str, n: int) -> None:
    """Accuracy (with its 95% interval; maj@n too when n > 1) and mean reasoning tokens against the budget."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(rows, key=lambda r: r["budget"])
    xs = [r["budget"] for r in pts]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        ax.plot(xs, [r["accuracy"] for r in pts], "o-", color="tab:blue", label="accuracy (pass@1)")
        ax.fill_between(xs, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], color="tab:blue", alpha=0.15)
        if n > 1:
            ax.plot(xs, [r["maj@n"] for r in pts], "^:", color="tab:green", label=f"maj@{n}")
        ax.set_xlabel("thinking budget (tokens)")
        ax.set_ylabel("accuracy", color="tab:blue")
        ax.set_ylim(0, 1.02)
        pos = [x for x in xs if x > 0]
        if pos and max(pos) / min(pos) >= 8:  # budgets doubling: log2 axis (linear near a budget of 0)
            ax.set_xscale("symlog", base=2, linthresh=min(pos)) if 0 in xs else ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax2 = ax.twinx()
        ax2.plot(xs, [r["mean_reasoning_tokens"] for r in pts], "s--", color="tab:orange", label="mean reasoning tokens")
        ax2.set_ylabel("mean reasoning tokens", color="tab:orange")
        ax2.set_ylim(bottom=0)
        ax.set_title("\n".join(textwrap.wrap(title, 72, break_on_hyphens=False)), fontsize=9)  # long specs wrap
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
