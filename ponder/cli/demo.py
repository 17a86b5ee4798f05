"""``ponder demo``: the main job of ``make demo``.

Until the training pipeline lands, the demo runs what exists end to end without a model: it
builds the synthetic tasks, scores their reference chains of thought and corrupted copies of
them through each task's verifier and the reward registry, and writes a short report. Every
number it prints is computed, none is hard-coded.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ponder.cli.common import user_errors

console = Console()


def _corrupt(completion: str, gold: str) -> str:
    """The same completion with its final answer changed (the last occurrence of the gold)."""
    i = completion.rfind(gold)
    wrong = str(int(gold) + 1) if gold.lstrip("-").isdigit() else gold + "1"
    return completion if i < 0 else completion[:i] + wrong + completion[i + len(gold):]


@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Directory for the report."),
    n: int = typer.Option(20, min=1, help="Examples per task."),
) -> None:
    """Score reference and corrupted completions on the synthetic tasks; write runs/<name>/report.md."""
    from ponder.rewards import parse_reward_spec
    from ponder.tasks import get_task, reference_completion

    funcs, weights = parse_reward_spec("accuracy=1, format=0.5, tag_count=0.5")
    table = Table("task", "kind", "n", "verifier accuracy", *[f.__name__ for f in funcs])
    rows = []
    for name in ("addition:digits=3", "multiplication:digits=2", "countdown"):
        task = get_task(name)
        examples = list(islice(task.examples("test"), n))
        for kind in ("reference", "corrupted"):
            comps = [reference_completion(ex) for ex in examples]
            if kind == "corrupted":
                comps = [_corrupt(c, ex["gold"]) for c, ex in zip(comps, examples)]
            acc = sum(task.score(c, ex).correct for c, ex in zip(comps, examples)) / len(examples)
            cols = {"gold": [ex["gold"] for ex in examples], "task": [name] * len(examples),
                    "meta": [ex["meta"] for ex in examples], "id": [ex["id"] for ex in examples]}
            means = []
            for f in funcs:
                vals = [v for v in f(comps, **cols) if v is not None]
                means.append(sum(vals) / len(vals) if vals else float("nan"))
            rows.append((name, kind, len(examples), acc, means))
            table.add_row(name, kind, str(len(examples)), f"{acc:.0%}", *[f"{m:.2f}" for m in means])
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# ponder demo: verifiers and rewards on the synthetic tasks", "",
             "| task | kind | n | verifier accuracy | " + " | ".join(f.__name__ for f in funcs) + " |",
             "|---|---|---|---|" + "---|" * len(funcs)]
    for name, kind, k, acc, means in rows:
        lines.append(f"| {name} | {kind} | {k} | {acc:.0%} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    console.print(f"report: {report}")
