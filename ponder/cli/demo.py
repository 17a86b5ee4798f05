"""``ponder demo``: the main job of ``make demo`` -- the R1 recipe on CPU, every stage measured.

1. Runs the ``r1`` recipe (recipes/r1.yaml: base -> cold-start SFT -> GRPO -> rejection sampling
   -> SFT) at ``micro`` size, plus three stages for the distillation-vs-RL comparison: a ``nano``
   base model (same tokenizer), a nano student distilled from the r1 model's verified traces, and
   a nano student trained by GRPO only (the micro GRPO's settings with its own tuned learning rate).
2. Evaluates every stage on the same held-out problems (the task's test split, disjoint from
   train): greedy pass@1 with a 95% interval (``ponder.evaluate.stages``), and for the final model
   sampled pass@1 and maj@8 from 8 samples per problem.
3. Writes ``runs/<name>/report.md`` with PNG plots (pass@1 per stage; GRPO reward, accuracy and
   reasoning-length curves) and checks its stated bars honestly, printing PASS or MISS:
   GRPO gains >= 10 points of held-out pass@1 over its starting checkpoint; the cold start raises
   the share of sampled completions (at the GRPO temperature) that reason; maj@8 >= pass@1. The
   distillation-vs-RL comparison is stated whichever way it comes out.

All stages resume (re-running the demo skips finished stages and evaluations); the settings of
each stage are in ``runs/<name>/recipe.resolved.yaml``. ``--quick`` shrinks every stage so the
whole job takes a few minutes (the test suite runs it); its numbers show the plumbing, not the
effect. The full demo's settings come from the GRPO tuning in docs/training.md.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ponder.cli.common import user_errors

console = Console(stderr=True)

TASK = "addition:digits=2"

# Extra stages appended to recipes/r1.yaml (same ``@stage`` references as in a recipe file).
EXTRA_STAGES = {
    "nano_base": {"kind": "pretrain", "preset": "nano", "tokenizer": "@base"},
    "nano_distill": {"kind": "distill", "teacher": "@final", "student": "@nano_base", "keep": "all",
                     "limit": 400, "n": 4, "max_tokens": 64, "sft": {"epochs": 1, "lr": 2.0e-4}},
    # its own learning rate, tuned on the nano base (lr 1e-4: 0% held-out, 5e-5: 37.5%, 3e-5: 54.0%, seed 0);
    # the other GRPO settings are the micro run's (SHARED)
    "nano_grpo": {"kind": "grpo", "model": "@nano_base", "lr": 3.0e-5},
}

# Settings per mode, as ``--set`` overrides of the composed recipe; nano stages copy the micro ones.
# Full: recipes/r1.yaml as it is (its settings are the tuned ones, see docs/training.md).
FULL: list[str] = []
# Quick: models this small rarely answer correctly, so rejection sampling and distillation keep
# unverified samples (verify=false) -- the plumbing runs, the numbers mean nothing.
QUICK = [
    "base.preset=nano", "base.steps=20", "base.batch_size=16", "base.n_examples=300", "base.save_every=1000",
    "cold_start.limit=32", "sft.max_steps=4", "sft.batch_size=8",
    "grpo.steps=3", "grpo.batch_size=4", "grpo.num_generations=4", "grpo.max_completion_length=40",
    "rejection.limit=16", "rejection.n=2", "rejection.max_tokens=40", "rejection.verify=false",
    "final.max_steps=3", "final.batch_size=8",
    "nano_base.steps=20", "nano_base.batch_size=16", "nano_base.n_examples=300", "nano_base.save_every=1000",
    "nano_distill.limit=16", "nano_distill.n=2", "nano_distill.max_tokens=40", "nano_distill.verify=false",
    "nano_distill.sft.max_steps=3", "nano_distill.sft.batch_size=8",
]
# copied from the micro stage unless set explicitly for the nano one
SHARED = {"nano_base": ("steps", "n_examples", "solution_share", "lr", "seq_len", "save_every", "batch_size"),
          "nano_grpo": ("rewards", "steps", "batch_size", "num_generations", "lr", "temperature", "beta",
                        "max_completion_length", "loss_type", "epsilon", "n_prompts", "save_every")}

# stage -> (label in the report, what it is)
STAGES = {
    "base": ("base", "pretrained base model (micro)"),
    "sft": ("SFT", "cold-start SFT of base"),
    "grpo": ("GRPO", "GRPO from SFT"),
    "final": ("R1 final", "SFT of GRPO on its rejection-sampled traces"),
    "nano_base": ("nano base", "pretrained nano base model"),
    "nano_distill": ("nano distilled", "nano base SFT on the R1 final model's verified traces"),
    "nano_grpo": ("nano GRPO-only", "nano base trained by GRPO only (its own tuned lr)"),
}


def compose(quick: bool, seed: int, overrides: list[str], out: Path) -> dict:
    """The demo's recipe: recipes/r1.yaml + the nano stages, with the mode's settings applied."""
    from ponder.config import apply_overrides
    from ponder.train.pipeline import load_recipe

    data = load_recipe("r1")
    data.update({k: dict(v) for k, v in EXTRA_STAGES.items()})
    data.update(out=str(out), task=TASK, seed=seed)
    data = apply_overrides(data, QUICK if quick else FULL)
    for nano, keys in SHARED.items():
        src = data["base" if nano == "nano_base" else "grpo"]
        for k in keys:
            if k in src and k not in data[nano]:
                data[nano][k] = src[k]
    return apply_overrides(data, overrides)


def _load_avg() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@user_errors
def demo(
    quick: bool = typer.Option(False, "--quick", help="Tiny settings (a few minutes): checks the plumbing, not the effect."),
    out: Optional[Path] = typer.Option(None, help="Run directory [default: runs/demo, or runs/demo-quick]."),
    seed: int = typer.Option(0, help="Seed of every stage and of the sampled evaluation."),
    eval_limit: Optional[int] = typer.Option(None, help="Held-out problems per evaluation [default: 200, quick 24]."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a stage field: --set grpo.steps=300 (repeatable)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run directory first (otherwise finished stages are reused)."),
    threads: str = typer.Option("auto", help="torch CPU threads: auto (torch's count cut to the cores no other job is running on) or N (every stage's default)."),
) -> None:
    """Run the R1 recipe at micro size on CPU, evaluate every stage on held-out problems, write the report."""
    import shutil

    from ponder.evaluate.demo_report import evaluate_stages, write_report
    from ponder.train.pipeline import run_recipe, set_threads

    out = out or Path("runs/demo-quick" if quick else "runs/demo")
    if fresh and out.exists():
        shutil.rmtree(out)
    limit = eval_limit or (24 if quick else 200)
    t0, load0 = time.time(), _load_avg()
    n_threads = set_threads(threads)
    console.rule(f"[bold]ponder demo{' --quick' if quick else ''}: the R1 recipe on {TASK} → {out} "
                 f"({n_threads} torch thread{'s' if n_threads > 1 else ''})")
    recipe = compose(quick, seed, (set_ or []) + ([] if threads == "auto" else [f"threads={n_threads}"]), out)
    stages = run_recipe(recipe, log=lambda s: console.print(s, highlight=False))
    train_s = time.time() - t0
    console.rule("[bold]held-out evaluation")
    evals = evaluate_stages(out, {k: Path(v["output"]) for k, v in stages.items() if k in STAGES},
                            task=recipe["task"], limit=limit, seed=seed, quick=quick,
                            max_tokens=int(recipe["grpo"].get("max_completion_length", 96)) * 2,
                            rollout_temperature=float(recipe["grpo"].get("temperature", 1.0)),
                            log=lambda s: console.print(s, highlight=False))
    meta = {"mode": "quick" if quick else "full", "seed": seed, "task": recipe["task"], "eval_limit": limit,
            "train_seconds": train_s, "total_seconds": time.time() - t0, "load_start": load0, "load_end": _load_avg(),
            "cpus": os.cpu_count(), "threads": f"{threads} ({n_threads} at start)", "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    labels = dict(STAGES)
    labels["base"] = ("base", f"pretrained base model ({recipe['base'].get('preset', 'micro')})")
    report, checks = write_report(out, stages, evals, meta, labels)
    for line in checks:
        console.print(line, highlight=False)
    console.print(f"total {meta['total_seconds'] / 60:.1f} min; report: [bold]{report}", highlight=False)
    typer.echo(str(report))
