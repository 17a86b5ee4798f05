"""A recipe's last stage, ``kind: report``: held-out pass@1 of the model before and after GRPO, and
the GRPO curves, as ``report.md`` + PNGs (the R1-Zero-on-a-real-model recipe writes it).

For each of the first ``limit`` test problems of ``task`` (disjoint from the train split by
construction) both models answer greedily with the same prompt: the model's own chat template,
``system`` as its system turn, thinking mode ``thinking`` -- the prompt GRPO trained on
(``ponder.generate.prompt`` and the GRPO stage render alike). Every completion is judged by
``ponder.tasks.judge`` and, beside it, by the ``after-equals`` rule (the number after the last
``=``, ``ponder.evaluate.protocol``), which credits a chat model that writes ``33 + 13 = 46`` and
states no answer. Intervals: Wilson 95% per model (``metrics.mean_ci``); the gain is the paired
per-problem difference with a normal 95% interval (``demo_report.paired``). With ``native_base``
the base model also answers with its own prompt (no system turn of ours: the chat template's
default; no pre-fill), the way its model card measures it, and the bar applies to the gain over
the better of the two base rows.

Curves (``grpo_curves.png``, from ``<grpo>/metrics.jsonl``): reward (total and per function),
rollout accuracy, think share (completions that closed ``</think>`` after some reasoning),
reasoning length, policy entropy; the steps where a health alarm (``ponder.train.health``) fired
are marked on every panel and listed in the report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path

from ponder.config import ConfigError, PromptOptions, option, shared
from ponder.evaluate.demo_report import paired, pct, pts
from ponder.evaluate.metrics import mean_ci
from ponder.io import json_objects, write_json_atomic, write_text_atomic
from ponder.threads import set_threads

GAIN_BAR = 0.10  # the recipe's target: +10 points of held-out pass@1 over the base model


@dataclass
class ReportConfig(PromptOptions):
    """Options of a ``kind: report`` recipe stage."""

    base: str = option("", "The model before training (checkpoint directory).")
    trained: str = option("", "The trained model (a checkpoint or LoRA adapter directory; '@grpo' in a recipe).")
    task: str = shared("task", "addition:digits=2")
    limit: int = shared("limit", 200)
    max_tokens: int = shared("max_tokens", 128)
    batch_prompts: int = shared("batch_prompts", 50)
    title: str = option("R1-Zero on a real model", "Report heading.")
    seed: int = option(0, "Unused by greedy decoding; kept so the recipe's seed applies.")
    native_base: bool = option(True, "Also evaluate the base model with the prompt it was tuned for (its chat "
                               "template's own system turn, no pre-fill), and require the gain over that too: a "
                               "prompt the base never saw must not make the gain.")
    threads: int = shared("threads", 0)
    out: str = option("runs/report/report.md", "The report's path; PNGs, eval/*.json and summary.json go beside it.")

    def __post_init__(self) -> None:
        if not self.base or not self.trained:
            raise ConfigError("report: base and trained (the models to compare) are both required")
        if self.limit < 1 or self.max_tokens < 1 or self.batch_prompts < 1:
            raise ConfigError("report: limit, max_tokens and batch_prompts must be >= 1")


def _ci(values: list[float]) -> dict:
    mean, lo, hi = mean_ci(values)
    return {"mean": mean, "low": lo, "high": hi, "n": len(values)}


def evaluate(model: str, cfg: ReportConfig, path: Path) -> dict:
    """Greedy held-out evaluation of ``model`` (reused from ``path`` when its settings match)."""
    from ponder.evaluate.protocol import ExtractedTask
    from ponder.generate import LocalEngine, SamplingParams
    from ponder.generate.scoring import sample_and_score
    from ponder.tasks import get_task, judge

    settings = {k: v for k, v in asdict(cfg).items() if k in ("task", "limit", "max_tokens", "system", "thinking")}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("settings") == settings and old.get("model") == model:
            return old
    from ponder.format import system_text

    task = get_task(cfg.task)
    examples = list(islice(task.examples("test"), cfg.limit))
    if not examples:
        raise ConfigError(f"report: task {cfg.task!r} has no test examples")
    alt = ExtractedTask(task, "after-equals")
    engine = LocalEngine.from_path(model, thinking=cfg.thinking)
    t0, rows = time.perf_counter(), []
    for (s,) in sample_and_score(engine, task, examples, n=1, batch=cfg.batch_prompts,
                                 system=system_text(cfg.system),
                                 sampling=SamplingParams(temperature=0, max_tokens=cfg.max_tokens)):
        c = s.completion
        rows.append({"id": s.example["id"], "correct": bool(s.verdict.correct), "answer": s.verdict.answer,
                     "after_equals": bool(judge(alt, c, s.example).correct),
                     "think_closed": bool(c.think_closed and c.reasoning_tokens > 0),
                     "reasoning_tokens": c.reasoning_tokens, "tokens": len(c.token_ids), "completion": c.text})
    res = {"model": model, "settings": settings, "seconds": time.perf_counter() - t0,
           "pass1": _ci([float(r["correct"]) for r in rows]),
           "pass1_after_equals": _ci([float(r["after_equals"]) for r in rows]),
           "think_share": sum(r["think_closed"] for r in rows) / len(rows),
           "reasoning_tokens": sum(r["reasoning_tokens"] for r in rows) / len(rows),
           "rows": rows}
    write_json_atomic(path, res)
    return res


def read_metrics(path: Path) -> list[dict]:
    """GRPO's per-step rows (``metrics.jsonl``); [] when the file is missing."""
    if not path.is_file():
        return []
    return [r for _, r in json_objects(path) if r.get("reward") is not None]


CURVES = (("reward", "reward (total; per function dashed)"), ("accuracy", "rollout accuracy"),
          ("think_share", "think share (closed </think>)"), ("reasoning_length", "reasoning length (tokens)"),
          ("entropy", "policy entropy (nats/token)"), ("completion_length", "completion length (tokens)"))


def plot_curves(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ponder.evaluate.demo_report import _smooth

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    steps = [r["step"] for r in rows]
    alarms = [(r["step"], a) for r in rows for a in r.get("alarms") or []]
    w = max(1, len(rows) // 10)
    for ax, (key, title) in zip(axes.flat, CURVES):
        ys = [r.get(key) for r in rows]
        ax.plot(steps, [float("nan") if y is None else y for y in ys], color="#4c72b0", alpha=0.3, lw=0.8)
        ax.plot(steps, _smooth(ys, w), color="#4c72b0", lw=1.8, label=f"mean of {w}")
        if key == "reward":
            for name in sorted({k for r in rows for k in r if k.startswith("rewards/")}):
                ax.plot(steps, _smooth([r.get(name) for r in rows], w), lw=1.2, ls="--", label=name[8:])
            ax.legend(fontsize=7)
        for step, _ in alarms:
            ax.axvline(step, color="#c44e52", lw=0.8, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("GRPO step")
    if alarms:
        fig.suptitle("dotted red lines: health alarms (" + ", ".join(sorted({a for _, a in alarms})) + ")", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pass1(evals: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    keys = (("pass1", "judge"), ("pass1_after_equals", "after '='"))
    for j, (key, label) in enumerate(keys):
        xs = [i + 0.38 * j for i in range(len(evals))]
        ms = [100 * e[key]["mean"] for e in evals.values()]
        err = [[100 * (e[key]["mean"] - e[key]["low"]) for e in evals.values()],
               [100 * (e[key]["high"] - e[key]["mean"]) for e in evals.values()]]
        ax.bar(xs, ms, width=0.36, yerr=err, capsize=4, label=label)
    ax.set_xticks([i + 0.19 for i in range(len(evals))], list(evals))
    ax.set_ylabel("held-out pass@1, greedy (%)")
    ax.set_title("before and after GRPO (error bars: 95% interval)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _window(rows: list[dict], key: str, first: bool) -> str:
    k = max(1, len(rows) // 10)
    vals = [r[key] for r in (rows[:k] if first else rows[-k:]) if isinstance(r.get(key), (int, float))]
    return f"{sum(vals) / len(vals):.3f}" if vals else "–"


def training_seconds(rows: list[dict]) -> float:
    """Wall seconds of a run's training steps from its metrics rows. ``seconds`` counts from the
    start of the process that logged the row, so it drops back when a killed run resumes: each
    stretch contributes its own last value."""
    total, last = 0.0, 0.0
    for r in rows:
        s = r.get("seconds")
        if s is None:
            continue
        if s < last:  # a resumed process started counting again
            total += last
        last = s
    return total + last


def run(cfg: ReportConfig) -> Path:
    """Evaluate both models, plot, write ``<out>/report.md``; returns its path."""
    set_threads(cfg.threads)  # the training stages' rule
    out = Path(cfg.out).parent
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    evals = {"base": evaluate(cfg.base, cfg, out / "eval" / "base.json")}
    if cfg.native_base:
        evals["base, own prompt"] = evaluate(cfg.base, replace(cfg, system="", thinking="off"),
                                             out / "eval" / "base_own_prompt.json")
    evals["GRPO"] = evaluate(cfg.trained, cfg, out / "eval" / "trained.json")
    grpo_dir = Path(cfg.trained).parent
    rows = read_metrics(grpo_dir / "metrics.jsonl")
    plot_pass1(evals, out / "pass1.png")
    if rows:
        plot_curves(rows, out / "grpo_curves.png")
    b, g = evals["base"], evals["GRPO"]
    gain = paired({"rows": g["rows"]}, {"rows": b["rows"]}, key="correct")
    gain_eq = paired({"rows": g["rows"]}, {"rows": b["rows"]}, key="after_equals")
    native = evals.get("base, own prompt")
    gain_native = paired({"rows": g["rows"]}, {"rows": native["rows"]}, key="correct") if native else None
    ok = gain["mean"] >= GAIN_BAR and (gain_native is None or gain_native["mean"] >= GAIN_BAR)
    done = grpo_dir / "ponder_done.json"
    train_s = training_seconds(rows)
    L = [f"# {cfg.title}: `{cfg.task}`", "",
         f"Held-out set: the first {cfg.limit} test problems of `{cfg.task}`; greedy, ≤ {cfg.max_tokens} tokens, "
         f"thinking `{cfg.thinking}`, the training prompt (system turn: {cfg.system[:60]!r}…). "
         f"Load average {load_start:.1f} when the evaluation started, {os.cpu_count()} cores.", "",
         f"- {'PASS' if ok else 'MISS'}: GRPO gain {pts(gain['mean'])} points "
         f"(95% CI {pts(gain['low'])} to {pts(gain['high'])}, paired over {gain['n']} problems); "
         f"bar: ≥ +{100 * GAIN_BAR:.0f}",
         *([f"- over the base model with its own prompt (no system turn of ours, no pre-fill): "
            f"{pts(gain_native['mean'])} points (95% CI {pts(gain_native['low'])} to {pts(gain_native['high'])})"]
           if gain_native else []),
         f"- by the after-'=' rule: {pts(gain_eq['mean'])} points (95% CI {pts(gain_eq['low'])} to "
         f"{pts(gain_eq['high'])})",
         f"- think share (reasoning closed by `</think>`): {pct(b['think_share'])} → {pct(g['think_share'])}", "",
         "| model | pass@1 (judge) | 95% CI | pass@1 (after '=') | 95% CI | think share | reasoning tokens | eval s |",
         "|---|---|---|---|---|---|---|---|"]
    for name, e in evals.items():
        p, q = e["pass1"], e["pass1_after_equals"]
        L.append(f"| {name} | {pct(p['mean'])} | [{pct(p['low'])}, {pct(p['high'])}] | {pct(q['mean'])} | "
                 f"[{pct(q['low'])}, {pct(q['high'])}] | {pct(e['think_share'])} | {e['reasoning_tokens']:.1f} | "
                 f"{e['seconds']:.0f} |")
    L += ["", "![pass@1](pass1.png)", ""]
    if rows:
        fired = [f"step {r['step']}: {', '.join(r['alarms'])}" for r in rows if r.get("alarms")]
        L += ["## GRPO curves", "", "![GRPO curves](grpo_curves.png)", "",
              f"{len(rows)} steps, {train_s / 60:.1f} min of training steps"
              + (f" (ponder_done.json: {done})" if done.is_file() else "") + ".", "",
              "| metric | first 10% of steps | last 10% |", "|---|---|---|"]
        for key, _ in CURVES:
            L.append(f"| {key} | {_window(rows, key, True)} | {_window(rows, key, False)} |")
        L += ["", "Health alarms: " + ("; ".join(fired) if fired else "none fired"), ""]
    L += ["Example completions after GRPO (first three held-out problems):", ""]
    for r in g["rows"][:3]:
        L += [f"- `{r['id']}` ({'correct' if r['correct'] else 'wrong'}): `{r['completion'][:200]!r}`"]
    report = Path(cfg.out)
    write_text_atomic(report, "\n".join(L) + "\n")
    write_json_atomic(out / "summary.json", {
        "task": cfg.task, "limit": cfg.limit, "gain": {**gain, "bar": GAIN_BAR, "pass": ok}, "gain_after_equals": gain_eq,
        "gain_over_own_prompt": gain_native,
        **{name: {k: e[k] for k in ("pass1", "pass1_after_equals", "think_share", "reasoning_tokens", "seconds")}
           for name, e in evals.items()}, "grpo_steps": len(rows), "grpo_step_seconds": train_s})
    return report
