"""The demo's held-out evaluation of every stage and its report (markdown + PNG plots).

Every number in ``report.md`` is read from the per-stage evaluation files ``eval/<stage>.json``
(written by ``ponder.evaluate.stages``) or from the GRPO runs' ``metrics.jsonl``; ``summary.json``
holds the same numbers for programs. Checks print PASS or MISS against the demo's stated bars and never
adjust a number to pass.

Paired difference of two stages on the same problems: per problem d = score_A - score_B; the
95% interval is mean(d) +- 1.96 sd(d)/sqrt(m) (normal approximation, as for pass@1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from ponder.evaluate.stages import StageEvalConfig, evaluate_checkpoint
from ponder.io import write_json_atomic

SAMPLES = 8  # maj@8 for the final model; also the samples per problem of the cold-start comparison
SAMPLE_TEMPERATURE = 0.8
COLD_START = ("base", "sft")  # sampled at the GRPO rollout temperature: what RL starts from
GRPO_BAR = 0.10  # GRPO must gain >= 10 points of held-out pass@1 over its start


def evaluate_stages(out: Path, outputs: dict[str, Path], task: str, limit: int, seed: int, quick: bool,
                    max_tokens: int, rollout_temperature: float, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Evaluate each model stage in ``outputs`` on the first ``limit`` test problems of ``task``.

    Greedy pass@1 for every stage; also ``SAMPLES`` samples per problem for the final model (at
    ``SAMPLE_TEMPERATURE``: maj@k) and for base and SFT at the GRPO ``rollout_temperature``, where
    the cold start's effect shows: greedy decoding of both answers directly, sampling does not.
    """
    evals = {}
    for name, model in outputs.items():
        samples = SAMPLES if name == "final" or name in COLD_START else 0
        temperature = rollout_temperature if name in COLD_START else SAMPLE_TEMPERATURE
        cfg = StageEvalConfig(task=task, limit=limit, samples=samples, temperature=temperature,
                              max_tokens=max_tokens, seed=seed)
        r = evaluate_checkpoint(model, cfg, out / "eval" / f"{name}.json")
        p = r["pass1_greedy"]
        extra = f", maj@{samples} {r[f'maj@{samples}']['mean']:.1%}" if samples else ""
        log(f"  {name:<14} pass@1 {p['mean']:.1%} [{p['low']:.1%}, {p['high']:.1%}]{extra}  ({r['seconds']:.0f} s)")
        evals[name] = r
    return evals


def paired(a: dict, b: dict, key: str | Callable[[dict], float] = "greedy_correct") -> dict:
    """Mean and 95% interval of per-problem score differences a - b (same problem ids); ``key`` is a
    row field or a function of the row."""
    value = key if callable(key) else (lambda r: float(r[key]))
    rb = {r["id"]: value(r) for r in b["rows"]}
    d = [value(r) - rb[r["id"]] for r in a["rows"] if r["id"] in rb]
    m = len(d)
    mean = sum(d) / m if m else float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (m - 1)) if m > 1 else 0.0
    half = 1.96 * sd / math.sqrt(m) if m else float("nan")
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": m}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("reward") is not None]


def _smooth(ys: list[float], w: int) -> list[float]:
    out = []
    for i in range(len(ys)):
        win = [y for y in ys[max(0, i - w + 1): i + 1] if y is not None]
        out.append(sum(win) / len(win) if win else float("nan"))
    return out


def plot_pass1(evals: dict, labels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(evals)
    means = [evals[n]["pass1_greedy"]["mean"] for n in names]
    err = [[m - evals[n]["pass1_greedy"]["low"] for n, m in zip(names, means)],
           [evals[n]["pass1_greedy"]["high"] - m for n, m in zip(names, means)]]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = ["#4c72b0" if not n.startswith("nano") else "#dd8452" for n in names]
    ax.bar(range(len(names)), [100 * m for m in means], yerr=[[100 * e for e in err[0]], [100 * e for e in err[1]]],
           color=colors, capsize=4)
    for i, n in enumerate(names):  # the value above its error bar
        ax.text(i, 100 * evals[n]["pass1_greedy"]["high"] + 1.5, f"{100 * means[i]:.1f}", ha="center",
                va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [labels[n][0] for n in names], rotation=20, ha="right")
    ax.set_ylabel("held-out pass@1, greedy (%)")
    ax.set_title("pass@1 per stage (error bars: 95% interval over held-out problems)")
    ax.set_ylim(0, 105)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for (name, rows), color in zip(runs.items(), ("#4c72b0", "#dd8452")):
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        w = max(1, len(rows) // 15)
        for ax, key, title in zip(axes, ("reward", "accuracy", "reasoning_length"),
                                  ("mean reward", "rollout accuracy", "reasoning length (tokens)")):
            ys = [r.get(key) for r in rows]
            ax.plot(steps, [float("nan") if y is None else y for y in ys], color=color, alpha=0.25, lw=0.8)
            ax.plot(steps, _smooth(ys, w), color=color, lw=1.8, label=f"{name} (mean of {w})")
            ax.set_title(title)
            ax.set_xlabel("GRPO step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _window(rows: list[dict], key: str, first: bool) -> float:
    k = max(1, len(rows) // 10)
    part = rows[:k] if first else rows[-k:]
    vals = [r[key] for r in part if r.get(key) is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def write_report(out: Path, stages: dict, evals: dict, meta: dict, labels: dict) -> tuple[Path, list[str]]:
    """Write report.md, pass1.png, grpo_curves.png and summary.json; return (report, check lines)."""
    out = Path(out)
    plot_pass1(evals, labels, out / "pass1.png")
    runs = {"micro GRPO" if meta["mode"] == "full" else "GRPO": _metrics(out / "grpo" / "metrics.jsonl"),
            "nano GRPO-only": _metrics(out / "nano_grpo" / "metrics.jsonl")}
    plot_curves(runs, out / "grpo_curves.png")
    checks, summary = [], {"meta": meta, "stages": {}, "checks": {}}
    for n, r in evals.items():
        summary["stages"][n] = {"pass1_greedy": r["pass1_greedy"], "reasoning_tokens": r["reasoning_tokens_greedy"],
                                **{k: r[k] for k in ("pass1_sampled", "reasoning_share_sampled") if k in r}}

    # check 1: GRPO over its starting checkpoint (the SFT model)
    gain = paired(evals["grpo"], evals["sft"])
    ok = gain["mean"] >= GRPO_BAR
    checks.append(f"{'PASS' if ok else 'MISS'}: GRPO gain over its start (SFT) {pts(gain['mean'])} points "
                  f"(95% CI {pts(gain['low'])} to {pts(gain['high'])}); bar: >= +{100 * GRPO_BAR:.0f}")
    summary["checks"]["grpo_gain"] = {**gain, "bar": GRPO_BAR, "pass": ok}
    # check 2: the cold start does what R1's does -- the base model reasons in more of its samples,
    # the behaviour GRPO reinforces (the paired interval of the per-problem reasoning share excludes 0)
    base, sft = evals["base"], evals["sft"]
    share = paired(sft, base, key=lambda r: r["sampled_reasoned"] / r["sampled_n"])
    ok_cs = share["low"] > 0
    t_rl = sft["config"]["temperature"]
    checks.append(f"{'PASS' if ok_cs else 'MISS'}: the cold start makes sampled reasoning more likely: "
                  f"{pct(base['reasoning_share_sampled'])} -> {pct(sft['reasoning_share_sampled'])} of samples "
                  f"reason ({pts(share['mean'])} points, 95% CI {pts(share['low'])} to {pts(share['high'])}; "
                  f"{SAMPLES} per problem at the GRPO temperature {t_rl:g}); sampled pass@1 "
                  f"{pct(base['pass1_sampled']['mean'])} -> {pct(sft['pass1_sampled']['mean'])}; bar: interval above 0")
    summary["checks"]["cold_start_reasoning"] = {**share, "base": base["reasoning_share_sampled"],
                                                 "sft": sft["reasoning_share_sampled"], "pass": ok_cs}
    # check 3: maj@8 >= pass@1 on the final model (the same 8 samples)
    fin = evals["final"]
    maj, sp1 = fin[f"maj@{SAMPLES}"], fin["pass1_sampled"]
    ok2 = maj["mean"] >= sp1["mean"]
    checks.append(f"{'PASS' if ok2 else 'MISS'}: final model maj@{SAMPLES} {pct(maj['mean'])} vs pass@1 "
                  f"{pct(sp1['mean'])} (same {SAMPLES} samples per problem, T={SAMPLE_TEMPERATURE})")
    summary["checks"]["maj_ge_pass1"] = {"maj": maj, "pass1_sampled": sp1, "pass": ok2}
    # the distillation-vs-RL comparison, stated whichever way it comes out
    dvr = paired(evals["nano_distill"], evals["nano_grpo"])
    if dvr["low"] > 0:
        verdict = "distillation beats RL alone for the small model (the interval excludes 0)"
    elif dvr["high"] < 0:
        verdict = "RL alone beats distillation for the small model (the interval excludes 0)"
    else:
        verdict = "no significant difference between distillation and RL alone (the interval includes 0)"
    dline = (f"distilled nano {pct(evals['nano_distill']['pass1_greedy']['mean'])} vs nano GRPO-only "
             f"{pct(evals['nano_grpo']['pass1_greedy']['mean'])}: {pts(dvr['mean'])} points "
             f"(95% CI {pts(dvr['low'])} to {pts(dvr['high'])}) -- {verdict}")
    checks.append("RESULT: " + dline)
    summary["checks"]["distill_vs_rl"] = {**dvr, "verdict": verdict}

    task, limit = meta["task"], meta["eval_limit"]
    L = [f"# ponder demo: the R1 recipe on `{task}`",
         "",
         f"Mode **{meta['mode']}**, seed **{meta['seed']}**, {meta['date']}, {meta['cpus']}-core CPU "
         f"(shared; load average {meta['load_start']} at start, {meta['load_end']} at end; "
         f"torch threads: {meta.get('threads', '?')}). "
         f"Wall time {meta['total_seconds'] / 60:.1f} min (training {meta['train_seconds'] / 60:.1f} min; "
         "stages finished by an earlier run are reused and keep their original time below).",
         "",
         f"Held-out set: the first {limit} problems of the `test` split of `{task}` (disjoint from every "
         "train split by construction). pass@1 is greedy; intervals are 95% normal intervals over problems.",
         ""]
    if meta["mode"] == "quick":
        L += ["> **Quick mode**: every stage is cut to a few steps to check the plumbing; these numbers do not "
              "show the training effect. Run `ponder demo` (or `make demo`) for the real result.", ""]
    L += ["## Checks", ""] + [f"- {c}" for c in checks] + [""]
    L += ["## Held-out pass@1 per stage", "",
          "| stage | what it is | pass@1 | 95% CI | mean reasoning tokens | eval file |",
          "|---|---|---|---|---|---|"]
    for n, r in evals.items():
        p = r["pass1_greedy"]
        L.append(f"| {labels[n][0]} | {labels[n][1]} | {pct(p['mean'])} | [{pct(p['low'])}, {pct(p['high'])}] | "
                 f"{r['reasoning_tokens_greedy']:.1f} | eval/{n}.json |")
    L += ["", "![held-out pass@1 per stage](pass1.png)", "",
          f"## The cold start: what GRPO starts from, {SAMPLES} samples per problem at T={t_rl:g}", "",
          "R1's cold start gives RL a model that already reasons in a readable form. Greedy decoding hides "
          "it here (the base model and the SFT model both answer directly); sampling at the rollout "
          "temperature shows how often each one reasons, which is what GRPO's groups see.", "",
          "| stage | pass@1 greedy | reasoning share, greedy | pass@1 sampled | reasoning share, sampled |",
          "|---|---|---|---|---|"]
    for n in COLD_START:
        r = evals[n]
        L.append(f"| {labels[n][0]} | {pct(r['pass1_greedy']['mean'])} | {pct(r['reasoning_share_greedy'])} | "
                 f"{pct(r['pass1_sampled']['mean'])} | {pct(r['reasoning_share_sampled'])} |")
    L += ["",
          f"## Test-time sampling: the final model, {SAMPLES} samples per problem at T={SAMPLE_TEMPERATURE}", "",
          "| metric | value | 95% CI |", "|---|---|---|",
          f"| pass@1 (sampled) | {pct(sp1['mean'])} | [{pct(sp1['low'])}, {pct(sp1['high'])}] |",
          f"| maj@{SAMPLES} | {pct(maj['mean'])} | [{pct(maj['low'])}, {pct(maj['high'])}] |",
          f"| pass@1 (greedy) | {pct(fin['pass1_greedy']['mean'])} | "
          f"[{pct(fin['pass1_greedy']['low'])}, {pct(fin['pass1_greedy']['high'])}] |", "",
          "## Distillation vs RL for the small model", "", dline + ".", "",
          "## GRPO training curves", "", "![GRPO curves](grpo_curves.png)", "",
          "| run | steps | reward first → last 10% | rollout accuracy first → last 10% | reasoning tokens first → last 10% |",
          "|---|---|---|---|---|"]
    for name, rows in runs.items():
        if rows:
            cells = " | ".join(f"{_window(rows, k, True):.3f} → {_window(rows, k, False):.3f}"
                               for k in ("reward", "accuracy", "reasoning_length"))
            L.append(f"| {name} | {len(rows)} | {cells} |")
    L += ["", "## Stages", "", "| stage | output | seconds | reused |", "|---|---|---|---|"]
    for n, s in stages.items():
        L.append(f"| {n} | `{s['output']}` | {s['seconds']:.0f} | {'yes' if s['skipped'] else 'no'} |")
    L += ["", "Every stage's resolved settings: `recipe.resolved.yaml` (and `ponder_config.json` beside each "
          "checkpoint). Numbers for programs: `summary.json`.", ""]
    report = out / "report.md"
    report.write_text("\n".join(L))
    write_json_atomic(out / "summary.json", summary)
    return report, checks
